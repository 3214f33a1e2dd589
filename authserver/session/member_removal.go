package session

import (
	"context"
	"sync"
	"time"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/directory"
)

// Deleting or disabling a Membership ends that user's sessions in that
// organization at once, and re-creating it revives none of them: a
// removed member keeps no token that still works. The directory calls memberRemoved from the informer event.
// Two things happen:
//
//   - This replica remembers when the membership ended. A session of that
//     user and organization made at or before then is refused from this
//     moment on, even if the Membership comes back before the store
//     catches up. Every replica sees the same informer event, so every
//     replica refuses at once.
//   - In the background, the sessions are marked revoked in the store, so
//     the refusal outlives this process. Every replica does this; the
//     writes are compare-and-swap, so doing it twice is harmless.
//
// The refusal compares the removal time on this replica's clock with the
// session's creation time on the clock of the replica that made it, so
// clock skew between replicas can refuse a session made within the skew
// after the Membership came back (fail closed), and the store revocation
// covers a session made within the skew before it went. A Membership
// disabled while no replica runs is refused while disabled, but nothing
// revokes its sessions in the store.

// memberKey names one user's membership of one organization.
type memberKey struct{ email, orgRef string }

// memberRemovals remembers when memberships ended on this replica.
type memberRemovals struct {
	mu sync.RWMutex
	at map[memberKey]time.Time
}

func (r *memberRemovals) set(email, orgRef string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil {
		r.at = map[memberKey]time.Time{}
	}
	r.at[memberKey{email, orgRef}] = t
}

// EndedBefore reports whether the membership of email in orgRef ended at
// or after created: a session made then belongs to the old membership.
func (r *memberRemovals) EndedBefore(email, orgRef string, created time.Time) bool {
	r.mu.RLock()
	t, ok := r.at[memberKey{email, orgRef}]
	r.mu.RUnlock()
	return ok && !created.After(t)
}

// ErrMembershipInactive answers a token or session whose membership was
// disabled or removed.
var ErrMembershipInactive = problem.MembershipInactive.New()

// MemberRemoved is the directory's hook for a membership that was deleted
// or disabled. It must not block: it runs on the informer's goroutine.
func (s *Manager) MemberRemoved(m directory.Member) {
	s.removals.set(m.Email, m.OrgRef, s.cfg.Now().UTC())
	go s.endMemberSessions(m.Email, m.OrgRef)
}

// endMemberSessions revokes the user's sessions in orgRef in the store,
// retrying with backoff while the store is unreachable.
func (s *Manager) endMemberSessions(email, orgRef string) {
	uid := s.cfg.UserID(email)
	delay := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.RevokeSessionsWhere(ctx, uid, "membership_removed", func(sess *Session) bool { return sess.OrgRef == orgRef })
		cancel()
		if err == nil {
			return
		}
		if attempt == 8 {
			s.log.Error(err, "could not revoke the sessions of a removed membership; this replica still refuses them", "organization", orgRef)
			return
		}
		time.Sleep(delay)
		delay = min(2*delay, 30*time.Second)
	}
}
