package authserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/session"

	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/mail"
	"github.com/tenantauth/tenantauth/authserver/mail/mailtest"
)

// flowLatencies collects request latencies from parallel clients.
type flowLatencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *flowLatencies) add(ds []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, ds...)
	l.mu.Unlock()
}

// report records requests per second and the 50th and 99th percentiles.
func (l *flowLatencies) report(b *testing.B, elapsed time.Duration) {
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	pct := func(p float64) float64 {
		return float64(l.all[min(len(l.all)-1, int(p*float64(len(l.all))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(l.all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// flowPost sends a JSON POST and returns its status.
func flowPost(c *http.Client, url string, body any) (int, []byte, error) {
	buf, _ := json.Marshal(body)
	resp, err := c.Post(url, "application/json", bytes.NewReader(buf))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes(), nil
}

// runParallel runs one request per iteration from 8 clients and reports
// throughput and latency percentiles.
func runParallel(b *testing.B, do func(i int) error) {
	var lat flowLatencies
	var mu sync.Mutex
	next := 0
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			mu.Lock()
			i := next
			next++
			mu.Unlock()
			t0 := time.Now()
			if err := do(i); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		lat.add(mine)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	lat.report(b, elapsed)
}

// BenchmarkSendMagicLink is POST /users/send-magic-link for a member, the
// link mailed through the queue to an in-process SMTP server: the answer
// never waits on the mail.
func BenchmarkSendMagicLink(b *testing.B) {
	smtp := mailtest.Start(b, mailtest.Options{})
	backend, err := mail.NewSMTP(mail.SMTPOptions{Host: smtp.Host, Port: smtp.Port, From: "no-reply@acme.test", TLS: mail.TLSNone})
	if err != nil {
		b.Fatal(err)
	}
	q := mail.NewQueue(backend, mail.QueueOptions{Size: 1 << 20})
	h := newHarness(b, nil)
	h.srv = New(h.srv.Config(), h.dir, h.store, testKey, WithMailer(q))
	h.srv.limiter = newRateLimiter(0, time.Minute, h.clock.Now)
	h.http.Close()
	h.http = httptest.NewServer(h.srv)
	b.Cleanup(h.http.Close)
	h.addMember("demo/acme", "alice@acme.com", "owner", "")
	c := h.http.Client()
	url := h.http.URL + "/users/send-magic-link"
	runParallel(b, func(int) error {
		status, body, err := flowPost(c, url, map[string]string{"email_address": "alice@acme.com"})
		if err == nil && status != http.StatusAccepted {
			err = fmt.Errorf("send: %d %s", status, body)
		}
		return err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := h.srv.accounts.WaitFlows(ctx); err != nil {
		b.Fatal(err)
	}
	if err := q.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if st := q.Stats(); st.Delivered != st.Accepted || st.Accepted == 0 {
		b.Fatalf("queue %+v: every accepted mail is delivered", st)
	}
}

// BenchmarkTOTPVerify is POST /auth/2fa/verify with a right code, ending
// in a session: one user per request, since a code is good once.
func BenchmarkTOTPVerify(b *testing.B) {
	h := newHarness(b, nil)
	h.srv.limiter = newRateLimiter(0, time.Minute, h.clock.Now)
	fh := &flowHarness{harness: h}
	key, err := h.srv.accounts.NewTOTPKey("bench@acme.test")
	if err != nil {
		b.Fatal(err)
	}
	org, _ := h.dir.OrgByRef("demo/acme")
	ctx := context.Background()
	ists := make([]string, b.N)
	for i := range ists {
		email := fmt.Sprintf("user%d@acme.com", i)
		h.addMember("demo/acme", email, "member", "")
		u := h.srv.userFor(email)
		if err := h.srv.accounts.UpdateCredentials(ctx, u.ID, func(c *account.Credentials) error {
			c.TOTPSecret, c.TOTPEnabled = key.Secret(), true
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		resp, err := h.srv.sessions.StartIntermediate(ctx, u, []string{"pwd"}, org, true)
		if err != nil {
			b.Fatal(err)
		}
		ists[i] = resp.IntermediateSessionToken
	}
	code := fh.totpCode(key.Secret(), 0)
	c := h.http.Client()
	url := h.http.URL + "/auth/2fa/verify"
	runParallel(b, func(i int) error {
		status, body, err := flowPost(c, url, map[string]string{"intermediate_session_token": ists[i], "code": code})
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("verify: %d %s", status, body)
		}
		return err
	})
}

// BenchmarkAuthenticateMagicLinkExchange is authenticate-magic-link then
// exchange-session on the memory store; the Kubernetes store's figure is
// in authserver/e2e.
func BenchmarkAuthenticateMagicLinkExchange(b *testing.B) {
	// One user holds every link minted here and 8 sign-ins at once: the
	// per-user caps on outstanding tokens would end them.
	h := newFlowHarness(b, func(c *Config) { c.MaxOutstandingTokens = 1 << 20 })
	h.srv.limiter = newRateLimiter(0, time.Minute, h.clock.Now)
	h.addMember("demo/acme", "alice@acme.com", "owner", "")
	ctx := context.Background()
	tokens := make([]string, b.N)
	for i := range tokens {
		ot := &account.OneTime{Purpose: account.PurposeMagicLink, Email: "alice@acme.com", UserID: h.srv.userFor("alice@acme.com").ID}
		if err := h.srv.accounts.MailToken(ctx, true, token.PrefixMagicLink, account.MagicLinkTTL, ot, func(raw string, _ time.Time) mail.Message {
			tokens[i] = raw
			return mail.Message{To: "alice@acme.com"}
		}); err != nil {
			b.Fatal(err)
		}
	}
	c := h.http.Client()
	runParallel(b, func(i int) error {
		status, body, err := flowPost(c, h.http.URL+"/users/authenticate-magic-link", map[string]string{"token": tokens[i]})
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("authenticate: %d %s %v", status, body, err)
		}
		var in session.IntermediateResponse
		_ = json.Unmarshal(body, &in)
		status, body, err = flowPost(c, h.http.URL+"/users/exchange-session",
			map[string]string{"intermediate_session_token": in.IntermediateSessionToken, "organization_id": "acme"})
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("exchange: %d %s", status, body)
		}
		return err
	})
}
