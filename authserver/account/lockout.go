package account

import (
	"context"
	"strconv"
	"time"

	"github.com/tenantauth/tenantauth/authserver/session"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// Per-account lockout against online password guessing (NIST SP 800-63B
// 5.2.2). Failed
// passwords and failed second-factor codes are counted per user in the
// store.Store, so every session and every replica adds to the same count. Up to
// LockoutThreshold consecutive failures cost nothing; from there each
// attempt must wait 2^n seconds (n = failures past the threshold, capped
// at LockoutMaxDelay) after the last failure, else 429 with Retry-After,
// and the user is mailed once when the slow-down starts. At
// LockoutMaxFailures the factor is locked until a password reset. A
// success resets its own factor only: a right password never clears
// second-factor failures, so knowing the password does not buy more code
// guesses.
//
// An attempt is counted as a failure before it is checked, inside the
// compare-and-swap that also decides whether it may run, so concurrent
// guesses cannot slip past the count; a success then clears it. The count
// runs in the hash slot beside the argon2 verification, so a store write
// costs no visible time.
//
// Emails with no password get the same answers in the same time, on every
// replica: their attempts are counted the same way, in the store too, but
// in a fixed number of shared decoy records (see failurebook.go), so
// guessing addresses that are no account makes no record per address and
// the store's use stays bounded. No mail is sent for them.

// The factors counted apart.
const (
	factorPassword     = "password"
	factorSecondFactor = "second_factor"
)

// The lockout policy.
const (
	LockoutThreshold   = 5
	LockoutMaxFailures = 100
	LockoutMaxDelay    = 15 * time.Minute
	// lockoutRetention forgets a count this long after its last failure,
	// unless the factor is locked; a locked record stays until a reset.
	lockoutRetention = 30 * 24 * time.Hour
)

// errAccountLocked answers every attempt of a locked factor.
var errAccountLocked = problem.AccountLocked.New()

// failureCount is one factor's consecutive failures.
type failureCount struct {
	Failures int       `json:"failures"`
	Last     time.Time `json:"last"`
	// Notified is set once the user was mailed about this episode.
	Notified bool `json:"notified,omitempty"`
}

// lockoutRecord is a user's failure counts (record kind store.KindLockout,
// keyed by user ID).
type lockoutRecord struct {
	Factors map[string]*failureCount `json:"factors"`
}

// LockoutDelay is how long after the last of f consecutive failures the
// next attempt may run.
func LockoutDelay(f int) time.Duration {
	if f < LockoutThreshold {
		return 0
	}
	return min(time.Second<<min(f-LockoutThreshold+1, 20), LockoutMaxDelay)
}

// refusal is the answer to an attempt while c holds, or nil.
func refusal(c *failureCount, now time.Time) *problem.Error {
	if c == nil {
		return nil
	}
	if c.Failures >= LockoutMaxFailures {
		return errAccountLocked
	}
	if wait := c.Last.Add(LockoutDelay(c.Failures)).Sub(now); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		return problem.TooManyFailures.Because("too many failed attempts for this account; retry after " + strconv.Itoa(secs) + "s").After(time.Duration(secs) * time.Second)
	}
	return nil
}

// lockouts counts failures: accounts in one record each, other emails in
// decoy shards, both in the store.
type lockouts struct {
	accounts failureBook
	decoys   failureBook
	store    store.Store
	now      func() time.Time
}

func newLockouts(st store.Store, now func() time.Time) *lockouts {
	return &lockouts{accounts: accountBook{st}, decoys: decoyBook{st, now}, store: st, now: now}
}

// bookFor is where an email's counts live: its own record for an account
// with a password, a shared decoy shard for any other.
func (l *lockouts) bookFor(account bool) failureBook {
	if account {
		return l.accounts
	}
	return l.decoys
}

// check answers an attempt that must wait or is locked, from a read only.
// A store that cannot say is a 503: fail closed.
func (l *lockouts) check(ctx context.Context, b failureBook, userID, factor string) error {
	lr, err := b.read(ctx, userID)
	if err != nil {
		return err
	}
	if e := refusal(lr.Factors[factor], l.now()); e != nil {
		return e
	}
	return nil
}

// Attempt is one counted attempt of a factor.
type Attempt struct {
	book           failureBook
	userID, factor string
	// notify is set when this attempt started the slow-down: if it fails,
	// the user is mailed.
	notify bool
}

// reserve counts an attempt as a failure, unless the factor must wait or
// is locked (then that answer).
func (l *lockouts) reserve(ctx context.Context, b failureBook, userID, factor string) (*Attempt, error) {
	a := &Attempt{book: b, userID: userID, factor: factor}
	err := b.update(ctx, userID, func(lr *lockoutRecord) (bool, error) {
		now := l.now().UTC()
		c := lr.Factors[factor]
		if e := refusal(c, now); e != nil {
			return false, e
		}
		if c == nil {
			c = &failureCount{}
			lr.Factors[factor] = c
		}
		c.Failures++
		c.Last = now
		a.notify = c.Failures >= LockoutThreshold && !c.Notified
		c.Notified = c.Notified || a.notify
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// succeed clears the attempt's factor: the episode is over.
func (a *Attempt) succeed(ctx context.Context) error {
	return a.book.update(ctx, a.userID, func(lr *lockoutRecord) (bool, error) {
		if _, ok := lr.Factors[a.factor]; !ok {
			return false, nil
		}
		delete(lr.Factors, a.factor)
		return true, nil
	})
}

// clearLockout ends every count of a user: a password reset unlocks.
func (s *Service) clearLockout(ctx context.Context, userID string) error {
	return s.lockouts.store.Delete(ctx, store.KindLockout, accountLockoutID(userID))
}

// passwordSignIn checks a login's password under the lockout. It answers
// (false, nil) for a wrong password or an email without one, alike, and
// an error for a password that is no UTF-8, a slowed-down or locked
// account, a full hash pool or an unreachable store.
func (s *Service) PasswordSignIn(ctx context.Context, u session.User, password string, creds *Credentials) (bool, error) {
	if err := checkPasswordEncoding(password); err != nil {
		return false, err
	}
	l := s.lockouts
	st := l.bookFor(creds.PasswordHash != "")
	if err := l.check(ctx, st, u.ID, factorPassword); err != nil {
		return false, err
	}
	var att *Attempt
	var aerr error
	ok, err := s.verifyPassword(ctx, password, creds.PasswordHash, func() {
		att, aerr = l.reserve(ctx, st, u.ID, factorPassword)
	})
	switch {
	case err != nil:
		return false, err // shed before anything was counted
	case aerr != nil:
		return false, aerr
	case ok:
		return true, att.succeed(ctx)
	}
	if att.notify && creds.PasswordHash != "" {
		s.mailLockout(ctx, u.Email, "password")
	}
	return false, nil
}

// beginSecondFactor counts a second-factor attempt of u (TOTP or recovery
// code) before the code is checked.
func (s *Service) BeginSecondFactor(ctx context.Context, u session.User) (*Attempt, error) {
	return s.lockouts.reserve(ctx, s.lockouts.accounts, u.ID, factorSecondFactor)
}

// endSecondFactor settles a second-factor attempt: a right code clears the
// count, a wrong one may start the slow-down and its mail.
func (s *Service) EndSecondFactor(ctx context.Context, att *Attempt, u session.User, right bool) error {
	if right {
		return att.succeed(ctx)
	}
	if att.notify {
		s.mailLockout(ctx, u.Email, "second-factor code")
	}
	return nil
}
