package authserver

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/problem"
	"github.com/tenantauth/tenantauth/authserver/sso"
	"github.com/tenantauth/tenantauth/authserver/sso/oidc"
	"github.com/tenantauth/tenantauth/internal/netguard"
)

// ssoCookie carries a begun SSO sign-in's sealed flow (sso.Flow) from
// POST /sso/start to its callback: the state, the nonce and the PKCE
// verifier, bound to this browser without a store record, so an
// unauthenticated start writes nothing. Like the signup binding it is
// host-only and, over https, __Host- prefixed; SameSite=Lax lets the
// identity provider's top-level redirect back carry it.
const (
	ssoCookie     = "tenantauth_sso"
	hostSSOCookie = "__Host-" + ssoCookie
)

// WithSSOHTTPClient sets the client of the calls to identity providers
// (discovery, keys, token and userinfo endpoints); the default bounds
// each call to 10 seconds and each body to 1 MiB.
func WithSSOHTTPClient(c *http.Client) Option { return func(s *Server) { s.ssoHTTP = c } }

// ssoSetup builds the SSO side of the server: the flow sealer, the OIDC
// client, the SAML service providers' cache and the sign-in service.
func (s *Server) ssoSetup() {
	sealer, err := sso.NewSealer(deriveKey(s.cfg.Secret, "tenantauth sso flow seal v1"))
	if err != nil {
		panic(err) // deriveKey always returns 32 bytes
	}
	s.ssoSealer = sealer
	if s.ssoHTTP == nil {
		s.ssoHTTP = defaultSSOHTTPClient(s.cfg.SSOPrivateNetworks)
	}
	s.oidc = &oidc.Client{HTTP: s.ssoHTTP, RedirectURL: s.cfg.PublicURL + s.cfg.PathPrefix + "/sso/oidc/callback", Now: s.cfg.Now}
	s.samlSPs = &samlProviders{now: s.cfg.Now, log: s.log.WithName("saml"), build: s.buildSAMLSP,
		current: s.samlSourceAt, max: samlProvidersMax}
	s.sso = &sso.Service{Dir: s.dir, Accounts: s.accounts, UserFor: s.userFor, Log: s.log.WithName("sso")}
	if w, ok := s.members.(sso.MembershipWriter); ok {
		s.sso.Members = w
	}
}

// defaultSSOHTTPClient bounds calls to identity providers: 10 seconds,
// 1 MiB bodies, at most 3 redirects and none from https to http. Unless
// private is set, it connects to public addresses only: an issuer is a
// tenant's choice and /sso/start is unauthenticated, so without this
// anyone could make the server probe its own loopback ports, the cloud
// metadata address or the cluster's services. The check runs on the
// address dialled, after DNS, so a name that resolves (or re-resolves)
// to a private address is refused too.
func defaultSSOHTTPClient(private bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if !private {
		t.DialContext = netguard.Dialer(10 * time.Second).DialContext
		t.Proxy = nil // a proxy would dial for us, unchecked
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: limitedBodies{t},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return fmt.Errorf("refusing a redirect from https to %s", req.URL.Scheme)
			}
			return nil
		},
	}
}

// limitedBodies cuts every response body at 1 MiB, so no provider can
// make the server read without end (go-oidc reads discovery whole).
type limitedBodies struct{ next http.RoundTripper }

func (l limitedBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, maxBody), resp.Body}
	return resp, nil
}

type ssoStartRequest struct {
	Organization string `json:"organization"`
	Email        string `json:"email"`
}

