package account

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/mail"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/authserver/token"
)

// Sealed verification tokens. Register is unauthenticated and, for an
// email on an allowed domain, must mail a link; a link kept as a store
// record would let anyone with a list of addresses on that domain fill
// the store (dexidp/dex#1292). So the link carries its own state: the
// email, organization, password hash and signup binding, sealed with
// AES-256-GCM under a key derived from Config.Secret, which every replica
// shares. Register writes nothing. The first use of a link writes one
// record, a spent marker named by the link's ID, by create-if-absent: of
// two uses, one creates it and the other finds it and answers token_used.
// The marker lives until the link expires (and a margin for clocks), so a
// link can never be used twice. Its holder proved control of the mailbox,
// so only a real verification makes a record.
//
// A password reset ends the links issued before it, as it ends stored
// ones: it sets Credentials.TokensNotBefore, and a link issued earlier is
// refused. Links from before this change (stored records, a 43-character
// secret) are still accepted through ConsumeOneTime until they expire.
//
// Tokens read ve_<id>.<sealed>, where sealed is base64url of nonce and
// ciphertext, and the id is bound to it as associated data.

// markerPrefix starts the record IDs of spent markers. Spent markers are
// never capped (tokencap.go): deleting one early would make its link
// usable again.
const markerPrefix = "vs"

// markerMargin keeps a spent marker this long past its link's expiry,
// for replicas whose clocks run behind.
const markerMargin = 5 * time.Minute

// maxSealedLen bounds a sealed token before it is decoded.
const maxSealedLen = 2048

// sealedSignup is what a verification link carries. Keys are short: it
// travels in a URL.
type sealedSignup struct {
	Email    string `json:"e"`
	OrgRef   string `json:"o,omitempty"`
	Password string `json:"p,omitempty"`
	Binding  string `json:"b,omitempty"`
	Issued   int64  `json:"i"`
	Expires  int64  `json:"x"`
}

func (s *Service) verifySealer() (cipher.AEAD, error) {
	block, err := aes.NewCipher(s.cfg.SealKey)
	if err != nil {
		return nil, fmt.Errorf("verification seal key: %w", err)
	}
	return cipher.NewGCM(block)
}

// SealVerification makes a verification token for ot.
func (s *Service) SealVerification(ot *OneTime, issued time.Time) (string, error) {
	aead, err := s.verifySealer()
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(sealedSignup{Email: ot.Email, OrgRef: ot.OrgRef, Password: ot.PasswordHash,
		Binding: ot.SignupBinding, Issued: issued.UnixNano(), Expires: ot.ExpiresAt.UnixNano()})
	if err != nil {
		return "", fmt.Errorf("encode verification token: %w", err)
	}
	id := token.NewID()
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := aead.Seal(nonce, nonce, plain, []byte(token.PrefixVerifyEmail+"_"+id))
	return token.PrefixVerifyEmail + "_" + id + "." + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// openVerification opens a sealed token; ok is false for anything this
// installation did not seal.
func (s *Service) openVerification(raw string) (id string, p *sealedSignup, ok bool) {
	rest, found := strings.CutPrefix(raw, token.PrefixVerifyEmail+"_")
	if !found || len(raw) > maxSealedLen {
		return "", nil, false
	}
	id, enc, found := strings.Cut(rest, ".")
	if !found || !token.IsID(id) {
		return "", nil, false
	}
	box, err := base64.RawURLEncoding.DecodeString(enc)
	aead, aerr := s.verifySealer()
	if err != nil || aerr != nil || len(box) < aead.NonceSize()+aead.Overhead() {
		return "", nil, false
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, box[:n], box[n:], []byte(token.PrefixVerifyEmail+"_"+id))
	if err != nil {
		return "", nil, false
	}
	p = &sealedSignup{}
	if json.Unmarshal(plain, p) != nil || p.Email == "" {
		return "", nil, false
	}
	return id, p, true
}

// mailVerification seals a verification token for ot and renders its
// mail, then, only when send is true, queues the mail. Nothing is
// written to the store either way.
func (s *Service) mailVerification(ctx context.Context, send bool, ot *OneTime,
	render func(raw string, expires time.Time) mail.Message) error {
	now := s.cfg.Now().UTC()
	ot.ExpiresAt = now.Add(VerifyEmailTTL)
	raw, err := s.SealVerification(ot, now)
	if err != nil {
		return err
	}
	msg := render(raw, ot.ExpiresAt)
	msg.Lane = ot.Purpose
	if !send {
		return nil
	}
	s.issued(ot.Purpose)
	return s.deliver(ctx, msg)
}

// consumeVerification spends a verification token, sealed or stored (see
// ConsumeOneTime for check). release makes it usable again after a fault
// the client may retry.
func (s *Service) ConsumeVerification(ctx context.Context, raw string, check func(*OneTime) error) (release func(context.Context), _ *OneTime, _ error) {
	raw = strings.TrimSpace(raw)
	if _, _, stored := token.ParseOpaque(token.PrefixVerifyEmail, raw); stored {
		rec, ot, err := s.ConsumeOneTime(ctx, token.PrefixVerifyEmail, PurposeVerifyEmail, raw, check)
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context) { s.Unspend(ctx, rec, ot) }, ot, nil
	}
	id, p, ok := s.openVerification(raw)
	if !ok {
		return nil, nil, errTokenInvalid
	}
	expires := time.Unix(0, p.Expires).UTC()
	if !s.cfg.Now().Before(expires) {
		return nil, nil, errTokenExpired
	}
	ot := &OneTime{Purpose: PurposeVerifyEmail, Email: p.Email, UserID: s.cfg.UserFor(p.Email).ID, OrgRef: p.OrgRef,
		PasswordHash: p.Password, SignupBinding: p.Binding, ExpiresAt: expires}
	var c Credentials
	_, err := store.Load(ctx, s.store, store.KindCredentials, ot.UserID, &c)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, nil, fmt.Errorf("read credentials for a verification link: %w", err)
	case !c.TokensNotBefore.IsZero() && time.Unix(0, p.Issued).Before(c.TokensNotBefore):
		return nil, nil, errTokenUsed // a password reset ended it
	}
	if check != nil {
		if err := check(ot); err != nil {
			return nil, nil, err
		}
	}
	now := s.cfg.Now().UTC()
	marker := &store.Record{Kind: store.KindToken, ID: markerPrefix + "_" + id, UserID: ot.UserID,
		ExpiresAt: expires.Add(markerMargin)}
	err = store.Put(ctx, s.store, marker, &OneTime{Purpose: PurposeVerifyEmail, UserID: ot.UserID,
		OrgRef: ot.OrgRef, ExpiresAt: expires, SpentAt: &now})
	switch {
	case errors.Is(err, store.ErrExists):
		return nil, nil, errTokenUsed
	case err != nil:
		return nil, nil, fmt.Errorf("spend verification token: %w", err)
	}
	return func(ctx context.Context) {
		if err := s.store.Delete(ctx, store.KindToken, marker.ID); err != nil {
			s.log.Error(err, "could not release a verification link after a failed request")
		}
	}, ot, nil
}
