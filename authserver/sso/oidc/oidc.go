// Package oidc is the OpenID Connect side of enterprise SSO: the
// authorization-code flow with PKCE (S256) through golang.org/x/oauth2, and
// ID-token verification through github.com/coreos/go-oidc/v3 (issuer,
// audience, expiry, signature with an algorithm pinned to what discovery
// advertises, never none or HMAC), plus the nonce.
//
// It imports net/http for one thing: the *http.Client the HTTP layer
// hands it for its outbound calls (discovery, JWKS, token and userinfo
// endpoints), which internal/archtest allows by name. It serves nothing.
package oidc

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/problem"
	"github.com/tenantauth/tenantauth/authserver/sso"
)

// DiscoveryTTL is how long a provider's discovery document is kept; its
// keys are refreshed by go-oidc when a token names an unknown one.
const DiscoveryTTL = time.Hour

// asymmetric are the ID-token algorithms accepted, at most: a provider's
// discovery narrows them further. HMAC would make the client secret a
// signing key; none signs nothing.
var asymmetric = []string{
	gooidc.RS256, gooidc.RS384, gooidc.RS512, gooidc.ES256, gooidc.ES384, gooidc.ES512,
	gooidc.PS256, gooidc.PS384, gooidc.PS512, gooidc.EdDSA,
}

// Client runs OIDC sign-ins. It keeps one discovered provider per
// connection; a failed discovery is not kept, so the next sign-in retries.
type Client struct {
	// HTTP makes every outbound call; the HTTP layer bounds its time and
	// body sizes.
	HTTP *http.Client
	// RedirectURL is this server's callback, GET /sso/oidc/callback.
	RedirectURL string
	Now         func() time.Time

	mu        sync.Mutex
	providers map[string]*provider // by connection ref
}

type provider struct {
	key      string // what the connection was when discovered
	p        *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
	at       time.Time
}

func providerKey(c *directory.SSOConnection) string {
	return c.UID + "\x00" + c.Issuer + "\x00" + c.ClientID
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return gooidc.ClientContext(ctx, c.HTTP)
}

// provider discovers conn's provider, or returns the one kept. An
// unreachable or unusable provider is 503 sso_unavailable.
func (c *Client) provider(ctx context.Context, conn *directory.SSOConnection) (*provider, error) {
	key := providerKey(conn)
	c.mu.Lock()
	p := c.providers[conn.Ref]
	c.mu.Unlock()
	if p != nil && p.key == key && c.Now().Sub(p.at) < DiscoveryTTL {
		return p, nil
	}
	// The provider's key set fetches keys with the context it was made
	// with, long after this request: a background context with the client.
	bg := c.ctx(context.WithoutCancel(ctx))
	dctx, cancel := context.WithTimeout(c.ctx(ctx), 10*time.Second)
	defer cancel()
	gp, err := gooidc.NewProvider(dctx, conn.Issuer)
	if err != nil {
		return nil, problem.SSOUnavailable.Because("the organization's identity provider cannot be reached or its discovery document is unusable; retry shortly")
	}
	var meta struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := gp.Claims(&meta); err != nil {
		return nil, problem.SSOUnavailable.Because("the identity provider's discovery document is unusable")
	}
	algs := slices.DeleteFunc(slices.Clone(meta.Algs), func(a string) bool { return !slices.Contains(asymmetric, a) })
	if len(algs) == 0 {
		return nil, problem.SSOUnavailable.Because("the identity provider advertises no asymmetric ID-token signing algorithm")
	}
	// Re-made from the background context so the key set outlives this
	// request; the discovery above proved the issuer reachable.
	gp, err = gooidc.NewProvider(bg, conn.Issuer)
	if err != nil {
		return nil, problem.SSOUnavailable.Because("the organization's identity provider cannot be reached; retry shortly")
	}
	p = &provider{key: key, p: gp, at: c.Now(),
		verifier: gp.VerifierContext(bg, &gooidc.Config{ClientID: conn.ClientID, SupportedSigningAlgs: algs, Now: c.Now})}
	c.mu.Lock()
	if c.providers == nil {
		c.providers = map[string]*provider{}
	}
	c.providers[conn.Ref] = p
	c.mu.Unlock()
	return p, nil
}

func (c *Client) oauth2Config(conn *directory.SSOConnection, p *provider) *oauth2.Config {
	scopes := conn.Scopes
	if len(scopes) == 0 {
		scopes = []string{gooidc.ScopeOpenID, "email", "profile"}
	}
	return &oauth2.Config{ClientID: conn.ClientID, ClientSecret: conn.ClientSecret, Endpoint: p.p.Endpoint(),
		RedirectURL: c.RedirectURL, Scopes: scopes}
}

