package authserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/tenantauth/tenantauth/authserver/account"
)

// benchToken logs alice in and returns an access token and the server.
func benchToken(b *testing.B) (*harness, string) {
	b.Helper()
	h := newHarness(b, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	return h, h.login("alice@acme.com", "correct horse battery", "").str("access_token")
}

// BenchmarkRawECDSAVerify is the floor: a bare ecdsa.Verify of the same
// token's signature, hash included.
func BenchmarkRawECDSAVerify(b *testing.B) {
	h, tok := benchToken(b)
	ks, _ := h.dir.Keys("demo/acme")
	pub := ks.Keys[0].Public.(*ecdsa.PublicKey)
	i := strings.LastIndexByte(tok, '.')
	sig, _ := base64.RawURLEncoding.DecodeString(tok[i+1:])
	input := []byte(tok[:i])
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	b.ReportAllocs()
	for b.Loop() {
		sum := sha256.Sum256(input)
		if !ecdsa.Verify(pub, sum[:], r, s) {
			b.Fatal("bad signature")
		}
	}
}

// BenchmarkVerifyJWT is the verifier without its cache: parse, key lookup,
// algorithm pinning, signature, issuer and audience.
func BenchmarkVerifyJWT(b *testing.B) {
	h, tok := benchToken(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := h.srv.verifyJWT(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyAccessToken is the full check a request gets: the cached
// verification plus the live membership and session checks.
func BenchmarkVerifyAccessToken(b *testing.B) {
	h, tok := benchToken(b)
	ctx := context.Background()
	var p Principal
	b.ReportAllocs()
	for b.Loop() {
		if err := h.srv.verifyAccessToken(ctx, tok, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyAPIKey checks an API key: checksum, lookup, constant-time
// hash comparison, revocation, expiry. Run with -cpu 1 for one core.
func BenchmarkVerifyAPIKey(b *testing.B) {
	h := newHarness(b, nil)
	key, _ := h.addAPIKey("demo/acme", "read")
	var p Principal
	b.ReportAllocs()
	for b.Loop() {
		if err := h.srv.verifyAPIKey(key, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkArgon2id is the floor of login: one hash with the default
// parameters.
func BenchmarkArgon2id(b *testing.B) {
	salt := bytes.Repeat([]byte{1}, 16)
	p := account.DefaultArgon2
	for b.Loop() {
		argon2.IDKey([]byte("correct horse battery"), salt, p.Time, p.MemoryKiB, p.Threads, account.ArgonKeyLen)
	}
}

// BenchmarkLogin is POST /auth/login through the whole handler stack with
// the default argon2id parameters, session creation and JWT signing.
func BenchmarkLogin(b *testing.B) {
	h := newHarness(b, nil, func(c *Config) { c.Argon2 = account.DefaultArgon2; c.RateLimitPerMinute = -1 })
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	body := `{"email":"alice@acme.com","password":"correct horse battery"}`
	for b.Loop() {
		r := httptest.NewRequest("POST", "/auth/login", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.srv.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("login: %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkRefresh rotates refresh tokens on the memory store.
func BenchmarkRefresh(b *testing.B) {
	h, _ := benchToken(b)
	rt := h.login("alice@acme.com", "correct horse battery", "").str("refresh_token")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := h.srv.sessions.Refresh(ctx, rt)
		if err != nil {
			b.Fatal(err)
		}
		rt = resp.RefreshToken
	}
}
