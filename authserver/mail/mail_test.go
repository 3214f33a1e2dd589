package mail_test

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/tenantauth/tenantauth/authserver/mail"
	"github.com/tenantauth/tenantauth/authserver/mail/mailtest"
)

const secretLink = "http://auth.test/users/authenticate-magic-link?token=ml_aaaaaaaaaaaaaaaaaaaa.SECRETSECRET"

func testMessage(to string) mail.Message {
	return mail.Message{To: to, Subject: "Your sign-in link",
		Text: "Sign in: " + secretLink + "\n", HTML: `<p><a href="` + secretLink + `">Sign in</a></p>`}
}

func TestSMTPDelivers(t *testing.T) {
	tests := []struct {
		name     string
		server   mailtest.Options
		tlsMode  string
		username string
		password string
		wantErr  bool
		wantAuth int
	}{
		{name: "starttls with auth", server: mailtest.Options{TLS: true, Username: "u", Password: "p"},
			tlsMode: mail.TLSStartTLS, username: "u", password: "p", wantAuth: 1},
		{name: "starttls without auth", server: mailtest.Options{TLS: true}, tlsMode: mail.TLSStartTLS},
		{name: "plain relay", server: mailtest.Options{}, tlsMode: mail.TLSNone},
		{name: "starttls refused by a server without it", server: mailtest.Options{}, tlsMode: mail.TLSStartTLS, wantErr: true},
		{name: "wrong password", server: mailtest.Options{TLS: true, Username: "u", Password: "p"},
			tlsMode: mail.TLSStartTLS, username: "u", password: "wrong", wantErr: true},
		{name: "auth required but not configured", server: mailtest.Options{TLS: true, Username: "u", Password: "p"},
			tlsMode: mail.TLSStartTLS, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, tc.server)
			opts := mail.SMTPOptions{Host: srv.Host, Port: srv.Port, From: "Acme <no-reply@acme.test>", TLS: tc.tlsMode,
				Username: tc.username, Password: tc.password, Timeout: 5 * time.Second}
			if srv.CertPool != nil {
				opts.TLSConfig = &tls.Config{RootCAs: srv.CertPool, ServerName: srv.Host, MinVersion: tls.VersionTLS12}
			}
			m, err := mail.NewSMTP(opts)
			if err != nil {
				t.Fatal(err)
			}
			err = m.Send(context.Background(), testMessage("alice@acme.test"))
			if tc.wantErr {
				if err == nil || srv.Count() != 0 {
					t.Fatalf("want an error and no delivery; got %v, %d messages", err, srv.Count())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := srv.Messages()
			if len(got) != 1 || got[0].To[0] != "alice@acme.test" || got[0].From != "no-reply@acme.test" {
				t.Fatalf("received %+v", got)
			}
			if srv.Authenticated() != tc.wantAuth {
				t.Fatalf("authenticated %d times, want %d", srv.Authenticated(), tc.wantAuth)
			}
			checkParsed(t, got[0].Data)
		})
	}
}

