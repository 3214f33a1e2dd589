package account

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantauth/tenantauth/authserver/problem"
)

// Password hashing is the one thing a client can make the server do that
// costs real memory: argon2id with the default parameters takes 19 MiB a
// hash. Every hash (a login's verification, the dummy one for an unknown
// email, a new password's) runs in a pool of a few slots, so the memory
// it holds is slots x 19 MiB however many clients ask. A request waits in
// a short queue for a slot; past it the request is shed with 503 busy and
// Retry-After, before its hash starts, rather than the pod running out of
// memory. Background jobs (a signup's hash) wait without a bound but may
// hold only half the slots, so a flood of signups never starves logins.

// maxDefaultHashSlots caps the default pool: four 19 MiB hashes fit the
// chart's 256 MiB limit with room for everything else.
const maxDefaultHashSlots = 4

// hashQueuePerSlot is the default queue length per slot, and minHashQueue
// its least: long enough that a burst of a few dozen logins waits rather
// than sheds, short enough that a queued login is answered within about a
// second or two.
const (
	hashQueuePerSlot = 8
	minHashQueue     = 24
)

// errHashBusy sheds a request when every slot and the queue are taken.
var errHashBusy = problem.Busy.Because("the server is busy checking passwords; retry shortly").After(2 * time.Second)

// hashPool bounds the argon2 hashes running at once.
type hashPool struct {
	slots      chan struct{}
	background chan struct{}
	admitted   atomic.Int64 // requests running or queued
	maxAdmit   int64
}

func newHashPool(size, queue int) *hashPool {
	if size <= 0 {
		size = min(runtime.GOMAXPROCS(0), maxDefaultHashSlots)
	}
	if queue <= 0 {
		queue = max(hashQueuePerSlot*size, minHashQueue)
	}
	return &hashPool{slots: make(chan struct{}, size), background: make(chan struct{}, max(1, size/2)),
		maxAdmit: int64(size + queue)}
}

// run runs fn in a slot for a request: errHashBusy when the queue is full
// or ctx ends before a slot frees.
func (p *hashPool) run(ctx context.Context, fn func()) error {
	if p.admitted.Add(1) > p.maxAdmit {
		p.admitted.Add(-1)
		return errHashBusy
	}
	defer p.admitted.Add(-1)
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return errHashBusy
	}
	defer func() { <-p.slots }()
	fn()
	return nil
}

// runBackground runs fn in a slot for a background job, waiting as long
// as ctx allows, on at most half the slots.
func (p *hashPool) runBackground(ctx context.Context, fn func()) error {
	select {
	case p.background <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.background }()
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.slots }()
	fn()
	return nil
}

// passwordHasher is a Server's pool and the dummy hash unknown emails are
// verified against, made with the server's own parameters so that they
// cost what a real verification costs.
type passwordHasher struct {
	once  sync.Once
	pool  *hashPool
	dummy string
}

func (s *Service) Hasher() *passwordHasher {
	h := &s.hashing
	h.once.Do(func() {
		h.pool = newHashPool(s.cfg.PasswordHashConcurrency, s.cfg.PasswordHashQueue)
		d, err := HashPassword("tenantauth-dummy-password", s.cfg.Argon2)
		if err != nil {
			d = dummyHash
		}
		h.dummy = d
	})
	return h
}

// verifyPassword checks password against encoded (the dummy hash when
// empty, which never matches) in a pool slot. extra runs in the slot
// beside the hash, so work such as counting the attempt hides behind it.
func (s *Service) verifyPassword(ctx context.Context, password, encoded string, extra func()) (bool, error) {
	h := s.Hasher()
	known := encoded != ""
	if !known {
		encoded = h.dummy
	}
	var ok bool
	err := h.pool.run(ctx, func() {
		done := make(chan struct{})
		if extra != nil {
			go func() { defer close(done); extra() }()
		} else {
			close(done)
		}
		ok = verifyNormalized(password, encoded)
		<-done
	})
	return ok && known, err
}

// hashPassword hashes a new password in a pool slot, on the request path.
func (s *Service) HashPassword(ctx context.Context, password string) (string, error) {
	var hash string
	var herr error
	if err := s.Hasher().pool.run(ctx, func() { hash, herr = HashPassword(normalizePassword(password), s.cfg.Argon2) }); err != nil {
		return "", err
	}
	return hash, herr
}

// hashPasswordBackground hashes a new password for a background job.
func (s *Service) hashPasswordBackground(ctx context.Context, password string) (string, error) {
	var hash string
	var herr error
	if err := s.Hasher().pool.runBackground(ctx, func() { hash, herr = HashPassword(normalizePassword(password), s.cfg.Argon2) }); err != nil {
		return "", err
	}
	return hash, herr
}

// OccupyHashSlot runs fn in a slot of the argon2 pool, as a password
// check would, and HashAdmitted counts the checks running or in line: a
// test fills the pool with them to see what a full pool answers.
func (s *Service) OccupyHashSlot(ctx context.Context, fn func()) error {
	return s.Hasher().pool.run(ctx, fn)
}

// HashAdmitted is the number of password checks running or in line.
func (s *Service) HashAdmitted() int64 { return s.Hasher().pool.admitted.Load() }
