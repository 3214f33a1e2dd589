package token

import (
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
)

func prepared(t *testing.T, alg string) *directory.SigningKey {
	t.Helper()
	k, err := signingkeys.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := directory.PrepareKeySet(&signingkeys.Set{Entries: []signingkeys.Entry{{Key: k, KID: k.KeyID(), Algorithm: alg}}})
	if err != nil {
		t.Fatal(err)
	}
	return ks.Keys[0]
}

// TestSignVerifiesElsewhere checks the direct signer against jwx, an
// independent JWS implementation, for every algorithm an organization
// may choose, and against this package's own verification.
func TestSignVerifiesElsewhere(t *testing.T) {
	claims := &Claims{Issuer: "https://auth.example", Subject: "usr_1", Audience: "api", ExpiresAt: time.Now().Add(time.Minute).Unix(),
		IssuedAt: time.Now().Unix(), NotBefore: time.Now().Unix(), ID: "jti", SessionID: "ses_1", OrgID: "org_1", OrgSlug: "acme",
		Role: "member", Permissions: []string{}, Email: "a@acme.com", AMR: []string{"pwd"}}
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			key := prepared(t, alg)
			if key.Signer == nil {
				t.Fatal("prepared key has no raw signer")
			}
			for _, path := range []string{"direct", "jwx"} {
				k := *key
				if path == "jwx" {
					k.Signer = nil
				}
				tok, err := Sign(claims, &k)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				pub, err := signingkeys.PublicKey(key.Private)
				if err != nil {
					t.Fatal(err)
				}
				payload, err := jws.Verify([]byte(tok), jws.WithKey(jwa.SignatureAlgorithm(alg), pub))
				if err != nil {
					t.Fatalf("%s: jwx refuses the token: %v", path, err)
				}
				if !strings.Contains(string(payload), `"sid":"ses_1"`) {
					t.Fatalf("%s: payload %s", path, payload)
				}
				hdr, got, input, sig, err := Parse(tok)
				if err != nil || hdr.Alg != alg || hdr.Kid != key.KID || hdr.Typ != "at+jwt" || got.SessionID != "ses_1" {
					t.Fatalf("%s: parsed %+v %+v %v", path, hdr, got, err)
				}
				if !VerifySignature(alg, key, input, sig) {
					t.Fatalf("%s: own verification refuses the token", path)
				}
				tampered := append([]byte(nil), input...)
				tampered[len(tampered)-1] ^= 1
				if VerifySignature(alg, key, tampered, sig) {
					t.Fatalf("%s: a changed payload verified", path)
				}
			}
		})
	}
}

// TestSignRefusesAMismatchedAlgorithm: a key never signs for another
// algorithm than its own.
func TestSignRefusesAMismatchedAlgorithm(t *testing.T) {
	key := *prepared(t, "ES256")
	key.Algorithm = "RS256"
	if tok, err := Sign(&Claims{}, &key); err == nil {
		t.Fatalf("an ES256 key signed as RS256: %s", tok)
	}
}
