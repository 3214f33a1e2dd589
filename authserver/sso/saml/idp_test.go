package saml

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/tenantauth/tenantauth/internal/samltest"
)

// testIdP is samltest's IdP: crewjam/saml's samlidp on 127.0.0.1.
type testIdP = samltest.IdP

func newTestIdP(t *testing.T) *testIdP { return samltest.New(t) }

func newKeyPair(t *testing.T, notBefore, notAfter time.Time) (*rsa.PrivateKey, *x509.Certificate) {
	return samltest.NewKeyPair(t, notBefore, notAfter)
}

// forge rewrites a response the IdP issued, as an attacker holding it
// (or a key) would: it decodes it, drops its signatures, lets mutate edit
// the Response and its assertion, then signs the assertion and the
// Response again with key and cert when asked, the IdP's own signing
// steps, through goxmldsig.
func forge(t *testing.T, samlResponse string, mutate func(resp, assertion *etree.Element),
	key *rsa.PrivateKey, cert *x509.Certificate, signAssertion, signResponse bool) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	resp := doc.Root()
	assertion := resp.FindElement("./Assertion")
	if assertion == nil {
		t.Fatalf("no assertion in %s", raw)
	}
	for _, el := range []*etree.Element{resp, assertion} {
		if sig := el.FindElement("./Signature"); sig != nil {
			el.RemoveChild(sig)
		}
	}
	if mutate != nil {
		mutate(resp, assertion)
	}
	if signAssertion {
		signed := sign(t, assertion, key, cert)
		idx := assertion.Index()
		resp.RemoveChildAt(idx)
		resp.InsertChildAt(idx, signed)
	}
	if signResponse {
		doc.SetRoot(sign(t, resp, key, cert))
	}
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(out)
}

// sign returns el with an enveloped signature placed after its Issuer,
// where the SAML schema puts it.
func sign(t *testing.T, el *etree.Element, key *rsa.PrivateKey, cert *x509.Certificate) *etree.Element {
	t.Helper()
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key}))
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		t.Fatal(err)
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		t.Fatal(err)
	}
	// goxmldsig appends the Signature without telling etree its index,
	// so it is removed by position.
	sig := signed.RemoveChildAt(len(signed.Child) - 1)
	for i, c := range signed.Child {
		if e, ok := c.(*etree.Element); ok && e.Tag == "Issuer" {
			signed.InsertChildAt(i+1, sig)
			return signed
		}
	}
	t.Fatal("no Issuer to put the signature after")
	return nil
}

// decoded is a response's XML.
func decoded(t *testing.T, samlResponse string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func encoded(xml string) string { return base64.StdEncoding.EncodeToString([]byte(xml)) }

// withDoctype puts doctype before the root element of a response.
func withDoctype(t *testing.T, samlResponse, doctype string) string {
	x := decoded(t, samlResponse)
	if strings.HasPrefix(x, "<?xml") {
		end := strings.Index(x, "?>") + 2
		return encoded(x[:end] + doctype + x[end:])
	}
	return encoded(doctype + x)
}
