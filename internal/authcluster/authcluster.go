// Package authcluster runs several auth servers on one store, each on its
// own real listener, with the same organization, signing keys and
// installation key, as replicas behind one Service would be. Tests and
// load tools use it to play what one replica does and another sees.
package authcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/internal/identity"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
)

// InstallKey is the installation key every replica shares.
var InstallKey = []byte("authcluster-installation-key-012")

// Org is the one organization's slug; OrgRef its reference.
const (
	Org    = "acme"
	OrgRef = "demo/acme"
)

// Options shape the replicas.
type Options struct {
	// RateLimitPerMinute as in authserver.Config; 0 means no limit.
	RateLimitPerMinute int
	// Argon2 defaults to cheap parameters; load tools may pass the real ones.
	Argon2 *account.Argon2Params
	// AccessTTL of the organization; default 15m.
	AccessTTL time.Duration
	// Now is every replica's clock; nil means time.Now.
	Now func() time.Time
}

// Replica is one auth server and its listener.
type Replica struct {
	Server *authserver.Server
	Store  store.Store
	URL    string
	http   *httptest.Server
}

// Cluster is the replicas.
type Cluster struct {
	Replicas []*Replica
	keys     *directory.KeySet
	opts     Options
}

// New starts one replica per store. The stores may be one shared value or
// one each (as postgres replicas have their own pool and view).
func New(stores []store.Store, opts Options) (*Cluster, error) {
	set := &signingkeys.Set{}
	if _, _, err := set.Rotate(signingkeys.Policy{Algorithm: "ES256", RotationInterval: 24 * time.Hour, AccessTokenTTL: time.Hour},
		time.Now().Add(-time.Minute)); err != nil {
		return nil, err
	}
	ks, err := directory.PrepareKeySet(set)
	if err != nil {
		return nil, err
	}
	if opts.AccessTTL == 0 {
		opts.AccessTTL = 15 * time.Minute
	}
	c := &Cluster{keys: ks, opts: opts}
	for _, st := range stores {
		c.Replicas = append(c.Replicas, c.start(st))
	}
	return c, nil
}

func (c *Cluster) start(st store.Store) *Replica {
	dir := directory.NewDirectory()
	roles := map[string]directory.RoleDef{"owner": {Rank: 100}, "member": {Rank: 40}, "viewer": {Rank: 20}}
	dir.PutOrg(&directory.Org{Ref: OrgRef, ID: "org_acme", Slug: Org, Name: "Acme", AccessTTL: c.opts.AccessTTL,
		IdleTTL: 24 * time.Hour, AbsoluteTTL: 72 * time.Hour, Algorithm: "ES256", Password: true, APIKeys: true,
		DefaultRole: "member", Roles: roles})
	dir.PutKeys(OrgRef, c.keys)
	dir.SetSynced()
	argon := account.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}
	if c.opts.Argon2 != nil {
		argon = *c.opts.Argon2
	}
	limit := c.opts.RateLimitPerMinute
	if limit == 0 {
		limit = -1
	}
	srv := authserver.New(authserver.Config{PublicURL: "http://auth.test", Secret: InstallKey, Argon2: argon,
		RateLimitPerMinute: limit, Now: c.opts.Now}, dir, st, InstallKey)
	h := httptest.NewServer(srv)
	return &Replica{Server: srv, Store: st, URL: h.URL, http: h}
}

// AddMember makes email a member on every replica, with password.
func (c *Cluster) AddMember(ctx context.Context, email, role, password string) error {
	for _, r := range c.Replicas {
		r.Server.Directory().PutMember(&directory.Member{Ref: OrgRef + "-" + email, OrgRef: OrgRef, Email: email, Role: role})
	}
	return c.Replicas[0].Server.SetPassword(ctx, identity.UserID(InstallKey, email), password)
}

// Close stops every listener.
func (c *Cluster) Close() {
	for _, r := range c.Replicas {
		r.http.Close()
	}
}

// Session is a session response's tokens.
type Session struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// Response is a status, an error code and the raw body.
type Response struct {
	Status int
	Code   string
	Body   []byte
}

// Client sends requests with a shared keep-alive transport.
var Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

// Do sends a JSON request to base+path; bearer may be empty.
func Do(ctx context.Context, method, url string, body any, bearer string) (Response, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return Response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := Client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	r := Response{Status: resp.StatusCode, Body: b}
	if r.Status < 400 {
		// Only errors carry a code; decoding every success would be the
		// load tools' largest cost after the server's.
		return r, nil
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil {
		r.Code = e.Error.Code
	}
	return r, nil
}

// Login signs in on replica base.
func Login(ctx context.Context, base, email, password string) (*Session, Response, error) {
	r, err := Do(ctx, "POST", base+"/auth/login", map[string]string{"email": email, "password": password, "organization": Org}, "")
	if err != nil || r.Status != http.StatusOK {
		return nil, r, err
	}
	var s Session
	if err := json.Unmarshal(r.Body, &s); err != nil || s.AccessToken == "" {
		return nil, r, fmt.Errorf("login answered %s", r.Body)
	}
	return &s, r, nil
}

// Refresh spends a refresh token on replica base.
func Refresh(ctx context.Context, base, token string) (*Session, Response, error) {
	r, err := Do(ctx, "POST", base+"/auth/refresh", map[string]string{"refresh_token": token}, "")
	if err != nil || r.Status != http.StatusOK {
		return nil, r, err
	}
	var s Session
	if err := json.Unmarshal(r.Body, &s); err != nil {
		return nil, r, err
	}
	return &s, r, nil
}

// Verify asks replica base's /verify about an access token.
func Verify(ctx context.Context, base, jwt string) (Response, error) {
	return Do(ctx, "GET", base+"/verify?org="+Org, nil, jwt)
}
