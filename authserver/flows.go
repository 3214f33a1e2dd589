package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tenantauth/tenantauth/authserver/mail"
)

// The account flows (magic links, signup, password reset) answer 202 to
// every well-formed request before they look at the email. What depends on
// whether the email belongs to a member (the token record, the mail) runs
// afterwards in a background job, so a known and an unknown email cost the
// handler the same work and get the same answer in the same time, and a
// slow store or mail server never slows the answer.

// MembershipWriter creates Memberships for self-signup. The Kubernetes
// implementation (package authserver/kube) creates a real Membership
// object, named with SignupMembershipName.
type MembershipWriter interface {
	// CreateMembership creates the membership of email in the organization
	// orgRef ("<namespace>/<name>") with role. One that already exists is
	// success. A refusal that a retry cannot change (admission denied it)
	// wraps ErrMembershipRefused.
	CreateMembership(ctx context.Context, orgRef, email, role string) error
}

// ErrMembershipRefused is wrapped by a MembershipWriter's error when the
// cluster refused the Membership for good.
var ErrMembershipRefused = errors.New("membership refused")

// SignupMembershipName is the name of the Membership that self-signup
// creates: the organization's name and a short hash of the email, so a
// repeated signup names the same object, and the name is a valid
// Kubernetes name whatever the email holds.
func SignupMembershipName(orgName, email string) string {
	sum := sha256.Sum256([]byte(normalizeEmail(email)))
	if len(orgName) > 240 {
		orgName = orgName[:240]
	}
	return orgName + "-" + hex.EncodeToString(sum[:])[:10]
}

// flowState is what the account flows keep on a Server: the mail queue,
// made on first use, and the count of running background jobs.
type flowState struct {
	once  sync.Once
	queue *mail.Queue

	mu      sync.Mutex
	running int
	idle    chan struct{} // closed when running drops to zero
}

// maxFlowJobs bounds the background jobs; past it a request is still
// answered 202 but its mail is dropped (and logged).
const maxFlowJobs = 512

// flowStartDelay is how long a background job waits before it starts.
const flowStartDelay = 5 * time.Millisecond

// acceptedBody is the one answer of send-magic-link, register and
// forgot-password.
var acceptedBody = map[string]string{"status": "accepted",
	"message": "if the address can receive this mail, it is on its way"}

func writeAccepted(w http.ResponseWriter) {
	writeJSON(w, http.StatusAccepted, acceptedBody)
}

// goFlow runs job in the background, retrying store faults a few times.
// Errors are logged by flow name only: never the email's token or link.
func (s *Server) goFlow(flow string, job func(ctx context.Context) error) {
	f := &s.flows
	f.mu.Lock()
	if f.running >= maxFlowJobs {
		f.mu.Unlock()
		s.log.Error(errors.New("too many account mails in preparation"), "account mail dropped", "flow", flow)
		return
	}
	if f.running == 0 {
		f.idle = make(chan struct{})
	}
	f.running++
	f.mu.Unlock()
	go func() {
		defer func() {
			f.mu.Lock()
			f.running--
			if f.running == 0 {
				close(f.idle)
			}
			f.mu.Unlock()
		}()
		// Start once the answer is out, so the work that depends on the
		// email never shares the CPU with the request that asked for it.
		time.Sleep(flowStartDelay)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		delay := 250 * time.Millisecond
		for attempt := 1; ; attempt++ {
			err := job(ctx)
			if err == nil {
				return
			}
			var e *Error
			if errors.As(err, &e) || attempt == 4 || ctx.Err() != nil {
				s.log.Error(err, "account mail not sent", "flow", flow, "attempts", attempt)
				return
			}
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
			delay *= 4
		}
	}()
}

// waitFlows waits until no background job runs (tests, shutdown).
func (s *Server) waitFlows(ctx context.Context) error {
	s.flows.mu.Lock()
	idle := s.flows.idle
	s.flows.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mailQueue is the queue mail goes through: the configured Mailer when it
// is a Queue, else a Queue around it, so no handler ever waits on a mail
// server. Nil without a Mailer.
func (s *Server) mailQueue() *mail.Queue {
	s.flows.once.Do(func() {
		switch m := s.mailer.(type) {
		case nil:
		case *mail.Queue:
			s.flows.queue = m
		default:
			s.flows.queue = mail.NewQueue(m, mail.QueueOptions{Log: s.log.WithName("mail")})
		}
	})
	return s.flows.queue
}

// deliver hands a message to the mail queue.
func (s *Server) deliver(ctx context.Context, m mail.Message) error {
	q := s.mailQueue()
	if q == nil {
		s.log.Info("account mail dropped: no mailer is configured", "subject", m.Subject)
		return nil
	}
	return q.Send(ctx, m)
}

// memberAnyState finds the membership of email in orgRef, disabled or not.
func (d *Directory) memberAnyState(email, orgRef string) (*Member, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for ref := range d.byEmail[email] {
		if m := d.members[ref]; m.OrgRef == orgRef {
			return m, true
		}
	}
	return nil, false
}

// signupAllowed reports whether the organization's self-signup admits the
// email's domain (exact, case-insensitive match).
func signupAllowed(o *Org, email string) bool {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return false
	}
	domain := email[at+1:]
	for _, d := range o.SignupDomain {
		if strings.EqualFold(strings.TrimPrefix(strings.TrimSpace(d), "@"), domain) {
			return true
		}
	}
	return false
}

// emailRequest is the body of forgot-password.
type emailRequest struct {
	Email string `json:"email"`
}

// readEmail decodes and checks the email field of an account-flow body.
func readEmail(raw, field string) (string, error) {
	email := normalizeEmail(raw)
	if !validEmail(email) {
		return "", errf(http.StatusBadRequest, "invalid_email", field+" must be an email address")
	}
	return email, nil
}
