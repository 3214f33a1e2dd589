package authserver

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/mail"
	"github.com/tenantauth/tenantauth/authserver/mail/mailtest"
)

// flowMailer records the messages the server's queue delivers.
type flowMailer struct {
	mu   sync.Mutex
	msgs []mail.Message
}

func (m *flowMailer) Send(_ context.Context, msg mail.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, msg)
	return nil
}

// flowMembers is a account.MembershipWriter that records what it was asked to
// create; err, when set, is returned instead.
type flowMembers struct {
	mu      sync.Mutex
	created []string
	err     error
}

func (f *flowMembers) CreateMembership(_ context.Context, orgRef, email, role string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.created = append(f.created, orgRef+"|"+email+"|"+role)
	return nil
}

func (f *flowMembers) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *flowMembers) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.created...)
}

// flowHarness is a harness whose server mails through flowMailer and
// creates memberships through flowMembers.
type flowHarness struct {
	*harness
	mail    *flowMailer
	members *flowMembers
	// globexSession is a test's spare access token.
	globexSession string
}

func newFlowHarness(t testing.TB, opts ...harnessOption) *flowHarness {
	t.Helper()
	h := newHarness(t, nil, opts...)
	fh := &flowHarness{harness: h, mail: &flowMailer{}, members: &flowMembers{}}
	h.srv = New(h.srv.Config(), h.dir, h.store, testKey, WithMailer(fh.mail), WithMembershipWriter(fh.members))
	h.http.Close()
	h.http = httptest.NewServer(h.srv)
	t.Cleanup(h.http.Close)
	return fh
}

// settle waits for the background jobs and the mail queue to finish.
func (h *flowHarness) settle() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.srv.accounts.WaitFlows(ctx); err != nil {
		h.t.Fatal(err)
	}
	if q := h.srv.accounts.MailQueue(); q != nil {
		if err := q.Flush(ctx); err != nil {
			h.t.Fatal(err)
		}
	}
}

// mailsTo returns the delivered messages to addr, oldest first.
func (h *flowHarness) mailsTo(addr string) []mail.Message {
	h.settle()
	h.mail.mu.Lock()
	defer h.mail.mu.Unlock()
	var out []mail.Message
	for _, m := range h.mail.msgs {
		if m.To == addr {
			out = append(out, m)
		}
	}
	return out
}

// lastLink is the link of the newest message to addr.
func (h *flowHarness) lastLink(addr string) string {
	h.t.Helper()
	ms := h.mailsTo(addr)
	if len(ms) == 0 {
		h.t.Fatalf("no mail to %s", addr)
	}
	links := mailtest.Links(ms[len(ms)-1].Text)
	if len(links) == 0 {
		h.t.Fatalf("no link in the mail to %s: %q", addr, ms[len(ms)-1].Text)
	}
	return links[0]
}

// tokenFromMail follows the newest mail's link, as a user would, and
// returns its token.
func (h *flowHarness) tokenFromMail(addr string) string {
	h.t.Helper()
	u, err := url.Parse(h.lastLink(addr))
	if err != nil {
		h.t.Fatal(err)
	}
	tok := u.Query().Get("token")
	if tok == "" {
		h.t.Fatalf("link without token: %s", u)
	}
	return tok
}

// totpCode is the code of secret at the harness clock, steps steps later.
func (h *flowHarness) totpCode(secret string, steps int) string {
	h.t.Helper()
	counter := uint64(h.clock.Now().Unix()/account.TotpPeriod) + uint64(steps)
	code, err := hotp.GenerateCodeCustom(secret, counter, hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		h.t.Fatal(err)
	}
	return code
}

// enableTOTP sets up and turns on TOTP for a signed-in user and returns
// the secret and recovery codes. It moves the clock one step on, so the
// next code is fresh.
func (h *flowHarness) enableTOTP(accessToken string) (string, []string) {
	h.t.Helper()
	setup := h.do("POST", "/auth/2fa/setup", nil, "Authorization", "Bearer "+accessToken)
	secret := setup.str("secret")
	if setup.status != 200 || secret == "" {
		h.t.Fatalf("setup: %d %s", setup.status, setup.raw)
	}
	en := h.do("POST", "/auth/2fa/enable", map[string]string{"code": h.totpCode(secret, 0)}, "Authorization", "Bearer "+accessToken)
	raw, _ := en.body["recovery_codes"].([]any)
	if en.status != 200 || len(raw) != account.RecoveryCodeCount {
		h.t.Fatalf("enable: %d %s", en.status, en.raw)
	}
	codes := make([]string, len(raw))
	for i, c := range raw {
		codes[i], _ = c.(string)
	}
	h.clock.Add(account.TotpPeriod * time.Second)
	return secret, codes
}

// jwtAMR reads the amr claim of an access token.
func jwtAMR(t *testing.T, jwt string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	raw, _ := decodeSegment(t, parts[1])["amr"].([]any)
	var out []string
	for _, a := range raw {
		s, _ := a.(string)
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// errTransient is a store-like fault a client may retry.
var errTransient = errors.New("connection refused")
