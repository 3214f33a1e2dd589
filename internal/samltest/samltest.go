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
	"regexp"
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
	// metadataGETs counts the requests for /metadata.
	metadataGETs atomic.Int64
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

var samlResponseField = regexp.MustCompile(`name="SAMLResponse" value="([^"]+)"`)

// SignIn plays the browser: it follows redirectURL to the IdP, posts the
// login form it gets with the user's password, and returns the
// SAMLResponse of the auto-posting form the IdP answers with.
func (i *IdP) SignIn(t testing.TB, redirectURL, user, password string) string {
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

var (
	formAction     = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	formSAMLReq    = regexp.MustCompile(`name="SAMLRequest" value="([^"]*)"`)
	formRelayState = regexp.MustCompile(`name="RelayState" value="([^"]*)"`)
)

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
	if !samlResponseField.Match(page) {
		sso := formAction.FindSubmatch(page)
		req := formSAMLReq.FindSubmatch(page)
		if sso == nil || req == nil || !bytes.Contains(page, []byte(`name="password"`)) {
			return nil, "", fmt.Errorf("no login form at %s (status %d)", resp.Request.URL, resp.StatusCode)
		}
		form := url.Values{"user": {user}, "password": {password}, "SAMLRequest": {unescape(req)}, "RelayState": {unescape(formRelayState.FindSubmatch(page))}}
		if resp, err = c.PostForm(unescape(sso), form); err != nil {
			return nil, "", err
		}
		if page, err = readPage(resp); err != nil {
			return nil, "", err
		}
	}
	acs, samlResponse := formAction.FindSubmatch(page), samlResponseField.FindSubmatch(page)
	if acs == nil || samlResponse == nil {
		return nil, "", fmt.Errorf("the IdP signed nobody in (status %d): %.300s", resp.StatusCode, page)
	}
	form := url.Values{"SAMLResponse": {unescape(samlResponse)}, "RelayState": {unescape(formRelayState.FindSubmatch(page))}}
	out, err := c.PostForm(unescape(acs), form)
	return out, unescape(samlResponse), err
}

func readPage(resp *http.Response) ([]byte, error) {
	defer func() { _ = resp.Body.Close() }()
	page, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", resp.Request.URL, err)
	}
	return page, nil
}

// unescape is the HTML-unescaped first group of a match, "" for none.
func unescape(m [][]byte) string {
	if len(m) < 2 {
		return ""
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