// handleSSOStart is POST /sso/start: {organization} or {email} picks the
// connection; the answer is {redirect_url}, or a 302 to it for a request
// that accepts text/html.
func (s *Server) handleSSOStart(w http.ResponseWriter, r *http.Request) error {
	var req ssoStartRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	email := ""
	switch {
	case req.Organization != "":
	case req.Email != "":
		if email = normalizeEmail(req.Email); !validEmail(email) {
			return problem.InvalidEmail.New()
		}
	default:
		return problem.InvalidOrganization.Because("organization (an organization ID or slug) or email is required")
	}
	conn, _, err := sso.Resolve(s.dir, req.Organization, email)
	if err != nil {
		return err
	}
	var redirect string
	var flow sso.Flow
	switch conn.Protocol {
	case "oidc":
		redirect, flow, err = s.oidc.Start(r.Context(), conn)
	case "saml":
		redirect, flow, err = s.samlStart(r.Context(), conn)
	default:
		return problem.SSONotConfigured.Because("this organization's SSO connection uses " + conn.Protocol + ", which this server does not serve yet")
	}
	if err != nil {
		return err
	}
	sealed, err := s.ssoSealer.Seal(flow)
	if err != nil {
		return fmt.Errorf("seal sso flow: %w", err)
	}
	if conn.Protocol == "saml" {
		http.SetCookie(w, s.samlFlowCookie(sealed))
	} else {
		http.SetCookie(w, s.ssoFlowCookie(sealed, int(sso.FlowTTL/time.Second)))
	}
	w.Header().Set("Cache-Control", "no-store")
	if acceptsHTML(r) {
		http.Redirect(w, r, redirect, http.StatusFound)
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect_url": redirect})
	return nil
}

// handleOIDCCallback is GET /sso/oidc/callback: the flow cookie must open
// and name a connection that is still the same object; then the OIDC
// checks, then the sign-in. The cookie is spent whatever the outcome.
func (s *Server) handleOIDCCallback(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	conn, flow, err := s.spendFlow(w, r, "oidc")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	id, err := s.oidc.Finish(r.Context(), conn, flow, oidc.Callback{
		State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), ErrorDescription: q.Get("error_description"),
	})
	if err != nil {
		return err
	}
	out, err := s.sso.SignIn(r.Context(), conn, id)
	return s.answer(w, out, err)
}

// spendFlow spends the browser's flow cookie, whatever the outcome, and
// returns the flow it seals with its connection, which must still be the
// same object, of protocol.
func (s *Server) spendFlow(w http.ResponseWriter, r *http.Request, protocol string) (*directory.SSOConnection, sso.Flow, error) {
	c, err := r.Cookie(s.ssoCookieName())
	http.SetCookie(w, s.ssoFlowCookie("", -1))
	if err != nil {
		return nil, sso.Flow{}, problem.SSOStateInvalid.Because("no sign-in was started in this browser (the SSO cookie is missing or expired); start it again")
	}
	flow, err := s.ssoSealer.Open(c.Value, s.cfg.Now())
	if err != nil {
		return nil, sso.Flow{}, problem.SSOStateInvalid.New()
	}
	conn, ok := s.dir.SSOConnection(flow.Connection)
	if !ok || conn.UID != flow.ConnectionUID || conn.OrgRef != flow.OrgRef || conn.Protocol != protocol {
		return nil, sso.Flow{}, problem.SSOStateInvalid.Because("the SSO connection this sign-in began on has changed or is gone; start it again")
	}
	return conn, flow, nil
}

func (s *Server) ssoCookieName() string {
	if strings.HasPrefix(s.cfg.PublicURL, "http://") {
		return ssoCookie
	}
	return hostSSOCookie
}

// ssoFlowCookie is the flow cookie with value, or its removal (maxAge -1).
func (s *Server) ssoFlowCookie(value string, maxAge int) *http.Cookie {
	c := &http.Cookie{Name: ssoCookie, Value: value, Path: s.cfg.PathPrefix + "/sso", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if !strings.HasPrefix(s.cfg.PublicURL, "http://") {
		c.Name, c.Path, c.Secure = hostSSOCookie, "/", true
	}
	return c
}

// acceptsHTML reports whether the request accepts text/html: a browser
// navigation rather than an API call.
func acceptsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/html" {
			return true
		}
	}
	return false
}
