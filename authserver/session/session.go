package session

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// Session is an org-scoped Session's server-side state, across every
// refresh that descends from it. It belongs to the family of the sign-in
// it came from (see family.go).
type Session struct {
	UserID    string    `json:"user_id"`
	Email     string    `json:"email"`
	OrgRef    string    `json:"org_ref"`
	OrgID     string    `json:"org_id"`
	AMR       []string  `json:"amr"`
	FamilyID  string    `json:"family_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// AuthTime is when the family signed in; a switch keeps it.
	AuthTime          time.Time `json:"auth_time,omitempty"`
	IdleExpiresAt     time.Time `json:"idle_expires_at"`
	AbsoluteExpiresAt time.Time `json:"absolute_expires_at"`
	// RefreshHash is the hash of the one refresh token that may be used.
	RefreshHash string `json:"refresh_hash"`
	// SpentDigests are the refresh tokens already used, newest last, as
	// spentDigestLen characters each (see spentDigest); one of them coming
	// back means the token leaked. LastSpentAt is when the newest was
	// spent, for the retry grace.
	SpentDigests string    `json:"spent_digests,omitempty"`
	LastSpentAt  time.Time `json:"last_spent_at,omitzero"`
	// Spent is the history as records before SpentDigests kept it: read,
	// and folded into SpentDigests at the next write.
	Spent     []spentToken `json:"spent,omitempty"`
	RevokedAt *time.Time   `json:"revoked_at,omitempty"`
	Reason    string       `json:"revoke_reason,omitempty"`
}

type spentToken struct {
	Hash string    `json:"hash"`
	At   time.Time `json:"at"`
}

// spentDigestLen is the length of one spent token's digest: the first 16
// bytes (128 bits) of its secret's SHA-256, base64url. Telling a spent
// token from a guess needs no more (finding a secret whose digest matches
// is a 2^128 preimage), and 32 of them take 704 bytes of the record where
// full hashes with times took about 3.4 kB, which every refresh reads,
// decodes, encodes and writes.
const spentDigestLen = 22

// spentDigest is the digest of a refresh token's stored hash (hex SHA-256
// of its secret, token.HashSecret).
func spentDigest(hash string) string {
	sum, err := hex.DecodeString(hash)
	if err != nil || len(sum) < 16 {
		return strings.Repeat("!", spentDigestLen) // not base64url: matches no secret's digest
	}
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// foldLegacySpent moves a history kept as Spent into SpentDigests.
func (s *Session) foldLegacySpent() {
	if len(s.Spent) == 0 {
		return
	}
	var b strings.Builder
	for _, t := range s.Spent {
		b.WriteString(spentDigest(t.Hash))
	}
	s.SpentDigests = b.String() + s.SpentDigests
	s.LastSpentAt = s.Spent[len(s.Spent)-1].At
	s.Spent = nil
}

// spend records the current refresh token as spent at now, keeping the
// newest maxSpent.
func (s *Session) spend(now time.Time) {
	s.foldLegacySpent()
	d := s.SpentDigests + spentDigest(s.RefreshHash)
	if n := len(d) / spentDigestLen; n > maxSpent {
		d = d[(n-maxSpent)*spentDigestLen:]
	}
	s.SpentDigests, s.LastSpentAt = d, now
}

// spentIndex is the position of secret's token in the spent history,
// counted back from the newest (0), or -1 when it is not there. Every
// entry is compared, in constant time each.
func (s *Session) spentIndex(secret string) int {
	s.foldLegacySpent()
	want := []byte(spentDigest(token.HashSecret(secret)))
	found := -1
	n := len(s.SpentDigests) / spentDigestLen
	for i := range n {
		got := s.SpentDigests[i*spentDigestLen : (i+1)*spentDigestLen]
		if subtle.ConstantTimeCompare(want, []byte(got)) == 1 {
			found = n - 1 - i
		}
	}
	return found
}

// RevokedRetention is how long a revoked session's or family's record is
// kept: long enough that a client racing the revocation (a refresh in
// flight, a replayed token a moment later) reads session_revoked or
// refresh_token_reused. After it, a missing session or family is refused
// just the same (401), so keeping it longer protects nothing and only
// fills the store.
const RevokedRetention = 10 * time.Minute

// maxSpent bounds the reuse-detection history per session.
const maxSpent = 32

// IDPrefix starts session IDs in responses and the sid claim.
const IDPrefix = "ses_"

// User is a proven identity before an organization is chosen.
type User struct {
	ID    string
	Email string
}

// Response is the contract's session response.
type Response struct {
	AccessToken  string   `json:"access_token"`
	TokenType    string   `json:"token_type"`
	ExpiresIn    int      `json:"expires_in"`
	RefreshToken string   `json:"refresh_token"`
	CSRFToken    string   `json:"csrf_token"`
	Session      Info     `json:"session"`
	User         UserInfo `json:"user"`
	Organization OrgInfo  `json:"organization"`
	Role         string   `json:"role"`
}

type Info struct {
	ID        string `json:"id"`
	JWT       string `json:"jwt"`
	ExpiresAt string `json:"expires_at"`
}

type UserInfo struct {
	ID    string `json:"id"`
	Email string `json:"email"`
}

type OrgInfo struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
	Role string `json:"role,omitempty"`
}

// Start creates a session for u in org and issues its first tokens.
// Without a lineage it is a sign-in and starts a family; with one (a
// switch) it joins that family, keeping its sign-in time and never
// outliving its absolute expiry.
func (s *Manager) Start(ctx context.Context, u User, org *directory.Org, role string, amr []string, lin *Lineage) (*Response, error) {
	now := s.cfg.Now().UTC()
	absolute := now.Add(org.AbsoluteTTL)
	if lin == nil {
		var err error
		if lin, err = s.createFamily(ctx, u.ID, amr, now, absolute); err != nil {
			return nil, err
		}
	}
	absolute = minTime(absolute, lin.AbsoluteExpiresAt)
	if !now.Before(absolute) {
		return nil, problem.SessionExpired.Because("the sign-in this session came from has expired; sign in again")
	}
	raw, id, hash := token.NewOpaque(token.PrefixRefresh)
	sess := &Session{
		UserID: u.ID, Email: u.Email, OrgRef: org.Ref, OrgID: org.ID, AMR: amr, CreatedAt: now,
		FamilyID: lin.FamilyID, AuthTime: lin.AuthTime,
		IdleExpiresAt:     minTime(now.Add(org.IdleTTL), absolute),
		AbsoluteExpiresAt: absolute,
		RefreshHash:       hash,
	}
	// The record is collectable once idle: each refresh moves that on.
	rec := &store.Record{Kind: store.KindSession, ID: IDPrefix + id, UserID: u.ID, ExpiresAt: sess.IdleExpiresAt}
	if err := store.Put(ctx, s.store, rec, sess); err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	s.cfg.issued("refresh")
	return s.Respond(rec.ID, sess, raw, org, role)
}

// Respond signs an access token for the session.
func (s *Manager) Respond(sid string, sess *Session, refreshToken string, org *directory.Org, role string) (*Response, error) {
	now := s.cfg.Now().UTC()
	ks, ok := s.dir.Keys(org.Ref)
	var key *directory.SigningKey
	if ok {
		key = ks.Active(now)
	}
	if key == nil {
		return nil, problem.OrganizationNotReady.New()
	}
	exp := now.Add(org.AccessTTL)
	rd, _ := org.Role(role)
	claims := &token.Claims{
		Issuer: s.cfg.Issuer(org), Subject: sess.UserID, Audience: s.cfg.Audience(org),
		ExpiresAt: exp.Unix(), IssuedAt: now.Unix(), NotBefore: now.Unix(), ID: token.NewID(),
		SessionID: sid, OrgID: org.ID, OrgSlug: org.Slug, Role: role, Permissions: nonNil(rd.Permissions),
		Email: sess.Email, AMR: sess.AMR,
	}
	jwt, err := token.Sign(claims, key)
	if err != nil {
		return nil, fmt.Errorf("sign access token for %s: %w", org.Slug, err)
	}
	s.cfg.issued("access")
	return &Response{
		AccessToken: jwt, TokenType: "bearer", ExpiresIn: int(org.AccessTTL / time.Second),
		RefreshToken: refreshToken, CSRFToken: s.cfg.CSRFToken(sid),
		Session:      Info{ID: sid, JWT: jwt, ExpiresAt: exp.Format(time.RFC3339)},
		User:         UserInfo{ID: sess.UserID, Email: sess.Email},
		Organization: OrgInfo{ID: org.ID, Slug: org.Slug, Name: org.Name},
		Role:         role,
	}, nil
}

// Refresh spends a Refresh token and issues the next one. Single use rests
// on the store's compare-and-swap: of concurrent refreshes of one token,
// exactly one update wins; the others re-read and find the token spent. A
// token the session as read never held is tried once more on a read past
// the backend's index, if it keeps one (see rotateLive).
func (s *Manager) Refresh(ctx context.Context, raw string) (*Response, error) {
	id, secret, ok := token.ParseOpaque(token.PrefixRefresh, raw)
	if !ok {
		return nil, problem.InvalidRefreshToken.New()
	}
	sid := IDPrefix + id
	resp, err := s.refresh(ctx, sid, id, secret)
	if errors.Is(err, errUnknownSecret) {
		return s.rotateLive(ctx, sid, id, secret)
	}
	return resp, err
}

// refresh rotates the session sid from what this replica can read soonest.
func (s *Manager) refresh(ctx context.Context, sid, id, secret string) (*Response, error) {
	// A backend that keeps recent records (postgres) may hold this session
	// as this replica last wrote it. When the token is its current one, the
	// rotation is tried from that copy, with no read: the swap's version
	// check decides whether it was current. Nothing is refused on a copy;
	// any other outcome is decided on a fresh read.
	copied := new(Session)
	if rec, ok := store.LoadRecent(s.store, store.KindSession, sid, copied); ok &&
		copied.RevokedAt == nil && token.SecretMatches(secret, copied.RefreshHash) {
		resp, err := s.rotate(ctx, rec, copied, id, secret, true)
		if !errors.Is(err, errFromCopy) {
			return resp, err
		}
	}
	read := new(Session)
	rec, err := store.Load(ctx, s.store, store.KindSession, sid, read)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errInvalidRefresh
		}
		return nil, err
	}
	return s.rotate(ctx, rec, read, id, secret, false)
}

// errUnknownSecret is what rotate answers for a refresh token the session
// as read never held, which Refresh answers with invalid_refresh_token
// after rotateLive.
var errUnknownSecret = errors.New("not a refresh token of the session as read")

// rotateLive answers a refresh token the session as read never held. On a
// backend whose reads come from an index (kubernetes), the read may lag a
// rotation another replica has just made, and the token be the one that
// replica issued; so the session is read once more, past the index, and
// the token tried on that. Elsewhere the read was live already.
//
// A backend shedding such reads answers 503 busy rather than the refusal:
// the token may be the current one, and a client drops a session it is
// told is unknown.
func (s *Manager) rotateLive(ctx context.Context, sid, id, secret string) (*Response, error) {
	read := new(Session)
	rec, ok, err := store.LoadLive(ctx, s.store, store.KindSession, sid, read)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && !ok:
		return nil, errInvalidRefresh
	case errors.Is(err, store.ErrBusy):
		return nil, errLiveBusy
	case err != nil:
		return nil, err
	}
	resp, err := s.rotate(ctx, rec, read, id, secret, false)
	if errors.Is(err, errUnknownSecret) {
		return nil, errInvalidRefresh
	}
	return resp, err
}

var errLiveBusy = problem.Busy.Because("the refresh token could not be checked against the store now; retry shortly").After(time.Second)

// errFromCopy is what rotate answers when it would have refused a refresh
// on a recent copy of the session rather than on a read.
var errFromCopy = errors.New("refused on a recent copy")

// rotate spends secret, the refresh token of the session rec read as
// read, and issues the next one. The record read is the update's first
// attempt too (store.ModifyFrom), and the family is the update's guard:
// on postgres checked in the same statement as the write, elsewhere read
// before it (a change may not call the store). fromCopy says rec is a
// recent copy rather than a read: a first attempt that would refuse
// answers errFromCopy instead, for the caller to read and decide.
func (s *Manager) rotate(ctx context.Context, rec *store.Record, read *Session, id, secret string, fromCopy bool) (*Response, error) {
	sid := rec.ID
	var (
		next    string
		org     *directory.Org
		role    string
		spent   Session // the session as read, when the token is not its current one
		now     time.Time
		errSpnt = errors.New("not the current refresh token")
	)
	var family store.Guard
	if read.FamilyID != "" { // a session from before families stands alone
		family = store.Guard{Kind: store.KindFamily, ID: read.FamilyID}
	}
	change := func(rec *store.Record, sess *Session) error {
		now = s.cfg.Now().UTC()
		if sess.RevokedAt != nil {
			return problem.SessionRevoked.Because("the session has ended; log in again")
		}
		if !token.SecretMatches(secret, sess.RefreshHash) {
			spent = *sess
			return errSpnt
		}
		if !now.Before(sess.IdleExpiresAt) || !now.Before(sess.AbsoluteExpiresAt) {
			return problem.RefreshTokenExpired.New()
		}
		var ok bool
		org, ok = s.dir.OrgByRef(sess.OrgRef)
		if !ok || org.ID != sess.OrgID {
			return problem.SessionRevoked.Because("the session's organization no longer exists")
		}
		m, ok := s.dir.MemberOf(sess.Email, org.Ref)
		if !ok || s.removals.EndedBefore(sess.Email, org.Ref, sess.CreatedAt) {
			return problem.MembershipInactive.Because("the membership was disabled or removed")
		}
		if err := SSOGate(directory.Membership{Member: m, Org: org}, sess.AMR); err != nil {
			return err
		}
		role = m.Role
		var nextHash string
		next, _, nextHash = newOpaqueFor(token.PrefixRefresh, id)
		sess.spend(now)
		sess.RefreshHash = nextHash
		sess.IdleExpiresAt = minTime(now.Add(org.IdleTTL), sess.AbsoluteExpiresAt)
		rec.ExpiresAt = sess.IdleExpiresAt
		return nil
	}
	first := fromCopy
	_, sess, err := store.ModifyFrom(ctx, s.store, rec, read, family, func(rec *store.Record, sess *Session) error {
		err := change(rec, sess)
		if first && err != nil {
			err = errFromCopy
		}
		first = false
		return err
	})
	switch {
	case errors.Is(err, errFromCopy):
		return nil, err
	case errors.Is(err, store.ErrGuard):
		return nil, ErrEnded
	case errors.Is(err, errSpnt):
		return nil, s.refreshMismatch(ctx, sid, &spent, secret, now)
	case errors.Is(err, store.ErrNotFound):
		return nil, errInvalidRefresh
	case errors.Is(err, store.ErrConflict):
		return nil, problem.Conflict.Because("the session is being changed concurrently; retry")
	case err != nil:
		var e *problem.Error
		if errors.As(err, &e) {
			return nil, err
		}
		return nil, fmt.Errorf("rotate refresh token: %w", err)
	}
	s.cfg.issued("refresh")
	return s.Respond(sid, sess, next, org, role)
}

var errInvalidRefresh = problem.InvalidRefreshToken.New()

// refreshMismatch handles a refresh token that is not the current one. One
// the session never held is errUnknownSecret. A spent token of this
// session inside the grace window is a client retrying (answered 401
// refresh_token_spent, session kept); after it, reuse means the token
// leaked, and the whole session is revoked.
func (s *Manager) refreshMismatch(ctx context.Context, sid string, sess *Session, secret string, now time.Time) error {
	switch i := sess.spentIndex(secret); {
	case i < 0:
		return errUnknownSecret
	case i == 0 && now.Sub(sess.LastSpentAt) <= s.cfg.RefreshGrace:
		return problem.RefreshTokenSpent.New()
	}
	if err := s.revokeSessionRecord(ctx, sid, "refresh_token_reused"); err != nil {
		return err
	}
	if err := s.RevokeFamily(ctx, sess.UserID, sess.FamilyID, "refresh_token_reused"); err != nil {
		return err
	}
	return problem.RefreshTokenReused.New()
}

// revokeSessionRecord marks a session revoked. A session already gone
// needs nothing: a missing session is refused just the same.
func (s *Manager) revokeSessionRecord(ctx context.Context, sid, reason string) error {
	_, _, err := store.Modify(ctx, s.store, store.KindSession, sid, func(rec *store.Record, sess *Session) error {
		if sess.RevokedAt != nil {
			return store.ErrUnchanged
		}
		now := s.cfg.Now().UTC()
		sess.RevokedAt, sess.Reason = &now, reason
		rec.Revoked = true
		// Kept a while so a replayed refresh token still meets a revoked
		// session; after that a missing session is refused just the same.
		rec.ExpiresAt = minTime(rec.ExpiresAt, now.Add(RevokedRetention))
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// RevokeSession ends the family of the session sid: the session itself
// and every session switched from or to it.
func (s *Manager) RevokeSession(ctx context.Context, sid, reason string) error {
	var sess Session
	if _, err := store.Load(ctx, s.store, store.KindSession, sid, &sess); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if err := s.revokeSessionRecord(ctx, sid, reason); err != nil {
		return err
	}
	return s.RevokeFamily(ctx, sess.UserID, sess.FamilyID, reason)
}

// RevokeUserSessions ends every session family of a user, and so every
// session, as a password reset must.
func (s *Manager) RevokeUserSessions(ctx context.Context, userID, reason string) error {
	fams, err := s.store.ListByUser(ctx, store.KindFamily, userID)
	if err != nil {
		return err
	}
	for _, rec := range fams {
		if rec.Revoked {
			continue
		}
		if err := s.RevokeFamily(ctx, userID, rec.ID, reason); err != nil {
			return err
		}
	}
	// Sessions from before families, and any a family listing missed.
	return s.RevokeSessionsWhere(ctx, userID, reason, func(*Session) bool { return true })
}

// newOpaqueFor makes a token for an existing record ID.
func newOpaqueFor(prefix, id string) (raw, _ string, hash string) {
	secret := token.NewSecret()
	return prefix + "_" + id + "." + secret, id, token.HashSecret(secret)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
