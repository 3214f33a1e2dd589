package saml

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"
)

// idpMetadataXML is an IdP's metadata with one signing certificate per
// der, in the shape Okta, Entra ID and Google Workspace publish.
func idpMetadataXML(binding string, use string, ders ...[]byte) string {
	var keys strings.Builder
	for _, der := range ders {
		fmt.Fprintf(&keys, `<md:KeyDescriptor use=%q><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>
%s
</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`, use, base64.StdEncoding.EncodeToString(der))
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.com/saml">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` + keys.String() + `
    <md:SingleSignOnService Binding="` + binding + `" Location="https://idp.example.com/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`
}

func TestParseIdPMetadata(t *testing.T) {
	now := time.Now()
	_, soon := newKeyPair(t, now.Add(-time.Hour), now.Add(10*24*time.Hour))
	_, later := newKeyPair(t, now.Add(-time.Hour), now.Add(300*24*time.Hour))
	_, old := newKeyPair(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	redirect := crewjam.HTTPRedirectBinding
	one := idpMetadataXML(redirect, "signing", later.Raw)
	entities := func(entities ...string) string {
		for i, e := range entities {
			entities[i] = strings.TrimPrefix(e, `<?xml version="1.0" encoding="UTF-8"?>`)
		}
		return `<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">` + strings.Join(entities, "") + `</md:EntitiesDescriptor>`
	}
	for _, tc := range []struct {
		name       string
		xml        string
		wantExpiry time.Time
		wantErr    string
	}{
		{name: "one signing certificate", xml: one, wantExpiry: later.NotAfter},
		{name: "key without use", xml: idpMetadataXML(redirect, "", later.Raw), wantExpiry: later.NotAfter},
		{name: "rollover: the earliest valid expiry", xml: idpMetadataXML(redirect, "signing", later.Raw, soon.Raw, old.Raw), wantExpiry: soon.NotAfter},
		{name: "an aggregate holding one IdP", xml: entities(one), wantExpiry: later.NotAfter},
		{name: "an aggregate holding two IdPs", xml: entities(one, strings.Replace(one, "idp.example.com/saml", "other.example.com/saml", 1)), wantErr: "2 identity providers"},
		{name: "only an expired certificate", xml: idpMetadataXML(redirect, "signing", old.Raw), wantErr: "no signing certificate is valid now"},
		{name: "only an encryption key", xml: idpMetadataXML(redirect, "encryption", later.Raw), wantErr: "no signing certificate"},
		{name: "no HTTP-Redirect endpoint", xml: idpMetadataXML(crewjam.HTTPPostBinding, "signing", later.Raw), wantErr: "HTTP-Redirect"},
		{name: "a certificate that is not one", xml: strings.Replace(one, "<ds:X509Certificate>\n", "<ds:X509Certificate>AAAA", 1), wantErr: "does not parse"},
		{name: "a DTD with an external entity", xml: strings.Replace(one, "?>", `?><!DOCTYPE m [<!ENTITY e SYSTEM "file:///etc/passwd">]>`, 1), wantErr: "DTD"},
		{name: "not XML", xml: "not xml", wantErr: "root elements"},
		{name: "another document", xml: `<html xmlns="http://www.w3.org/1999/xhtml"/>`, wantErr: "not a SAML EntityDescriptor"},
		{name: "too large", xml: strings.Repeat(" ", MaxMetadataBytes+1), wantErr: "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md, err := ParseIdPMetadata([]byte(tc.xml), now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if md.EntityID != "https://idp.example.com/saml" || md.SSOURL != "https://idp.example.com/sso" ||
				!md.CertificateExpiresAt.Equal(tc.wantExpiry) || len(md.SigningCertificates) == 0 {
				t.Fatalf("got %+v", md)
			}
		})
	}
}

// TestSPMetadata: the metadata an administrator registers at the IdP,
// before the organization has the IdP's: this SP's entity ID and its one
// HTTP-POST ACS, no keys, no artifact binding.
func TestSPMetadata(t *testing.T) {
	raw, err := SPMetadata(testEntityA, testACS)
	if err != nil {
		t.Fatal(err)
	}
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal(raw, &ed); err != nil {
		t.Fatal(err)
	}
	if ed.EntityID != testEntityA || len(ed.SPSSODescriptors) != 1 {
		t.Fatalf("got %s", raw)
	}
	d := ed.SPSSODescriptors[0]
	if len(d.AssertionConsumerServices) != 1 || d.AssertionConsumerServices[0].Location != testACS ||
		d.AssertionConsumerServices[0].Binding != crewjam.HTTPPostBinding || len(d.KeyDescriptors) != 0 {
		t.Fatalf("SPSSODescriptor: %s", raw)
	}
	for _, bad := range [][2]string{{"", testACS}, {testEntityA, "/sso/saml/acs"}} {
		if _, err := SPMetadata(bad[0], bad[1]); err == nil {
			t.Errorf("SPMetadata(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}

// TestNewRefusesIncompleteConfig: an SP is never built without an IdP or
// a replay cache.
func TestNewRefusesIncompleteConfig(t *testing.T) {
	f := newFlow(t)
	for name, cfg := range map[string]Config{
		"no IdP":          {EntityID: testEntityA, ACSURL: testACS, Replay: StoreReplayCache{Store: f.store}},
		"no replay cache": {EntityID: testEntityA, ACSURL: testACS, IdP: f.md},
		"no entity ID":    {ACSURL: testACS, IdP: f.md, Replay: StoreReplayCache{Store: f.store}},
		"relative ACS":    {EntityID: testEntityA, ACSURL: "/sso/saml/acs", IdP: f.md, Replay: StoreReplayCache{Store: f.store}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
