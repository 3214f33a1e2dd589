package saml

import (
	"errors"
	"strings"
	"testing"
)

func TestGuardXML(t *testing.T) {
	const (
		p = `xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"`
		a = `<saml:Assertion><saml:Issuer>i</saml:Issuer><ds:Signature/></saml:Assertion>`
	)
	for _, tc := range []struct {
		name                   string
		xml                    string
		assertions, signatures int
		wantErr                string
	}{
		{name: "signed assertion", xml: `<?xml version="1.0"?><samlp:Response ` + p + `>` + a + `</samlp:Response>`, assertions: 1, signatures: 1},
		{name: "signed response", xml: `<samlp:Response ` + p + `><ds:Signature/><saml:Assertion/></samlp:Response>`, assertions: 1, signatures: 1},
		{name: "a signature elsewhere counts for nothing", xml: `<samlp:Response ` + p + `><samlp:Extensions><ds:Signature/></samlp:Extensions><saml:Assertion/></samlp:Response>`, assertions: 1},
		{name: "an assertion at any depth is counted", xml: `<samlp:Response ` + p + `><samlp:Extensions>` + a + `</samlp:Extensions>` + a + `</samlp:Response>`, assertions: 2, signatures: 2},
		{name: "a prefix bound elsewhere is the same namespace", xml: `<r:Response xmlns:r="urn:oasis:names:tc:SAML:2.0:protocol"><x:Assertion xmlns:x="urn:oasis:names:tc:SAML:2.0:assertion"/></r:Response>`, assertions: 1},
		{name: "DOCTYPE", xml: `<!DOCTYPE r><samlp:Response ` + p + `/>`, wantErr: "DTD"},
		{name: "external entity", xml: `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:1/x">]><r>&x;</r>`, wantErr: "DTD"},
		{name: "undeclared entity", xml: `<r>&x;</r>`, wantErr: "not well-formed"},
		{name: "processing instruction", xml: `<?xml-stylesheet href="x"?><r/>`, wantErr: "processing instruction"},
		{name: "a charset other than UTF-8", xml: `<?xml version="1.0" encoding="UTF-16"?><r/>`, wantErr: "not well-formed"},
		{name: "two roots", xml: `<r/><r/>`, wantErr: "2 root elements"},
		{name: "unclosed", xml: `<r>`, wantErr: "not well-formed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shape, err := guardXML([]byte(tc.xml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				if tc.wantErr == "DTD" && !errors.Is(err, errDTD) {
					t.Fatalf("%v is not errDTD", err)
				}
				return
			}
			if err != nil || shape.assertions != tc.assertions || shape.signatures != tc.signatures {
				t.Fatalf("got %+v, %v; want %d assertions, %d signatures", shape, err, tc.assertions, tc.signatures)
			}
		})
	}
}
