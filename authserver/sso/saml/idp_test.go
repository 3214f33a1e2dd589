package saml

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/logger"
	"github.com/crewjam/saml/samlidp"
	dsig "github.com/russellhaering/goxmldsig"
)

// testIdP is a real SAML identity provider, crewjam/saml's samlidp, on
// 127.0.0.1 with its own signing key, its users and the service providers
// registered with it by their metadata, as an administrator would.
type testIdP struct {
	srv  *httptest.Server
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

// newKeyPair makes an RSA key and a self-signed certificate valid from
// notBefore to notAfter.
func newKeyPair(t *testing.T, notBefore, notAfter time.Time) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "test idp"},
		NotBefore:    notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func newTestIdP(t *testing.T) *testIdP {
	t.Helper()
	key, cert := newKeyPair(t, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	idp, err := samlidp.New(samlidp.Options{
		URL: *u, Key: key, Certificate: cert, Store: &samlidp.MemoryStore{},
		Logger: logger.DefaultLogger,
	})
	if err != nil {
		t.Fatal(err)
	}
	handler = idp
	return &testIdP{srv: srv, key: key, cert: cert}
}

func (i *testIdP) do(t *testing.T, method, path string, body []byte) []byte {
	t.Helper()
	req, err := http.NewRequest(method, i.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := i.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return out
}

// metadata is what GET /metadata serves.
func (i *testIdP) metadata(t *testing.T) []byte { return i.do(t, http.MethodGet, "/metadata", nil) }

// register registers a service provider by its metadata.
func (i *testIdP) register(t *testing.T, name string, spMetadata []byte) {
	i.do(t, http.MethodPut, "/services/"+name, spMetadata)
}

func (i *testIdP) addUser(t *testing.T, name, password, email string, groups []string) {
	body, _ := json.Marshal(map[string]any{"password": password, "email": email, "groups": groups})
	i.do(t, http.MethodPut, "/users/"+name, body)
}

var samlResponseField = regexp.MustCompile(`name="SAMLResponse" value="([^"]+)"`)

// signIn plays the browser: it follows redirectURL to the IdP, posts the
// login form it gets with the user's password, and returns the
// SAMLResponse of the auto-posting form the IdP answers with.
func (i *testIdP) signIn(t *testing.T, redirectURL, user, password string) string {
	t.Helper()
	resp, err := i.srv.Client().Get(redirectURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte(`name="password"`)) {
		t.Fatalf("GET the AuthnRequest: %d %s", resp.StatusCode, page)
	}
	field := func(name string) string {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindSubmatch(page)
		if m == nil {
			t.Fatalf("no %s in the login form: %s", name, page)
		}
		return html.UnescapeString(string(m[1]))
	}
	form := url.Values{"user": {user}, "password": {password}, "SAMLRequest": {field("SAMLRequest")}, "RelayState": {field("RelayState")}}
	resp, err = i.srv.Client().PostForm(i.srv.URL+"/sso", form)
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	m := samlResponseField.FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("POST the login form: %d %s", resp.StatusCode, page)
	}
	return html.UnescapeString(string(m[1]))
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
