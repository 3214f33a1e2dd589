package authserver

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestAccountFlowsAnswerAlikeInTime checks that send-magic-link, register
// and forgot-password take the same time for an email that gets a mail
// and one that does not: median latencies over many interleaved requests
// differ by less than 10%. This is a behaviour (no account enumeration by
// timing), not a performance target. Requests alternate A B B A so that
// background work a mailed request leaves behind lands on both sides
// alike; a round disturbed by other load on the machine is measured again,
// up to three times.
func TestAccountFlowsAnswerAlikeInTime(t *testing.T) {
	if testing.Short() {
		t.Skip("timing comparison skipped in -short mode")
	}
	const samples = 1000
	h := signupHarness(t)
	h.srv.cfg.RateLimitPerMinute = 0 // no limit: thousands of requests from one IP
	h.srv.limiter = newRateLimiter(0, time.Minute, h.clock.Now)
	h.addMember("demo/acme", "alice@acme.com", "owner", "")
	n := 0
	fresh := func(domain string) string { n++; return fmt.Sprintf("user%d@%s", n, domain) }
	tests := []struct {
		name             string
		path             string
		mailed, unmailed func() map[string]string
	}{
		{"send-magic-link", "/users/send-magic-link",
			func() map[string]string { return map[string]string{"email_address": "alice@acme.com"} },
			func() map[string]string { return map[string]string{"email_address": fresh("acme.com")} }},
		{"register", "/auth/register",
			func() map[string]string {
				return map[string]string{"email": fresh("acme.com"), "password": goodPassword, "organization": "acme"}
			},
			func() map[string]string {
				return map[string]string{"email": fresh("elsewhere.com"), "password": goodPassword, "organization": "acme"}
			}},
		{"forgot-password", "/auth/forgot-password",
			func() map[string]string { return map[string]string{"email": "alice@acme.com"} },
			func() map[string]string { return map[string]string{"email": fresh("acme.com")} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			send := func(body map[string]string) time.Duration {
				start := time.Now()
				r := h.do("POST", tc.path, body)
				d := time.Since(start)
				if r.status != http.StatusAccepted {
					t.Fatalf("%d %s", r.status, r.raw)
				}
				return d
			}
			for range 50 { // warm up connections and caches
				send(tc.mailed())
				send(tc.unmailed())
			}
			h.settle()
			before := len(h.mail.msgs)
			var diff float64
			for round := 1; round <= 3; round++ {
				var a, b []time.Duration
				for i := 0; i < samples; i += 2 {
					a = append(a, send(tc.mailed()))
					b = append(b, send(tc.unmailed()))
					b = append(b, send(tc.unmailed()))
					a = append(a, send(tc.mailed()))
				}
				ma, mb := median(a), median(b)
				diff = float64(max(ma, mb)-min(ma, mb)) / float64(min(ma, mb))
				t.Logf("round %d: median %v with a mail, %v without (%.1f%% apart)", round, ma, mb, 100*diff)
				h.settle()
				if diff < 0.10 {
					break
				}
			}
			if diff >= 0.10 {
				t.Fatalf("medians differ by %.1f%%", 100*diff)
			}
			if len(h.mail.msgs) == before {
				t.Fatalf("the mailed side sent no mail: the comparison is void")
			}
		})
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