// checkParsed reads a message as a mail client would.
func checkParsed(t *testing.T, raw []byte) {
	t.Helper()
	p, err := mailtest.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if p.ContentType != "multipart/alternative" || p.Subject != "Your sign-in link" ||
		!strings.Contains(p.Text, secretLink) || !strings.Contains(p.HTML, `href="`+secretLink+`"`) {
		t.Fatalf("parsed message: %+v", p)
	}
	if tok, err := p.Token(); err != nil || tok != "ml_aaaaaaaaaaaaaaaaaaaa.SECRETSECRET" {
		t.Fatalf("token from link: %q %v", tok, err)
	}
	for _, h := range []string{"Date", "Message-Id", "Mime-Version", "Auto-Submitted"} {
		if p.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
}

func TestNewSMTPValidates(t *testing.T) {
	for _, o := range []mail.SMTPOptions{
		{From: "a@b.c"},
		{Host: "h"},
		{Host: "h", From: "a@b.c", TLS: "ssl"},
		{Host: "h", From: "a@b.c", Password: "p"},
		{Host: "h", From: "not an address"},
	} {
		if _, err := mail.NewSMTP(o); err == nil {
			t.Errorf("NewSMTP(%+v) accepted", o)
		}
	}
}

func TestFileWritesEML(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	f, err := mail.NewFile(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"alice@acme.test", "bob@acme.test"} {
		if err := f.Send(context.Background(), testMessage(to)); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 2 {
		t.Fatalf("files %v", files)
	}
	all, _ := os.ReadDir(dir)
	if len(all) != 2 {
		t.Fatalf("temporary files left behind: %v", all)
	}
	for _, name := range files {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v: messages hold live links", name, st.Mode().Perm())
		}
		raw, _ := os.ReadFile(name)
		checkParsed(t, raw)
		if !strings.Contains(string(raw), secretLink) {
			t.Errorf("the link is not whole in the raw file: a developer cannot grep it")
		}
	}
}

func TestNonASCIIMessageRoundTrips(t *testing.T) {
	dir := t.TempDir()
	f, err := mail.NewFile(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	m := testMessage("zoë@acme.test")
	m.Subject, m.Text = "Ihr Anmeldelink für Müller & Söhne", "Grüße! "+m.Text
	if err := f.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	raw, _ := os.ReadFile(files[0])
	p, err := mailtest.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != m.Subject || !strings.HasPrefix(p.Text, "Grüße! ") || !strings.Contains(p.Text, secretLink) {
		t.Fatalf("parsed %+v", p)
	}
}

// blocking is a backend that waits for release, counting attempts.
type blocking struct {
	mu       sync.Mutex
	attempts int
	fail     error
	release  chan struct{}
	sent     []mail.Message
}

func (b *blocking) Send(ctx context.Context, m mail.Message) error {
	if b.release != nil {
		select {
		case <-b.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attempts++
	if b.fail != nil {
		return b.fail
	}
	b.sent = append(b.sent, m)
	return nil
}

// logSink collects every log line.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) add(prefix, args string) {
	l.mu.Lock()
	l.lines = append(l.lines, prefix+" "+args)
	l.mu.Unlock()
}

func (l *logSink) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func flush(t *testing.T, q *mail.Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestQueueAcceptsWithoutWaiting(t *testing.T) {
	b := &blocking{release: make(chan struct{})}
	q := mail.NewQueue(b, mail.QueueOptions{Size: 2})
	for range 2 {
		if err := q.Send(context.Background(), testMessage("alice@acme.test")); err != nil {
			t.Fatal(err)
		}
	}
	// Both messages are stuck in a backend that has not answered: Send
	// returned anyway, and the queue is full.
	if err := q.Send(context.Background(), testMessage("alice@acme.test")); !errors.Is(err, mail.ErrQueueFull) {
		t.Fatalf("third send: %v", err)
	}
	close(b.release)
	flush(t, q)
	if st := q.Stats(); st.Delivered != 2 || st.Rejected != 1 || len(b.sent) != 2 {
		t.Fatalf("stats %+v", st)
	}
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := q.Send(context.Background(), testMessage("alice@acme.test")); !errors.Is(err, mail.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestQueueRetriesWithoutLoggingSecrets(t *testing.T) {
	tests := []struct {
		name         string
		failNext     int
		maxAttempts  int
		wantDelivery bool
		wantAttempts int
	}{
		{name: "recovers after two temporary failures", failNext: 2, maxAttempts: 5, wantDelivery: true},
		{name: "gives up after max attempts", failNext: 10, maxAttempts: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, mailtest.Options{})
			srv.FailNext(tc.failNext)
			smtp, err := mail.NewSMTP(mail.SMTPOptions{Host: srv.Host, Port: srv.Port, From: "no-reply@acme.test", TLS: mail.TLSNone})
			if err != nil {
				t.Fatal(err)
			}
			sink := &logSink{}
			q := mail.NewQueue(smtp, mail.QueueOptions{MaxAttempts: tc.maxAttempts, BaseDelay: time.Millisecond,
				MaxDelay: 5 * time.Millisecond, Log: funcr.New(sink.add, funcr.Options{Verbosity: 10})})
			if err := q.Send(context.Background(), testMessage("alice@acme.test")); err != nil {
				t.Fatal(err)
			}
			flush(t, q)
			st := q.Stats()
			if tc.wantDelivery != (srv.Count() == 1) || tc.wantDelivery != (st.Delivered == 1) {
				t.Fatalf("delivered %d, stats %+v", srv.Count(), st)
			}
			if !tc.wantDelivery && st.Retried != tc.maxAttempts-1 {
				t.Fatalf("retried %d times, want %d", st.Retried, tc.maxAttempts-1)
			}
			logs := sink.all()
			if !strings.Contains(logs, "retry") {
				t.Fatalf("failures were not logged: %q", logs)
			}
			for _, secret := range []string{"SECRETSECRET", "token=", "alice@acme.test"} {
				if strings.Contains(logs, secret) {
					t.Fatalf("log holds %q: %s", secret, logs)
				}
			}
		})
	}
}

func TestQueueGivesUp(t *testing.T) {
	tests := []struct {
		name string
		fail error
		msg  func(mail.Message) mail.Message
	}{
		{name: "permanent failure is not retried", fail: mail.Permanent(errors.New("550 no such user"))},
		{name: "expired message is not sent", msg: func(m mail.Message) mail.Message {
			m.Expires = time.Now().Add(-time.Second)
			return m
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &blocking{fail: tc.fail}
			q := mail.NewQueue(b, mail.QueueOptions{BaseDelay: time.Millisecond})
			m := testMessage("alice@acme.test")
			if tc.msg != nil {
				m = tc.msg(m)
			}
			if err := q.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			flush(t, q)
			if st := q.Stats(); st.Failed != 1 || st.Retried != 0 || len(b.sent) != 0 {
				t.Fatalf("stats %+v, attempts %d", st, b.attempts)
			}
		})
	}
}

func TestQueueCloseAbandonsRetries(t *testing.T) {
	b := &blocking{fail: errors.New("connection refused")}
	q := mail.NewQueue(b, mail.QueueOptions{BaseDelay: time.Hour})
	if err := q.Send(context.Background(), testMessage("alice@acme.test")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close with a message waiting an hour to retry: %v", err)
	}
	if st := q.Stats(); st.Failed != 1 {
		t.Fatalf("stats after close %+v", st)
	}
}

func TestLogBackendHidesBody(t *testing.T) {
	sink := &logSink{}
	l := mail.NewLog(funcr.New(sink.add, funcr.Options{}))
	if err := l.Send(context.Background(), testMessage("alice@acme.test")); err != nil {
		t.Fatal(err)
	}
	logs := sink.all()
	if !strings.Contains(logs, "a***@acme.test") || strings.Contains(logs, "SECRET") || strings.Contains(logs, "alice") {
		t.Fatalf("log: %s", logs)
	}
}

func TestMaskAddress(t *testing.T) {
	for in, want := range map[string]string{"alice@acme.com": "a***@acme.com", "x@y.z": "x***@y.z", "nope": "***", "@a.b": "***"} {
		if got := mail.MaskAddress(in); got != want {
			t.Errorf("MaskAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

// counting is a backend that records the most concurrent sends and fails
// every one.
type counting struct {
	mu        sync.Mutex
	now, most int
}

func (c *counting) Send(context.Context, mail.Message) error {
	c.mu.Lock()
	c.now++
	c.most = max(c.most, c.now)
	c.mu.Unlock()
	time.Sleep(time.Millisecond)
	c.mu.Lock()
	c.now--
	c.mu.Unlock()
	return errors.New("421 service not available")
}

func TestQueueBoundsWorkersAndGoroutines(t *testing.T) {
	c := &counting{}
	q := mail.NewQueue(c, mail.QueueOptions{Concurrency: 3, BaseDelay: time.Hour})
	base := runtime.NumGoroutine()
	for range 300 {
		if err := q.Send(context.Background(), testMessage("alice@acme.test")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for q.Stats().Retried < 300 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", q.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// 300 messages wait an hour for their retry: they hold timers, not
	// goroutines, and no more than 3 sends ever ran at once.
	if n := runtime.NumGoroutine() - base; n > 10 || c.most > 3 {
		t.Fatalf("%d extra goroutines, %d concurrent sends", n, c.most)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_ = q.Close(ctx)
	if st := q.Stats(); st.Failed != 300 {
		t.Fatalf("close abandons the waiting messages: %+v", st)
	}
}
