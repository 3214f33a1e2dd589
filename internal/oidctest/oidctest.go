// Package oidctest runs a real OpenID Provider on 127.0.0.1 for tests:
// zitadel/oidc's OpenID-certified op package with its example storage and
// login form, not a handler that fakes the token endpoint. A test may
// rewrite the provider's token responses (Provider.RewriteToken) to play
// a hostile provider or network, and drive flows at it directly
// (Provider.IDToken) to get genuine ID tokens for other clients.
package oidctest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"golang.org/x/oauth2"
	"golang.org/x/text/language"
)

// User is an account at the provider; its username is its email.
type User struct {
	Email         string
	Password      string
	EmailVerified bool
}

// Provider is a running OpenID Provider.
type Provider struct {
	Issuer string
	srv    *http.Server
	users  *users
	mu     sync.Mutex
	// rewrite, when set, replaces the token endpoint's JSON answer.
	rewrite func(map[string]any)
}

type users struct {
	mu sync.Mutex
	m  map[string]*storage.User
}

func (u *users) GetUserByID(id string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.m[id]
}

func (u *users) GetUserByUsername(name string) *storage.User { return u.GetUserByID(name) }
func (u *users) ExampleClientID() string                     { return "service" }

// Client is a client registered at the provider.
type Client struct {
	ID, Secret  string
	RedirectURI string
}

// Start runs a provider with clients on 127.0.0.1 until the test ends.
func Start(t testing.TB, clients ...Client) *Provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{Issuer: "http://" + ln.Addr().String(), users: &users{m: map[string]*storage.User{}}}
	reg := map[string]*storage.Client{}
	for _, c := range clients {
		reg[c.ID] = storage.WebClient(c.ID, c.Secret, c.RedirectURI)
	}
	st := storage.NewStorageWithClients(p.users, reg)
	// The example logs every request through slog; a test wants quiet.
	router := exampleop.SetupServer(p.Issuer, st, slog.New(slog.DiscardHandler), false)
	p.srv = &http.Server{Handler: p.intercept(router)}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// AddUser creates or replaces a user.
func (p *Provider) AddUser(u User) {
	p.users.mu.Lock()
	defer p.users.mu.Unlock()
	p.users.m[u.Email] = &storage.User{ID: u.Email, Username: u.Email, Password: u.Password, FirstName: "Test",
		LastName: "User", Email: u.Email, EmailVerified: u.EmailVerified, PreferredLanguage: language.English}
}

// Stop shuts the provider down: the "IdP is down" case.
func (p *Provider) Stop() { _ = p.srv.Close() }

// RewriteToken makes f rewrite the next token-endpoint answers (nil
// stops): a hostile provider, or a network attacker the test plays.
func (p *Provider) RewriteToken(f func(body map[string]any)) {
	p.mu.Lock()
	p.rewrite = f
	p.mu.Unlock()
}

// intercept applies RewriteToken to POST /oauth/token answers.
func (p *Provider) intercept(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		f := p.rewrite
		p.mu.Unlock()
		if f == nil || r.URL.Path != "/oauth/token" {
			next.ServeHTTP(w, r)
			return
		}
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		body := map[string]any{}
		if json.Unmarshal(rec.body.Bytes(), &body) == nil && rec.status == http.StatusOK {
			f(body)
		}
		out, _ := json.Marshal(body)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.status)
		_, _ = w.Write(out)
	})
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(s int)           { r.status = s }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }

var formID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// Login signs user in on the provider's login page that resp (the page
// the authorization endpoint redirected to) shows, and returns the answer
// of the form's POST, through c.
func Login(c *http.Client, resp *http.Response, email, password string) (*http.Response, error) {
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	m := formID.FindSubmatch(body)
	if m == nil {
		return nil, fmt.Errorf("no login form at %s (status %d)", resp.Request.URL, resp.StatusCode)
	}
	u := *resp.Request.URL
	u.RawQuery = ""
	return c.PostForm(u.String(), url.Values{"id": {string(m[1])}, "username": {email}, "password": {password}})
}

// IDToken runs a whole authorization-code flow at the provider for
// client, as user, with nonce, and returns the genuine ID token it
// issues. Tests swap it into another flow to play tokens of another
// audience or issuer.
func (p *Provider) IDToken(t testing.TB, client Client, user User, nonce string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	var code string
	hc := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), client.RedirectURI) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	cfg := &oauth2.Config{ClientID: client.ID, ClientSecret: client.Secret, RedirectURL: client.RedirectURI,
		Scopes: []string{"openid", "email"}, Endpoint: oauth2.Endpoint{AuthURL: p.Issuer + "/auth", TokenURL: p.Issuer + "/oauth/token"}}
	verifier := oauth2.GenerateVerifier()
	resp, err := hc.Get(cfg.AuthCodeURL("s", oauth2.SetAuthURLParam("nonce", nonce), oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = Login(hc, resp, user.Email, user.Password)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if code == "" {
		t.Fatalf("no code from %s", p.Issuer)
	}
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	return raw
}
