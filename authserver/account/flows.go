package account

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/tenantauth/tenantauth/authserver/problem"
	"github.com/tenantauth/tenantauth/internal/identity"

	"github.com/tenantauth/tenantauth/authserver/mail"
)

// The account flows (magic links, signup, password reset) answer 202 to
// every well-formed request before they look at the email. The rest runs
// afterwards in a background job that does the same work for every email
// (hash the password, make a token, render the mail) and only then, for an
// email that gets a mail, writes the token record and queues the mail. So
// a known and an unknown email get the same answer in the same time, and a
// slow store or mail server never slows the answer. When the jobs' line is
// full every request gets 503 with Retry-After, whatever its email, rather
// than a 202 whose mail is lost.

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
	sum := sha256.Sum256([]byte(identity.NormalizeEmail(email)))
	if len(orgName) > 240 {
		orgName = orgName[:240]
	}
	return orgName + "-" + hex.EncodeToString(sum[:])[:10]
}

// flowState is what the account flows keep on a Server: the mail queue,
// made on first use, and the background jobs, in line for a few workers.
type flowState struct {
	once  sync.Once
	queue *mail.Queue

	mu      sync.Mutex
	jobs    flowLanes
	workers int
	pending int           // queued or running
	idle    chan struct{} // closed when pending drops to zero
}

// flowJob is the email-dependent part of one request.
type flowJob struct {
	name string
	at   time.Time
	run  func(ctx context.Context) error
}

const (
	// MaxFlowJobs bounds the jobs in line. Past it, requests are answered
	// 503 with Retry-After, whatever their email, so none is silently lost.
	MaxFlowJobs = 10_000
	// flowWorkers bounds the jobs running at once, and so the store writes
	// and mail preparations they make.
	flowWorkers = 8
	// flowStartDelay is how long a job waits after its request, so it
	// runs once the answer is out and never shares the CPU with it.
	flowStartDelay = 5 * time.Millisecond
)

var errBusy = problem.Busy.New().After(5 * time.Second)

// goFlow queues job for the background workers; it fails only when the
// line is full. Job errors are logged by flow name only, never with the
// email's token or link; store faults are retried a few times first.
func (s *Service) GoFlow(flow string, job func(ctx context.Context) error) error {
	f := &s.flows
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending >= MaxFlowJobs || !f.jobs.fits(flow) {
		return errBusy
	}
	if f.pending == 0 {
		f.idle = make(chan struct{})
	}
	f.pending++
	f.jobs.push(flowJob{name: flow, at: time.Now(), run: job})
	if f.workers < flowWorkers {
		f.workers++
		go s.flowWorker()
	}
	return nil
}

// flowWorker runs queued jobs until there are none.
func (s *Service) flowWorker() {
	f := &s.flows
	for {
		f.mu.Lock()
		job, ok := f.jobs.pop()
		if !ok {
			f.workers--
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		time.Sleep(time.Until(job.at.Add(flowStartDelay)))
		s.runFlowJob(job)
		f.mu.Lock()
		f.pending--
		if f.pending == 0 {
			close(f.idle)
		}
		f.mu.Unlock()
	}
}

func (s *Service) runFlowJob(job flowJob) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	delay := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := job.run(ctx)
		if err == nil {
			return
		}
		var e *problem.Error
		if errors.As(err, &e) || attempt == 4 || ctx.Err() != nil {
			s.log.Error(err, "account mail not sent", "flow", job.name, "attempts", attempt)
			return
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		delay *= 4
	}
}

// waitFlows waits until no background job is queued or runs (tests).
func (s *Service) WaitFlows(ctx context.Context) error {
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
func (s *Service) MailQueue() *mail.Queue {
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
func (s *Service) deliver(ctx context.Context, m mail.Message) error {
	q := s.MailQueue()
	if q == nil {
		s.log.Info("account mail dropped: no mailer is configured", "subject", m.Subject)
		return nil
	}
	return q.Send(ctx, m)
}

// SetFlowsPending sets how many jobs count as in line, so a test can fill
// the line (MaxFlowJobs) and empty it again without running jobs.
func (s *Service) SetFlowsPending(n int) {
	s.flows.mu.Lock()
	s.flows.pending = n
	s.flows.mu.Unlock()
}
