// Package sso is the enterprise single sign-on plumbing shared by the
// protocols: which connection a sign-in goes through, the sealed state
// that binds a sign-in to the browser that began it, and how a proven
// identity becomes a session (the email rule, just-in-time Memberships,
// role mappings). The protocols live in their own packages (sso/oidc,
// sso/saml) and end here, in Service.SignIn.
package sso

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// FlowTTL is how long a begun sign-in may take at the identity provider.
const FlowTTL = 10 * time.Minute

// Flow is what a sign-in carries from its start to its callback: in the
// browser's cookie, sealed, so an unauthenticated start writes nothing to
// the store. A client can neither read it (the PKCE verifier and the nonce
// stay secret) nor forge or alter it.
type Flow struct {
	// Connection and ConnectionUID name the SSOConnection; a connection
	// deleted and re-made under the same name has another UID and ends
	// every sign-in begun on its predecessor.
	Connection    string `json:"c"`
	ConnectionUID string `json:"u"`
	OrgRef        string `json:"o"`
	State         string `json:"s"`
	Nonce         string `json:"n,omitempty"`
	Verifier      string `json:"v,omitempty"`
	// RequestID is a SAML AuthnRequest's ID, for InResponseTo.
	RequestID string `json:"r,omitempty"`
	ExpiresAt int64  `json:"e"`
}

// ErrFlowInvalid is any flow cookie that does not open: forged, altered,
// sealed under another key, or expired.
var ErrFlowInvalid = errors.New("sso flow cookie invalid")

// Sealer seals and opens Flows with AES-256-GCM under a key derived from
// the server secret, so every replica opens what any replica sealed.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("sso seal key: %d bytes, want 32", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// sealContext binds sealed flows to this use of the key.
var sealContext = []byte("tenantauth sso flow v1")

// Seal returns f sealed, as cookie-safe text.
func (s *Sealer) Seal(f Flow) (string, error) {
	plain, err := json.Marshal(f)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, sealContext)), nil
}

// Open returns the flow sealed in v, if it opens and has not expired at
// now.
func (s *Sealer) Open(v string, now time.Time) (Flow, error) {
	var f Flow
	if len(v) > 4096 {
		return f, ErrFlowInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return f, ErrFlowInvalid
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], sealContext)
	if err != nil {
		return f, ErrFlowInvalid
	}
	if err := json.Unmarshal(plain, &f); err != nil || f.State == "" || now.Unix() > f.ExpiresAt {
		return Flow{}, ErrFlowInvalid
	}
	return f, nil
}

// RandomString returns n random bytes as URL-safe text: states and nonces.
func RandomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