// Start begins a sign-in through conn: the URL to send the browser to,
// and the flow to seal into its cookie.
func (c *Client) Start(ctx context.Context, conn *directory.SSOConnection) (string, sso.Flow, error) {
	p, err := c.provider(ctx, conn)
	if err != nil {
		return "", sso.Flow{}, err
	}
	f := sso.Flow{Connection: conn.Ref, ConnectionUID: conn.UID, OrgRef: conn.OrgRef,
		State: sso.RandomString(32), Nonce: sso.RandomString(32), Verifier: oauth2.GenerateVerifier(),
		ExpiresAt: c.Now().Add(sso.FlowTTL).Unix()}
	u := c.oauth2Config(conn, p).AuthCodeURL(f.State, gooidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	return u, f, nil
}

// Callback is what the provider sent back to GET /sso/oidc/callback.
type Callback struct {
	State, Code             string
	Error, ErrorDescription string
}

// Finish ends a sign-in: the state must be the flow's, the code is
// exchanged with the PKCE verifier, and the ID token must verify and
// carry the flow's nonce. conn must be the flow's connection (the caller
// looked it up by f.Connection and checked its UID).
func (c *Client) Finish(ctx context.Context, conn *directory.SSOConnection, f sso.Flow, cb Callback) (sso.Identity, error) {
	if cb.State == "" || subtle.ConstantTimeCompare([]byte(cb.State), []byte(f.State)) != 1 {
		return sso.Identity{}, problem.SSOStateInvalid.Because("the callback's state does not match the sign-in this browser began; start it again")
	}
	if cb.Error != "" {
		return sso.Identity{}, problem.SSODenied.Because("the identity provider answered " + safeCode(cb.Error))
	}
	if cb.Code == "" {
		return sso.Identity{}, problem.SSOFailed.Because("the callback carries no code")
	}
	p, err := c.provider(ctx, conn)
	if err != nil {
		return sso.Identity{}, err
	}
	cctx, cancel := context.WithTimeout(c.ctx(ctx), 10*time.Second)
	defer cancel()
	tok, err := c.oauth2Config(conn, p).Exchange(cctx, cb.Code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return sso.Identity{}, problem.SSOFailed.Because("the identity provider refused the code (" + safeCode(re.ErrorCode) + "); start the sign-in again")
		}
		return sso.Identity{}, problem.SSOUnavailable.Because("the identity provider's token endpoint cannot be reached; retry shortly")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return sso.Identity{}, problem.SSOFailed.Because("the identity provider returned no ID token")
	}
	idt, err := p.verifier.Verify(cctx, raw)
	if err != nil {
		return sso.Identity{}, problem.SSOFailed.Because("the ID token does not verify: " + verifyProblem(err))
	}
	if idt.Nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return sso.Identity{}, problem.SSOFailed.Because("the ID token's nonce is not this sign-in's")
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return sso.Identity{}, problem.SSOFailed.Because("the ID token's claims are not JSON")
	}
	id := identityFrom(conn, idt.Subject, claims)
	if id.Email == "" {
		// Some providers put the email only in userinfo (OIDC Core 5.4):
		// its subject must be the ID token's (5.3.2).
		ui, err := p.p.UserInfo(cctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return sso.Identity{}, problem.SSOFailed.Because("the ID token has no email and userinfo could not be read")
		}
		if ui.Subject != idt.Subject {
			return sso.Identity{}, problem.SSOFailed.Because("userinfo names another subject than the ID token")
		}
		uc := map[string]any{}
		if err := ui.Claims(&uc); err != nil {
			return sso.Identity{}, problem.SSOFailed.Because("userinfo is not JSON")
		}
		id = identityFrom(conn, idt.Subject, uc)
	}
	return id, nil
}

// identityFrom reads the email, email_verified and groups claims.
func identityFrom(conn *directory.SSOConnection, sub string, claims map[string]any) sso.Identity {
	emailClaim := conn.ClaimEmail
	if emailClaim == "" {
		emailClaim = "email"
	}
	id := sso.Identity{Subject: sub}
	id.Email, _ = claims[emailClaim].(string)
	switch v := claims["email_verified"].(type) {
	case bool:
		id.EmailVerified = v
	case string: // some providers send "true"
		id.EmailVerified = v == "true"
	}
	if conn.ClaimGroups != "" {
		switch g := claims[conn.ClaimGroups].(type) {
		case []any:
			for _, v := range g {
				if s, ok := v.(string); ok {
					id.Groups = append(id.Groups, s)
				}
			}
		case string:
			id.Groups = []string{g}
		}
	}
	return id
}

// verifyProblem names why go-oidc refused a token, without echoing it.
func verifyProblem(err error) string {
	var exp *gooidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &exp):
		return "it has expired"
	case strings.Contains(msg, "issuer"):
		return "it was issued by another issuer"
	case strings.Contains(msg, "audience"):
		return "it was issued for another client"
	case strings.Contains(msg, "signing algorithm") || strings.Contains(msg, "malformed jwt") || strings.Contains(msg, "unexpected signature algorithm"):
		return "it is not signed with an algorithm the provider advertises"
	case strings.Contains(msg, "signature"):
		return "its signature is invalid"
	}
	return "it is malformed"
}

// safeCode keeps an OAuth error code to its grammar (RFC 6749 A.7), so a
// provider's text never reaches a response as it came.
func safeCode(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r >= 0x20 && r <= 0x7e && r != '"' && r != '\\' {
			return r
		}
		return -1
	}, s)
}
