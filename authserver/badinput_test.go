package authserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

func TestBadBodies(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name   string
		body   string
		ctype  string
		status int
		code   string
	}{
		{"malformed json", `{"email":`, "application/json", 400, "invalid_json"},
		{"wrong field type", `{"email": 5, "password": "x"}`, "application/json", 400, "invalid_json"},
		{"not json", `email=a&password=b`, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		{"body without content type", `{"email":"a@b.co"}`, "", 415, "unsupported_media_type"},
		{"too large", `{"email":"` + strings.Repeat("a", 1<<20) + `"}`, "application/json", 413, "body_too_large"},
		{"bad email", `{"email":"not-an-email","password":"x"}`, "application/json", 400, "invalid_email"},
		{"missing password", `{"email":"a@acme.com"}`, "application/json", 400, "invalid_password"},
		{"unknown fields are ignored", `{"email":"a@acme.com","password":"pw123456","extra":{"x":1}}`, "application/json", 401, "invalid_credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var headers []string
			r := h.rawPost("/auth/login", tt.body, tt.ctype, headers...)
			if r.status != tt.status || r.errCode() != tt.code {
				t.Fatalf("got %d %q, want %d %q: %.200s", r.status, r.errCode(), tt.status, tt.code, r.raw)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("error content type %q", r.header.Get("Content-Type"))
			}
		})
	}
	if r := h.do("GET", "/no/such/endpoint", nil); r.status != 404 || r.errCode() != "not_found" {
		t.Fatalf("unknown path: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", "/auth/login", nil); r.status != 405 || r.errCode() != "method_not_allowed" || r.header.Get("Allow") != "POST" {
		t.Fatalf("wrong method: %d %s", r.status, r.raw)
	}
}

// rawPost posts body with a content type, or none when ctype is empty.
func (h *harness) rawPost(path, body, ctype string, headers ...string) response {
	h.t.Helper()
	if ctype == "" {
		return h.do("POST", path, body, append(headers, "Content-Type", "")...)
	}
	return h.do("POST", path, body, append(headers, "Content-Type", ctype)...)
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestForgedTokensAreRejected(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	h.addMember("demo/globex", "alice@acme.com", "owner", "")
	good := h.login("alice@acme.com", "correct horse battery", "acme").str("access_token")
	parts := strings.Split(good, ".")
	hdr, claims := decodeSegment(t, parts[0]), decodeSegment(t, parts[1])
	globexTok := h.login("alice@acme.com", "correct horse battery", "globex").str("access_token")

	ks, _ := h.dir.Keys("demo/acme")
	der, _ := x509.MarshalPKIXPublicKey(ks.Keys[0].Public)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	with := func(h, c map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range h {
			out[k] = v
		}
		for k, v := range c {
			out[k] = v
		}
		return out
	}
	hs256 := func(key []byte) string {
		head := b64(with(hdr, map[string]any{"alg": "HS256"})) + "." + parts[1]
		m := hmac.New(sha256.New, key)
		m.Write([]byte(head))
		return head + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	g := strings.Split(globexTok, ".")
	tests := []struct {
		name  string
		token string
	}{
		{"alg none", b64(with(hdr, map[string]any{"alg": "none"})) + "." + parts[1] + "."},
		{"alg none with signature", b64(with(hdr, map[string]any{"alg": "none"})) + "." + parts[1] + "." + parts[2]},
		{"HS256 with the public key PEM as secret", hs256(pubPEM)},
		{"HS256 with the public key DER as secret", hs256(der)},
		{"unknown kid", b64(with(hdr, map[string]any{"kid": "nope"})) + "." + parts[1] + "." + parts[2]},
		{"another organization's token claiming acme", g[0] + "." + b64(with(decodeSegment(t, g[1]), map[string]any{"org_id": "org_acme", "org_slug": "acme"})) + "." + g[2]},
		{"acme payload under globex's signature", g[0] + "." + parts[1] + "." + g[2]},
		{"tampered payload", parts[0] + "." + b64(with(claims, map[string]any{"role": "owner", "sub": "usr_evil"})) + "." + parts[2]},
		{"tampered signature", parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))},
		{"wrong typ", b64(with(hdr, map[string]any{"typ": "JWT"})) + "." + parts[1] + "." + parts[2]},
		{"truncated", good[:len(good)/2]},
		{"two segments", parts[0] + "." + parts[1]},
		{"garbage", "not.a.jwt"},
		{"empty segments", ".."},
		{"truncated API key", "osk_live_abc"},
		{"API key with bad checksum", "osk_live_" + strings.Repeat("a", 71)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/verify", "/auth/me"} {
				r := h.do("GET", path, nil, "Authorization", "Bearer "+tt.token)
				if r.status != 401 {
					t.Fatalf("%s: got %d %s, want 401", path, r.status, r.raw)
				}
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		h.clock.Add(16 * time.Minute)
		r := h.do("GET", "/verify", nil, "Authorization", "Bearer "+good)
		if r.status != 401 || r.errCode() != "token_expired" {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
}

func TestMalformedAuthorizationHeader(t *testing.T) {
	h := newHarness(t, nil)
	for _, v := range []string{"Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "bearer"} {
		r := h.do("GET", "/auth/me", nil, "Authorization", v)
		if r.status != 401 {
			t.Fatalf("Authorization %q: %d", v, r.status)
		}
	}
}
