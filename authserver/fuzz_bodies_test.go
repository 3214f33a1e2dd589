package authserver

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// The JSON body decoders, fuzzed through the real handler stack: whatever
// the body, the answer is never a 500, an error is in the contract's
// shape, and no message names a Go type. Each request body type has its
// own target; `make test` runs their seeds.

// fuzzBody fuzzes the bodies of POST path.
func fuzzBody(f *testing.F, path string, seeds ...string) {
	h := newFlowHarness(f, func(c *Config) { c.RateLimitPerMinute = -1 })
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePassword)
	for _, s := range append(seeds, ``, `{}`, `[]`, `null`, `"x"`, `{"email":5}`, "{\"email\":\"\xff\"}", `{"a":`, strings.Repeat("[", 1000)) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.RemoteAddr = "198.51.100.1:1234"
		w := httptest.NewRecorder()
		h.srv.ServeHTTP(w, r)
		if w.Code == 500 || (w.Code > 503) {
			t.Fatalf("%q: %d %s", body, w.Code, w.Body)
		}
		if w.Code < 400 {
			return
		}
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" ||
			w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%q: %d not in the contract's shape: %s", body, w.Code, w.Body)
		}
		if strings.Contains(e.Error.Message, "authserver.") || strings.Contains(e.Error.Message, "struct") {
			t.Fatalf("%q: message names a Go type: %s", body, e.Error.Message)
		}
	})
}

func FuzzDecodeLogin(f *testing.F) {
	fuzzBody(f, "/auth/login", `{"email":"alice@acme.com","password":"correct horse battery"}`,
		`{"email":"alice@acme.com","email_address":"x@acme.com","password":"p"}`, `{"email":"ａlice@acme.com","password":"x","organization":"acme"}`)
}

func FuzzDecodeRefresh(f *testing.F) {
	fuzzBody(f, "/auth/refresh", `{"refresh_token":"rt_abc_def"}`, `{"refresh_token":""}`)
}

func FuzzDecodeExchangeSession(f *testing.F) {
	fuzzBody(f, "/users/exchange-session", `{"intermediate_session_token":"ist_a_b","organization_id":"acme"}`, `{"organization_id":"acme"}`)
}

func FuzzDecodeSendMagicLink(f *testing.F) {
	fuzzBody(f, "/users/send-magic-link", `{"email_address":"alice@acme.com"}`, `{"email_address":"alice@acme.com","organization":"acme"}`)
}

func FuzzDecodeAuthenticateMagicLink(f *testing.F) {
	fuzzBody(f, "/users/authenticate-magic-link", `{"token":"ml_a_b"}`, `{"token":"ml_%2f_x"}`)
}

func FuzzDecodeRegister(f *testing.F) {
	fuzzBody(f, "/auth/register", `{"email":"new@acme.com","password":"a fine long passphrase","organization":"acme"}`)
}

func FuzzDecodeVerifyEmail(f *testing.F) {
	fuzzBody(f, "/auth/verify-email", `{"token":"ve_a_b"}`)
}

func FuzzDecodeForgotPassword(f *testing.F) {
	fuzzBody(f, "/auth/forgot-password", `{"email":"alice@acme.com"}`)
}

func FuzzDecodeResetPassword(f *testing.F) {
	fuzzBody(f, "/auth/reset-password", `{"token":"pr_a_b","password":"a fine long passphrase"}`)
}

func FuzzDecodeTOTP(f *testing.F) {
	fuzzBody(f, "/auth/2fa/verify", `{"intermediate_session_token":"ist_a_b","code":"123456"}`,
		`{"intermediate_session_token":"ist_a_b","recovery_code":"aaaaa-bbbbb","organization":"acme"}`)
}
