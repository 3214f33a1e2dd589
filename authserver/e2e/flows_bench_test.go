package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver/mail/mailtest"
)

var (
	benchOnce   sync.Once
	benchTenant *tenant
)

const benchEmail = "bench@bench.test"

func benchSetup(b *testing.B) *tenant {
	benchOnce.Do(func() {
		benchTenant = newTenant(b, "bench", tav1.OrganizationSpec{})
		benchTenant.addMember(b, benchEmail, "member")
	})
	return benchTenant
}

// mintLinks asks for n magic links and reads their tokens out of the
// mails, as a user would.
func mintLinks(b *testing.B, n int) []string {
	before := smtpSrv.Count()
	for range n {
		if r := post(b, "/users/send-magic-link", map[string]string{"email_address": benchEmail}); r.status != 202 {
			b.Fatalf("send: %d %s", r.status, r.raw)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	var tokens []string
	for len(tokens) < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d mails arrived", len(tokens), n)
		}
		time.Sleep(20 * time.Millisecond)
		tokens = tokens[:0]
		for _, m := range smtpSrv.Messages()[before:] {
			p, err := mailtest.Parse(m.Data)
			if err != nil {
				b.Fatal(err)
			}
			tok, err := p.Token()
			if err != nil {
				b.Fatal(err)
			}
			tokens = append(tokens, tok)
		}
	}
	return tokens
}

// BenchmarkAuthenticateExchangeKube is authenticate-magic-link followed by
// exchange-session on the Kubernetes store: four compare-and-swap writes
// to the API server per iteration (spend the link, create the
// intermediate session, spend it, create the session).
func BenchmarkAuthenticateExchangeKube(b *testing.B) {
	tn := benchSetup(b)
	tokens := mintLinks(b, b.N)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	runParallel(b, func(i int) error {
		status, body, err := jsonPost(c, "/users/authenticate-magic-link", map[string]string{"token": tokens[i]})
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("authenticate: %d %s %v", status, body, err)
		}
		var in struct {
			IST string `json:"intermediate_session_token"`
		}
		_ = json.Unmarshal(body, &in)
		status, body, err = jsonPost(c, "/users/exchange-session", map[string]string{"intermediate_session_token": in.IST, "organization_id": tn.slug})
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("exchange: %d %s", status, body)
		}
		return err
	})
}

// BenchmarkSendMagicLinkKube is send-magic-link for a member on the
// Kubernetes store; the token record and the mail (SMTP with STARTTLS and
// AUTH) follow in the background. Past what the store can absorb, the
// server sheds load with 503 busy (reported as busy-%); mails/s is the
// end-to-end rate, until the last accepted mail arrived.
func BenchmarkSendMagicLinkKube(b *testing.B) {
	benchSetup(b)
	before := smtpSrv.Count()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var accepted, busy atomic.Int64
	start := time.Now()
	runParallel(b, func(int) error {
		status, body, err := jsonPost(c, "/users/send-magic-link", map[string]string{"email_address": benchEmail})
		switch {
		case err != nil:
			return err
		case status == http.StatusAccepted:
			accepted.Add(1)
		case status == http.StatusServiceUnavailable:
			busy.Add(1)
		default:
			return fmt.Errorf("send: %d %s", status, body)
		}
		return nil
	})
	deadline := time.Now().Add(5 * time.Minute)
	for smtpSrv.Count()-before < int(accepted.Load()) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d accepted mails delivered", smtpSrv.Count()-before, accepted.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.ReportMetric(float64(accepted.Load())/time.Since(start).Seconds(), "mails/s")
	b.ReportMetric(100*float64(busy.Load())/float64(b.N), "busy-%")
}

func jsonPost(c *http.Client, path string, body any) (int, []byte, error) {
	buf, _ := json.Marshal(body)
	resp, err := c.Post(publicURL+path, "application/json", bytes.NewReader(buf))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes(), nil
}

// runParallel runs one request per iteration from 8 clients and reports
// requests per second and the 50th and 99th latency percentiles.
func runParallel(b *testing.B, do func(i int) error) {
	var mu sync.Mutex
	var all []time.Duration
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
		mu.Lock()
		all = append(all, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
