package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"

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
}

type Header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// clockSkew is the leeway on exp, nbf and iat.
const clockSkew = 30 * time.Second

// Sign signs claims with key, with the header alg, kid and typ at+jwt
// (RFC 9068). The key's raw Signer signs directly; a key prepared without
// one goes through jwx.
func Sign(c *Claims, key *directory.SigningKey) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	if key.Signer == nil {
		return signJWX(payload, key)
	}
	hdr, err := json.Marshal(Header{Alg: key.Algorithm, Kid: key.KID, Typ: "at+jwt"})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	out := make([]byte, 0, enc.EncodedLen(len(hdr))+enc.EncodedLen(len(payload))+enc.EncodedLen(512)+2)
	out = enc.AppendEncode(out, hdr)
	out = append(out, '.')
	out = enc.AppendEncode(out, payload)
	sig, err := signInput(key, out)
	if err != nil {
		return "", fmt.Errorf("sign with key %s: %w", key.KID, err)
	}
	out = append(out, '.')
	out = enc.AppendEncode(out, sig)
	return string(out), nil
}

// signInput signs a JWS signing input with the key's own algorithm: the
// counterpart of VerifySignature.
func signInput(key *directory.SigningKey, input []byte) ([]byte, error) {
	switch priv := key.Signer.(type) {
	case *ecdsa.PrivateKey:
		if key.Algorithm != "ES256" || priv.Curve != elliptic.P256() {
			break
		}
		sum := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, priv, sum[:])
		if err != nil {
			return nil, err
		}
		// JWS wants r and s as two 32-byte big-endian halves (RFC 7518
		// section 3.4), not ASN.1.
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	case ed25519.PrivateKey:
		if key.Algorithm == "EdDSA" {
			return ed25519.Sign(priv, input), nil
		}
	case *rsa.PrivateKey:
		if key.Algorithm == "RS256" {
			sum := sha256.Sum256(input)
			return rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
		}
	}
	return nil, fmt.Errorf("algorithm %s does not fit the key", key.Algorithm)
}

// signJWX signs through jwx, for a key without a raw Signer.
func signJWX(payload []byte, key *directory.SigningKey) (string, error) {
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

// Parse splits and decodes a compact JWS without checking anything.
func Parse(token string) (hdr Header, claims Claims, signingInput, sig []byte, err error) {
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

// VerifySignature checks sig over input with key, for the key's own
// algorithm only: a token whose header names any other algorithm (none,
// HS256 with the public key as secret, another org's algorithm) fails.
func VerifySignature(alg string, key *directory.SigningKey, input, sig []byte) bool {
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

// CheckTimes validates exp, nbf and iat with clock skew.
func (c *Claims) CheckTimes(now time.Time) bool {
	n := now.Unix()
	skew := int64(clockSkew / time.Second)
	return c.ExpiresAt > 0 && n < c.ExpiresAt+skew && n+skew >= c.NotBefore && n+skew >= c.IssuedAt
}
