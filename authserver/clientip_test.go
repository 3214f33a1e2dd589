package authserver

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// loopbackProxy trusts the test listener's peer, as a chart trusts its
// ingress controller's pods.
var loopbackProxy = ProxyList{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func TestClientIP(t *testing.T) {
	proxies, err := ParseProxyList("10.0.0.0/8, 192.168.1.7, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		proxies ProxyList
		remote  string
		xff     []string
		want    string
	}{
		{"no trusted proxies: the remote address, XFF ignored", nil, "203.0.113.9:5000", []string{"1.1.1.1"}, "203.0.113.9"},
		{"untrusted peer: XFF ignored", proxies, "203.0.113.9:5000", []string{"1.1.1.1"}, "203.0.113.9"},
		{"trusted peer, no XFF: the peer", proxies, "10.1.2.3:80", nil, "10.1.2.3"},
		{"trusted peer: the appended address", proxies, "10.1.2.3:80", []string{"198.51.100.4"}, "198.51.100.4"},
		{"client-written entries on the left are ignored", proxies, "10.1.2.3:80", []string{"1.1.1.1, 2.2.2.2, 198.51.100.4"}, "198.51.100.4"},
		{"a chain of trusted proxies is skipped", proxies, "10.1.2.3:80", []string{"1.1.1.1, 198.51.100.4, 192.168.1.7, 10.9.9.9"}, "198.51.100.4"},
		{"several header lines read as one list", proxies, "10.1.2.3:80", []string{"1.1.1.1", "198.51.100.4, 10.0.0.1"}, "198.51.100.4"},
		{"garbage stops at the trusted hop", proxies, "10.1.2.3:80", []string{"1.1.1.1, not-an-ip, 10.0.0.1"}, "10.0.0.1"},
		{"only trusted addresses: the leftmost", proxies, "10.1.2.3:80", []string{"10.0.0.5, 10.0.0.1"}, "10.0.0.5"},
		{"an entry with a port", proxies, "10.1.2.3:80", []string{"198.51.100.4:4711"}, "198.51.100.4"},
		{"IPv6 behind an IPv6 proxy", proxies, "[fd00::1]:80", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv4-mapped peer counts as IPv4", proxies, "[::ffff:10.1.2.3]:80", []string{"198.51.100.4"}, "198.51.100.4"},
		{"overlong chain ends at the last trusted hop", proxies, "10.1.2.3:80", []string{"1.1.1.1," + strings.Repeat(" 10.0.0.1,", 40)}, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{cfg: Config{TrustedProxies: tt.proxies}}
			r := httptest.NewRequest("POST", "/auth/login", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := s.clientIP(r); got != tt.want {
				t.Fatalf("clientIP = %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := ParseProxyList("10.0.0.0/33"); err == nil {
		t.Fatal("a bad CIDR parsed")
	}
}

// TestRateLimitBehindTrustedProxy plays ingress-nginx in front of the auth
// server: every request comes from the proxy's address (the test
// listener's loopback peer), with the real client appended to
// X-Forwarded-For.
func TestRateLimitBehindTrustedProxy(t *testing.T) {
	const limit = 3
	login := func(h *harness, xff, email string) response {
		return h.do("POST", "/auth/login", map[string]string{"email": email, "password": "wrong password"}, "X-Forwarded-For", xff)
	}
	t.Run("two clients behind one proxy get separate buckets", func(t *testing.T) {
		h := newHarness(t, nil, func(c *Config) { c.RateLimitPerMinute, c.TrustedProxies = limit, loopbackProxy })
		h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
		for i := range limit {
			if r := login(h, "198.51.100.1", fmt.Sprintf("u%d@acme.com", i)); r.status != 401 {
				t.Fatalf("client A request %d: %d %s", i, r.status, r.raw)
			}
		}
		if r := login(h, "198.51.100.1", "u9@acme.com"); r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Fatalf("client A over its limit: %d %s", r.status, r.raw)
		}
		// Client B, behind the same proxy, signs in.
		r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery"}, "X-Forwarded-For", "198.51.100.2")
		if r.status != 200 || r.str("access_token") == "" {
			t.Fatalf("client B: %d %s", r.status, r.raw)
		}
	})
	t.Run("a client spoofing X-Forwarded-For through the proxy gets its real address", func(t *testing.T) {
		h := newHarness(t, nil, func(c *Config) { c.RateLimitPerMinute, c.TrustedProxies = limit, loopbackProxy })
		for i := range limit {
			// The client wrote a fresh address each time; the proxy
			// appended the real one.
			if r := login(h, fmt.Sprintf("192.0.2.%d, 198.51.100.1", i), fmt.Sprintf("u%d@acme.com", i)); r.status != 401 {
				t.Fatalf("request %d: %d %s", i, r.status, r.raw)
			}
		}
		if r := login(h, "192.0.2.99, 198.51.100.1", "u9@acme.com"); r.status != 429 {
			t.Fatalf("spoofed X-Forwarded-For escaped the limit: %d %s", r.status, r.raw)
		}
	})
	t.Run("without trusted proxies X-Forwarded-For is ignored", func(t *testing.T) {
		h := newHarness(t, nil, func(c *Config) { c.RateLimitPerMinute = limit })
		for i := range limit {
			if r := login(h, fmt.Sprintf("192.0.2.%d", i), fmt.Sprintf("u%d@acme.com", i)); r.status != 401 {
				t.Fatalf("request %d: %d %s", i, r.status, r.raw)
			}
		}
		if r := login(h, "192.0.2.99", "u9@acme.com"); r.status != 429 {
			t.Fatalf("X-Forwarded-For from an untrusted peer was believed: %d %s", r.status, r.raw)
		}
	})
}

// TestRateLimitKeys checks that the per-email key is the field the
// endpoint reads: a second email field neither picks a fresh bucket nor
// passes.
func TestRateLimitKeys(t *testing.T) {
	tests := []struct {
		path  string
		field string
		other string
	}{
		{"/auth/login", "email", "email_address"},
		{"/auth/register", "email", "email_address"},
		{"/auth/forgot-password", "email", "email_address"},
		{"/users/send-magic-link", "email_address", "email"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			h := newFlowHarness(t, func(c *Config) { c.RateLimitPerMinute, c.TrustedProxies = 2, loopbackProxy })
			h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
			body := func(extra map[string]string) map[string]string {
				b := map[string]string{tc.field: "alice@acme.com", "password": "correct horse battery", "organization": "acme"}
				for k, v := range extra {
					b[k] = v
				}
				return b
			}
			from := func(i int) []string { return []string{"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i)} }
			r := h.do("POST", tc.path, body(map[string]string{tc.other: "x1@acme.com"}), from(1)...)
			if r.status != http.StatusBadRequest || r.errCode() != "conflicting_fields" {
				t.Fatalf("both fields: %d %s", r.status, r.raw)
			}
			for i := range 2 {
				if r := h.do("POST", tc.path, body(nil), from(10+i)...); r.status == 429 || r.status >= 500 {
					t.Fatalf("request %d for alice: %d %s", i, r.status, r.raw)
				}
			}
			r = h.do("POST", tc.path, body(nil), from(20)...)
			if r.status != 429 {
				t.Fatalf("third request for alice from another client: %d %s", r.status, r.raw)
			}
		})
	}
}

// TestRateLimitMemoryIsBounded sends huge and many distinct "emails": the
// limiter keeps fixed-size keys and at most its cap of buckets.
func TestRateLimitMemoryIsBounded(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.RateLimitPerMinute = 1000 })
	huge := strings.Repeat("a", 900<<10) + "@acme.com"
	if r := h.do("POST", "/auth/login", map[string]string{"email": huge, "password": "x"}); r.status != 400 {
		t.Fatalf("huge email: %d %.200s", r.status, r.raw)
	}
	if n := h.srv.limiter.size(); n != 1 {
		t.Fatalf("an invalid email became a bucket: %d buckets", n)
	}
	l := newRateLimiter(5, 60e9, h.clock.Now)
	l.maxBuckets = 100
	for i := range 10_000 {
		l.allow(fmt.Sprintf("route|email|user%d@acme.com", i))
	}
	if n := l.size(); n > 100 {
		t.Fatalf("%d buckets, cap 100", n)
	}
	// Eviction at the cap never makes a spent bucket pass at once: it is
	// the fullest of a sample that goes.
	for range 5 {
		l.allow("route|ip|198.51.100.1")
	}
	if _, ok := l.allow("route|ip|198.51.100.1"); ok {
		t.Fatal("a spent bucket passed")
	}
}
