// Package authserver serves tenantauth's HTTP token endpoints: password and
// passwordless login, refresh rotation, logout, API keys, JWKS and
// forward-auth.
//
// It knows no Kubernetes types. Tenant state comes from a Directory that a
// source keeps current (package authserver/kube fills it from informers),
// and runtime state sits behind the store.Store interface.
package authserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/problem"
	"github.com/tenantauth/tenantauth/authserver/session"
	"github.com/tenantauth/tenantauth/authserver/sso"
	"github.com/tenantauth/tenantauth/authserver/sso/oidc"

	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/go-logr/logr"

	"github.com/tenantauth/tenantauth/authserver/mail"
	"github.com/tenantauth/tenantauth/authserver/store"
)

// Config holds the deployment-level settings of the auth server: those
// one installation shares across every organization.
type Config struct {
	// PublicURL is the URL clients reach the server at; it builds links and
	// the issuer. An http:// URL turns off the Secure cookie attribute.
	PublicURL string
	// PathPrefix mounts every endpoint under a prefix such as /api/v1.
	PathPrefix        string
	SessionCookieName string
	RefreshCookieName string
	CookieDomain      string
	// RateLimitPerMinute caps login, register, forgot-password,
	// send-magic-link and 2fa/verify per client IP and per email.
	RateLimitPerMinute int
	// ForwardedURISource is where /verify reads the original request
	// from; the zero value is ingress-nginx.
	ForwardedURISource ForwardedURISource
	// TrustedProxies are the proxies whose X-Forwarded-For entries are
	// believed (see clientIP). Empty: the client IP is the remote address.
	TrustedProxies ProxyList
	// PasswordHashConcurrency bounds the argon2 hashes running at once
	// (default: the CPUs, at most 4); PasswordHashQueue bounds the requests
	// waiting for one (default 4 per slot). Past both, 503 busy.
	PasswordHashConcurrency int
	PasswordHashQueue       int
	// Secret keys derived values shared by every replica (CSRF tokens,
	// recovery-code hashes). It is never logged.
	Secret []byte
	// RefreshGrace is how long a just-rotated refresh token may be retried
	// without the retry counting as reuse.
	RefreshGrace time.Duration
	// Argon2 are the password hashing parameters.
	Argon2 account.Argon2Params
	// MinPasswordLength is the shortest password accepted (NIST: 8).
	MinPasswordLength int
	// RequestTimeout bounds each request's store calls, so an unreachable
	// API server yields a 503 instead of a hung client.
	RequestTimeout time.Duration
	// Timeouts are the HTTP server's read, write and idle limits.
	Timeouts ServerTimeouts
	// MaxOutstandingTokens caps a user's mailed links: a new one replaces
	// the oldest (see account/tokencap.go). Zero means
	// account.DefaultMaxOutstandingTokens.
	MaxOutstandingTokens int
	// SSOPrivateNetworks lets the server reach identity providers on
	// loopback and private addresses (tests, dev, an IdP inside the
	// network); off, it refuses them (see defaultSSOHTTPClient).
	SSOPrivateNetworks bool
	// Now is the clock; tests replace it.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.PublicURL == "" {
		c.PublicURL = "http://localhost:8080"
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	c.PathPrefix = strings.TrimRight(c.PathPrefix, "/")
	if c.SessionCookieName == "" {
		c.SessionCookieName = "tenantauth_session"
	}
	if c.RefreshCookieName == "" {
		c.RefreshCookieName = "tenantauth_refresh"
	}
	if c.RateLimitPerMinute == 0 {
		c.RateLimitPerMinute = 20
	}
	if c.RefreshGrace == 0 {
		c.RefreshGrace = 5 * time.Second
	}
	if c.Argon2.MemoryKiB == 0 {
		c.Argon2 = account.DefaultArgon2
	}
	if c.MinPasswordLength == 0 {
		c.MinPasswordLength = 8
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxOutstandingTokens == 0 {
		c.MaxOutstandingTokens = account.DefaultMaxOutstandingTokens
	}
	c.Timeouts.defaults()
}

// Server is the auth server's HTTP handler and its state.
type Server struct {
	cfg      Config
	dir      *directory.Directory
	store    store.Store
	log      logr.Logger
	limiter  *rateLimiter
	verified *token.Cache
	metrics  *Metrics
	csrfKey  []byte
	// recoveryKey keys the hashes of TOTP recovery codes; like csrfKey it
	// is derived from Config.Secret, so every replica holds the same one.
	recoveryKey []byte
	// facts caches sessions' fixed facts for the hot path; sessions is
	// the session lifecycle.
	facts    *factsCache
	sessions *session.Manager
	handler  http.Handler
	// verifyPath is <path prefix>/verify, the forward-auth endpoint.
	verifyPath string
	userIDKey  []byte
	// accounts runs the account flows; mailer and members are the options
	// it is built with.
	accounts *account.Service
	mailer   mail.Mailer
	members  account.MembershipWriter
	// sso ends SSO sign-ins; oidc runs the OpenID Connect flow through
	// ssoHTTP; ssoSealer seals the flow cookie (handlers_sso.go).
	sso       *sso.Service
	oidc      *oidc.Client
	ssoHTTP   *http.Client
	ssoSealer *sso.Sealer
	// samlSPs keeps the SAML connections' service providers.
	samlSPs *samlProviders
}

// Option adjusts a Server.
type Option func(*Server)

// WithLogger sets the logger.
func WithLogger(l logr.Logger) Option { return func(s *Server) { s.log = l } }

// WithMetrics sets the metrics the server records into.
func WithMetrics(m *Metrics) Option { return func(s *Server) { s.metrics = m } }

// WithMailer sets the Mailer of magic-link, verification and reset mails.
// A Mailer that is not a *mail.Queue is wrapped in one, so requests never
// wait on the mail server.
func WithMailer(m mail.Mailer) Option { return func(s *Server) { s.mailer = m } }

// WithMembershipWriter sets what creates Memberships when a signup is
// verified.
func WithMembershipWriter(w account.MembershipWriter) Option {
	return func(s *Server) { s.members = w }
}

// New builds a server. userIDKey is the installation key user IDs are
// derived with (see package identity).
func New(cfg Config, dir *directory.Directory, st store.Store, userIDKey []byte, opts ...Option) *Server {
	cfg.defaults()
	s := &Server{cfg: cfg, dir: dir, store: st, log: logr.Discard(), userIDKey: userIDKey}
	for _, o := range opts {
		o(s)
	}
	s.log = sampledLogger(s.log, time.Now)
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	s.limiter = newRateLimiter(cfg.RateLimitPerMinute, time.Minute, cfg.Now)
	s.limiter.shared = sharedLimiter(st)
	s.verified = token.NewCache(100_000)
	s.csrfKey = deriveKey(cfg.Secret, "tenantauth csrf v1")
	s.recoveryKey = deriveKey(cfg.Secret, "tenantauth recovery-code v1")
	s.facts = newFactsCache(100_000)
	s.sessions = session.New(session.Config{
		Now: cfg.Now, RefreshGrace: cfg.RefreshGrace, Issuer: s.issuer, Audience: s.audience,
		CSRFToken: s.csrfToken, UserID: func(email string) string { return s.userFor(email).ID },
		Issued: func(kind string) { s.metrics.issued.WithLabelValues(kind).Inc() }, Log: s.log,
	}, st, dir)
	s.accounts = account.New(account.Config{
		Now: cfg.Now, PublicURL: cfg.PublicURL, PathPrefix: cfg.PathPrefix, Argon2: cfg.Argon2,
		MinPasswordLength: cfg.MinPasswordLength, PasswordHashConcurrency: cfg.PasswordHashConcurrency,
		PasswordHashQueue: cfg.PasswordHashQueue, RecoveryKey: s.recoveryKey, UserFor: s.userFor,
		SealKey: deriveKey(cfg.Secret, "tenantauth verify-email seal v1"), MaxOutstandingTokens: cfg.MaxOutstandingTokens,
		Issued: func(kind string) { s.metrics.issued.WithLabelValues(kind).Inc() }, Log: s.log,
	}, st, dir, s.sessions, s.mailer, s.members)
	s.ssoSetup()
	s.verifyPath = cfg.PathPrefix + "/verify"
	s.handler = s.routes()
	return s
}

// deriveKey derives a purpose-bound key from the server secret, so no two
// uses of the secret share a key.
func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Config returns the server's effective configuration.
func (s *Server) Config() Config { return s.cfg }

// Directory returns the directory the server answers from.
func (s *Server) Directory() *directory.Directory { return s.dir }

// Store returns the server's store.
func (s *Server) Store() store.Store { return s.store }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	p := s.cfg.PathPrefix
	handle := func(pattern string, h http.Handler) {
		method, path, _ := strings.Cut(pattern, " ")
		if path == "" {
			mux.Handle(p+method, s.instrument(method, h))
			return
		}
		mux.Handle(method+" "+p+path, s.instrument(path, h))
		// Other methods get a 405 in the contract's shape rather than the
		// mux's plain-text one. Every path here has one method.
		mux.Handle(p+path, s.instrument(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			allow := method
			if method == http.MethodGet {
				allow += ", HEAD"
			}
			w.Header().Set("Allow", allow)
			s.writeError(w, r, problem.MethodNotAllowed.Because("use "+method+" for this endpoint"))
		})))
	}
	handle("GET /health", http.HandlerFunc(s.handleHealth))
	handle("GET /readyz", http.HandlerFunc(s.handleReady))
	handle("GET /.well-known/jwks.json", http.HandlerFunc(s.handleJWKS))
	handle("GET /orgs/{org}/.well-known/jwks.json", http.HandlerFunc(s.handleOrgJWKS))
	handle("GET /orgs/{org}/.well-known/openid-configuration", http.HandlerFunc(s.handleDiscovery))
	handle("POST /auth/login", s.public(s.limited("email", s.handleLogin)))
	handle("POST /auth/refresh", s.public(s.handleRefresh))
	handle("POST /auth/logout", s.authenticated(s.handleLogout))
	handle("GET /auth/me", s.authenticated(s.handleMe))
	handle("POST /users/exchange-session", s.public(s.handleExchangeSession))
	handle("POST /users/send-magic-link", s.public(s.limited("email_address", s.handleSendMagicLink)))
	handle("POST /users/authenticate-magic-link", s.public(s.handleAuthenticateMagicLink))
	handle("POST /auth/register", s.public(s.limited("email", s.handleRegister)))
	handle("POST /auth/verify-email", s.public(s.handleVerifyEmail))
	handle("POST /auth/forgot-password", s.public(s.limited("email", s.handleForgotPassword)))
	handle("POST /auth/reset-password", s.public(s.handleResetPassword))
	handle("POST /auth/2fa/setup", s.public(s.handleTOTPSetup))
	handle("POST /auth/2fa/enable", s.public(s.handleTOTPEnable))
	handle("POST /auth/2fa/disable", s.authenticated(s.handleTOTPDisable))
	handle("POST /auth/2fa/verify", s.public(s.limited("", s.handleTOTPVerify)))
	handle("POST /sso/start", s.public(s.limited("email", s.handleSSOStart)))
	// Rate limited per client IP: each callback with a live flow cookie
	// costs a call to the provider's token endpoint.
	handle("GET /sso/oidc/callback", s.public(s.limited("", s.handleOIDCCallback)))
	handle("GET /orgs/{org}/saml/metadata", s.public(s.handleSAMLMetadata))
	handle("POST /sso/saml/acs", s.public(s.limitedByIP(s.handleSAMLACS)))
	mux.Handle("/", s.instrument("unmatched", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, problem.NotFound.New())
	})))
	// /verify, any method, and in Envoy mode /verify;params/<original
	// path>: ahead of the mux and of canonical, which would refuse an
	// unclean original path instead of letting /verify judge it.
	verify := s.instrumentVerify("/verify")
	rest := s.canonical(mux)
	return s.recoverer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.isVerifyPath(r) {
			verify.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	}))
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	if !s.dir.Synced() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "syncing"})
		return
	}
	if err := storeReady(s.store); err != nil { // revocation_view.go
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "store not ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// recoverer turns a panic into a 503 in the contract's shape, never a
// stack trace to the client.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// SetPassword hashes and stores a user's password: the seeding path of
// tools and tests (users otherwise set one through signup or reset).
func (s *Server) SetPassword(ctx context.Context, userID, password string) error {
	return s.accounts.SetPassword(ctx, userID, password)
}
