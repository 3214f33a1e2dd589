package authserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Claims are the access token's claims, exactly those the token contract
// names: no more, so clients cannot come to depend on others.
type Claims struct {
	Issuer      string   `json:"iss"`
	Subject     string   `json:"sub"`
	Audience    string   `json:"aud"`
	ExpiresAt   int64    `json:"exp"`
	IssuedAt    int64    `json:"iat"`
	NotBefore   int64    `json:"nbf"`
	ID          string   `json:"jti"`
	SessionID   string   `json:"sid"`
	OrgID       string   `json:"org_id"`
	OrgSlug     string   `json:"org_slug"`
	Role        string   `json:"role"`
	Permissions []string `json:"permissions"`
	Email       string   `json:"email"`
	AMR         []string `json:"amr"`
	// FamilyID, AuthTime and SessionCreatedAt are the session's fixed
	// facts, so a store with a revocation view checks the session from
	// the token and memory alone (revocation_view.go).
	FamilyID         string `json:"fid,omitempty"`
	AuthTime         int64  `json:"auth_time,omitempty"`
	SessionCreatedAt int64  `json:"sct,omitempty"`
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// clockSkew is the leeway on exp, nbf and iat.
const clockSkew = 30 * time.Second

// signJWT signs claims with key through jwx, with the header alg, kid and
// typ at+jwt (RFC 9068).
func signJWT(c *Claims, key *SigningKey) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, key.KID)
	_ = h.Set(jws.TypeKey, "at+jwt")
	out, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(key.Algorithm), key.Private, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", err
	}
	return string(out), nil
}

var errBadJWT = errors.New("bad jwt")

// parseJWT splits and decodes a compact JWS without checking anything.
func parseJWT(token string) (hdr jwtHeader, claims Claims, signingInput, sig []byte, err error) {
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	if first <= 0 || last == first || last == len(token)-1 {
		return hdr, claims, nil, nil, errBadJWT
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(token[:first])
	pb, err2 := base64.RawURLEncoding.DecodeString(token[first+1 : last])
	sig, err3 := base64.RawURLEncoding.DecodeString(token[last+1:])
	if err1 != nil || err2 != nil || err3 != nil {
		return hdr, claims, nil, nil, errBadJWT
	}
	if json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(pb, &claims) != nil {
		return hdr, claims, nil, nil, errBadJWT
	}
	return hdr, claims, []byte(token[:last]), sig, nil
}

// verifySignature checks sig over input with key, for the key's own
// algorithm only: a token whose header names any other algorithm (none,
// HS256 with the public key as secret, another org's algorithm) fails.
func verifySignature(alg string, key *SigningKey, input, sig []byte) bool {
	if alg != key.Algorithm {
		return false
	}
	switch pub := key.Public.(type) {
	case *ecdsa.PublicKey:
		if alg != "ES256" || len(sig) != 64 {
			return false
		}
		sum := sha256.Sum256(input)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(pub, sum[:], r, s)
	case ed25519.PublicKey:
		return alg == "EdDSA" && ed25519.Verify(pub, input, sig)
	case *rsa.PublicKey:
		if alg != "RS256" {
			return false
		}
		sum := sha256.Sum256(input)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil
	}
	return false
}

// checkTimes validates exp, nbf and iat with clock skew.
func (c *Claims) checkTimes(now time.Time) bool {
	n := now.Unix()
	skew := int64(clockSkew / time.Second)
	return c.ExpiresAt > 0 && n < c.ExpiresAt+skew && n+skew >= c.NotBefore && n+skew >= c.IssuedAt
}
