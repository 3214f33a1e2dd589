package authserver

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveReal runs h's server on a real listener through Serve, as the
// binary does, and returns its address.
func serveReal(t *testing.T, h *harness) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.srv.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String()
}

// rawExchange writes req on a fresh connection and reads until the server
// closes it or deadline passes; it returns what was read and how long the
// server took to close.
func rawExchange(t *testing.T, addr, req string, deadline time.Duration) (string, time.Duration, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(start.Add(deadline))
	out, err := io.ReadAll(c)
	closed := err == nil // EOF: the server closed the connection
	return string(out), time.Since(start), closed
}

func TestStalledBodyIsCutOff(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.Timeouts = ServerTimeouts{Read: time.Second, ReadHeader: time.Second} })
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	addr := serveReal(t, h)
	tests := []struct{ name, req string }{
		{"half a body, then nothing", "POST /auth/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"email\":\"alice@acme.com\","},
		{"half the headers, then nothing", "POST /auth/login HTTP/1.1\r\nHost: a\r\nContent-Type: appl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, took, closed := rawExchange(t, addr, tt.req, 5*time.Second)
			if !closed || took > 3*time.Second {
				t.Fatalf("connection still open after %v (closed=%v)", took, closed)
			}
		})
	}
	// The legitimate user is unaffected.
	resp, err := http.Post("http://"+addr+"/auth/login", "application/json",
		strings.NewReader(`{"email":"alice@acme.com","password":"correct horse battery"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("legitimate login: %d", resp.StatusCode)
	}
}

// TestNetHTTPErrorsAreInShape sends what net/http refuses before any
// handler runs: every answer is JSON in the contract's shape.
func TestNetHTTPErrorsAreInShape(t *testing.T) {
	h := newHarness(t, nil)
	addr := serveReal(t, h)
	tests := []struct {
		name   string
		req    string
		status int
		code   string
	}{
		{"oversized headers", "GET /health HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", 431, "headers_too_large"},
		{"garbage request line", "GARBAGE\r\n\r\n", 400, "bad_request"},
		{"missing Host", "GET /health HTTP/1.1\r\n\r\n", 400, "bad_request"},
		{"bad header line", "GET /health HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n", 400, "bad_request"},
		{"unknown transfer encoding", "POST /auth/login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "not_implemented"},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 404, "not_found"},
		{"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nConnection: close\r\n\r\n", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, _ := rawExchange(t, addr, tt.req, 5*time.Second)
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
			if err != nil {
				t.Fatalf("no HTTP answer: %v: %q", err, out)
			}
			body, _ := io.ReadAll(resp.Body)
			assertShape(t, resp.StatusCode, resp.Header, body, tt.status, tt.code)
		})
	}
	// A well-formed request on the same server still works.
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health: %d", resp.StatusCode)
	}
}

// assertShape checks an answer is status with {"error":{"code","message"}}
// of code, as JSON.
func assertShape(t *testing.T, status int, header http.Header, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if status != wantStatus || header.Get("Content-Type") != "application/json" ||
		json.Unmarshal(body, &e) != nil || e.Error.Code != wantCode || e.Error.Message == "" {
		t.Fatalf("got %d %q %q, want %d %q in the contract's shape", status, header.Get("Content-Type"), body, wantStatus, wantCode)
	}
}

// TestUncleanPathsAreInShape checks that ServeMux's redirects to a cleaned
// path never escape: an unclean path is a 404 in shape, with no Location.
func TestUncleanPathsAreInShape(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"//auth/login", "/auth/./login", "/auth/../auth/login", "/auth//login", "/health/", "/auth/login/.", "/orgs/acme/.well-known//jwks.json"} {
		for _, method := range []string{"GET", "POST"} {
			t.Run(method+" "+p, func(t *testing.T) {
				req, _ := http.NewRequest(method, h.http.URL+p, strings.NewReader(`{}`))
				req.Header.Set("Content-Type", "application/json")
				resp, err := noFollow.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if loc := resp.Header.Get("Location"); loc != "" {
					t.Fatalf("redirected to %q", loc)
				}
				assertShape(t, resp.StatusCode, resp.Header, body, 404, "not_found")
			})
		}
	}
	h.login("alice@acme.com", "correct horse battery", "acme")
}

// TestErrorMessagesNameNoGoTypes sends bodies of the wrong JSON type to
// every endpoint that decodes one.
func TestErrorMessagesNameNoGoTypes(t *testing.T) {
	h := newHarness(t, nil)
	paths := []string{"/auth/login", "/auth/refresh", "/users/exchange-session", "/users/send-magic-link",
		"/users/authenticate-magic-link", "/auth/register", "/auth/verify-email", "/auth/forgot-password",
		"/auth/reset-password", "/auth/2fa/setup", "/auth/2fa/enable", "/auth/2fa/verify"}
	bodies := []string{`[]`, `"x"`, `5`, `true`, `{"email": 5}`, `{"email": {}}`, `{"password": []}`, `{"token": 1.5}`,
		`{"organization": false}`, `{"code": {}}`, `{"refresh_token": []}`, `{"intermediate_session_token": 7}`}
	for _, p := range paths {
		for _, b := range bodies {
			r := h.do("POST", p, b)
			if r.status == 500 || r.status == 200 {
				t.Fatalf("%s %s: %d %s", p, b, r.status, r.raw)
			}
			for _, bad := range []string{"authserver.", "struct", "[]string", "main.", "int64", "float64"} {
				if strings.Contains(r.raw, bad) {
					t.Fatalf("%s %s: the answer names a Go type: %s", p, b, r.raw)
				}
			}
		}
	}
	r := h.do("POST", "/auth/login", `[]`)
	assertShape(t, r.status, r.header, []byte(r.raw), 400, "invalid_json")
}
