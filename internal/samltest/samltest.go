// Package samltest runs a real SAML identity provider for tests:
// crewjam/saml's samlidp on 127.0.0.1, with its own signing key.
package samltest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
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
	"testing"
	"time"

	"github.com/crewjam/saml/logger"
	"github.com/crewjam/saml/samlidp"
)

// IdP is a real SAML identity provider, crewjam/saml's samlidp, on
// 127.0.0.1 with its own signing key, its users and the service providers
// registered with it by their metadata, as an administrator would.
type IdP struct {
	Srv  *httptest.Server
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// NewKeyPair makes an RSA key and a self-signed certificate valid from
// notBefore to notAfter.
func NewKeyPair(t *testing.T, notBefore, notAfter time.Time) (*rsa.PrivateKey, *x509.Certificate) {
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

// New starts an IdP on 127.0.0.1 for the test.
func New(t *testing.T) *IdP {
	t.Helper()
	key, cert := NewKeyPair(t, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
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
	return &IdP{Srv: srv, Key: key, Cert: cert}
}

func (i *IdP) do(t *testing.T, method, path string, body []byte) []byte {
	t.Helper()
	req, err := http.NewRequest(method, i.Srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := i.Srv.Client().Do(req)
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

// Metadata is what GET /metadata serves.
func (i *IdP) Metadata(t *testing.T) []byte { return i.do(t, http.MethodGet, "/metadata", nil) }

// Register registers a service provider by its metadata.
func (i *IdP) Register(t *testing.T, name string, spMetadata []byte) {
	i.do(t, http.MethodPut, "/services/"+name, spMetadata)
}

// AddUser adds a user who signs in with password.
func (i *IdP) AddUser(t *testing.T, name, password, email string, groups []string) {
	body, _ := json.Marshal(map[string]any{"password": password, "email": email, "groups": groups})
	i.do(t, http.MethodPut, "/users/"+name, body)
}

var samlResponseField = regexp.MustCompile(`name="SAMLResponse" value="([^"]+)"`)

// SignIn plays the browser: it follows redirectURL to the IdP, posts the
// login form it gets with the user's password, and returns the
// SAMLResponse of the auto-posting form the IdP answers with.
func (i *IdP) SignIn(t *testing.T, redirectURL, user, password string) string {
	t.Helper()
	resp, err := i.Srv.Client().Get(redirectURL)
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
	resp, err = i.Srv.Client().PostForm(i.Srv.URL+"/sso", form)
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

// Decode returns the XML of a base64 SAMLResponse.
func Decode(samlResponse string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	return string(raw), err
}

// Encode is a SAMLResponse form value of xml.
func Encode(xml string) string { return base64.StdEncoding.EncodeToString([]byte(xml)) }
