// Package samltest runs a real SAML identity provider for tests:
// crewjam/saml's samlidp on 127.0.0.1, with its own signing key, and
// plays a browser at it.
package samltest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
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

	mu      sync.Mutex
	handler http.Handler
	store   *samlidp.MemoryStore
	// metadataGETs counts the requests for /metadata; metadataStatus,
	// when set, is what they are answered with instead.
	metadataGETs   atomic.Int64
	metadataStatus atomic.Int64
}

// NewKeyPair makes an RSA key and a self-signed certificate valid from
// notBefore to notAfter.
func NewKeyPair(t testing.TB, notBefore, notAfter time.Time) (*rsa.PrivateKey, *x509.Certificate) {
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
func New(t testing.TB) *IdP {
	t.Helper()
	i := &IdP{store: &samlidp.MemoryStore{}}
	i.Srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/metadata" {
			i.metadataGETs.Add(1)
			if code := i.metadataStatus.Load(); code != 0 {
				http.Error(w, "metadata unavailable", int(code))
				return
			}
		}
		i.mu.Lock()
		h := i.handler
		i.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(i.Srv.Close)
	i.Rotate(t)
	return i
}

// Rotate gives the IdP a new signing key and certificate, as an
// administrator rotating it would: from now on its metadata lists only the
// new certificate and it signs with the new key. Its users, sessions and
// registered service providers stay.
func (i *IdP) Rotate(t testing.TB) {
	t.Helper()
	key, cert := NewKeyPair(t, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
	u, _ := url.Parse(i.Srv.URL)
	idp, err := samlidp.New(samlidp.Options{
		URL: *u, Key: key, Certificate: cert, Store: i.store,
		Logger: logger.DefaultLogger,
	})
	if err != nil {
		t.Fatal(err)
	}
	i.mu.Lock()
	i.handler, i.Key, i.Cert = idp, key, cert
	i.mu.Unlock()
}

// MetadataGETs is how many times /metadata was requested.
func (i *IdP) MetadataGETs() int64 { return i.metadataGETs.Load() }

// FailMetadata makes /metadata answer status, as an IdP whose metadata
// endpoint is down would; 0 serves it again. Sign-on goes on working.
func (i *IdP) FailMetadata(status int) { i.metadataStatus.Store(int64(status)) }

func (i *IdP) do(t testing.TB, method, path string, body []byte) []byte {
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
func (i *IdP) Metadata(t testing.TB) []byte { return i.do(t, http.MethodGet, "/metadata", nil) }

// Register registers a service provider by its metadata.
func (i *IdP) Register(t testing.TB, name string, spMetadata []byte) {
	i.do(t, http.MethodPut, "/services/"+name, spMetadata)
}

// AddUser adds a user who signs in with password.
func (i *IdP) AddUser(t testing.TB, name, password, email string, groups []string) {
	body, _ := json.Marshal(map[string]any{"password": password, "email": email, "groups": groups})
	i.do(t, http.MethodPut, "/users/"+name, body)
}

// SignIn plays the browser: it follows redirectURL to the IdP, posts the
// login form it gets with the user's password, and returns the
// SAMLResponse of the auto-posting form the IdP answers with.
func (i *IdP) SignIn(t testing.TB, redirectURL, user, password string) string {
	t.Helper()
	resp, err := i.Srv.Client().Get(redirectURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := readPage(resp)
	req, ok := attr(page, `name="SAMLRequest" value="`)
	if resp.StatusCode != http.StatusOK || !ok || !bytes.Contains(page, []byte(`name="password"`)) {
		t.Fatalf("GET the AuthnRequest: %d %s", resp.StatusCode, page)
	}
	relayState, _ := attr(page, `name="RelayState" value="`)
	form := url.Values{"user": {user}, "password": {password}, "SAMLRequest": {req}, "RelayState": {relayState}}
	resp, err = i.Srv.Client().PostForm(i.Srv.URL+"/sso", form)
	if err != nil {
		t.Fatal(err)
	}
	page, _ = readPage(resp)
	samlResponse, ok := attr(page, `name="SAMLResponse" value="`)
	if resp.StatusCode != http.StatusOK || !ok {
		t.Fatalf("POST the login form: %d %s", resp.StatusCode, page)
	}
	return samlResponse
}

// Login plays a browser at the IdP through c, whose jar keeps cookies:
// resp is the IdP's page for the AuthnRequest (the redirect of
// /sso/start, followed). Unless the browser's IdP session already signs
// the user in, it fills in the login form with user and password; then
// it posts the IdP's auto-posting form to its action, the service
// provider's assertion consumer service, as the page's script does. It
// returns the ACS's answer and the SAMLResponse it posted.
func Login(c *http.Client, resp *http.Response, user, password string) (*http.Response, string, error) {
	page, err := readPage(resp)
	if err != nil {
		return nil, "", err
	}
	samlResponse, ok := attr(page, `name="SAMLResponse" value="`)
	if !ok {
		sso, okSSO := attr(page, `<form method="post" action="`)
		req, okReq := attr(page, `name="SAMLRequest" value="`)
		if !okSSO || !okReq || !bytes.Contains(page, []byte(`name="password"`)) {
			return nil, "", fmt.Errorf("no login form at %s (status %d)", resp.Request.URL, resp.StatusCode)
		}
		relayState, _ := attr(page, `name="RelayState" value="`)
		form := url.Values{"user": {user}, "password": {password}, "SAMLRequest": {req}, "RelayState": {relayState}}
		if resp, err = c.PostForm(sso, form); err != nil {
			return nil, "", err
		}
		if page, err = readPage(resp); err != nil {
			return nil, "", err
		}
		samlResponse, ok = attr(page, `name="SAMLResponse" value="`)
	}
	acs, okACS := attr(page, `<form method="post" action="`)
	if !ok || !okACS {
		return nil, "", fmt.Errorf("the IdP signed nobody in (status %d): %.300s", resp.StatusCode, page)
	}
	relayState, _ := attr(page, `name="RelayState" value="`)
	out, err := c.PostForm(acs, url.Values{"SAMLResponse": {samlResponse}, "RelayState": {relayState}})
	return out, samlResponse, err
}

func readPage(resp *http.Response) ([]byte, error) {
	defer func() { _ = resp.Body.Close() }()
	page, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", resp.Request.URL, err)
	}
	return page, nil
}

// attr is the HTML-unescaped attribute value that follows prefix (which
// ends with its opening quote) in samlidp's page; ok false when prefix is
// not there. samlidp's templates are fixed, so a string search does: in
// BenchmarkSSOSAMLSignIn a regexp over the 10 kB SAMLResponse took
// longer than the service provider's signature check.
func attr(page []byte, prefix string) (string, bool) {
	_, rest, ok := bytes.Cut(page, []byte(prefix))
	if !ok {
		return "", false
	}
	v, _, ok := bytes.Cut(rest, []byte(`"`))
	return html.UnescapeString(string(v)), ok
}

// Decode returns the XML of a base64 SAMLResponse.
func Decode(samlResponse string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	return string(raw), err
}

// Encode is a SAMLResponse form value of xml.
func Encode(xml string) string { return base64.StdEncoding.EncodeToString([]byte(xml)) }
