// Package account is what a user proves and keeps: credentials and the
// password policy, the bounded argon2 pool, TOTP and recovery codes,
// one-time tokens, failed sign-in counting, the account mails and their
// background jobs, and how a proven sign-in ends (a session, or an
// intermediate session while a second factor is owed). It returns values
// and errors from the problem catalog; the HTTP layer decodes requests
// and writes answers.
package account

import (
	"time"

	"github.com/go-logr/logr"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/mail"
	"github.com/tenantauth/tenantauth/authserver/session"
	"github.com/tenantauth/tenantauth/authserver/store"
)

// Config is what the account flows need of the server around them.
type Config struct {
	Now func() time.Time
	// PublicURL and PathPrefix build the links in mails and the TOTP
	// issuer name.
	PublicURL  string
	PathPrefix string
	// Argon2 are the password hashing parameters; MinPasswordLength is the
	// shortest password accepted.
	Argon2            Argon2Params
	MinPasswordLength int
	// PasswordHashConcurrency and PasswordHashQueue bound the argon2
	// pool (see hashpool.go).
	PasswordHashConcurrency int
	PasswordHashQueue       int
	// RecoveryKey keys the hashes of TOTP recovery codes, and SealKey
	// seals verification links (verify_sealed.go); every replica holds
	// the same ones.
	RecoveryKey []byte
	SealKey     []byte
	// MaxOutstandingTokens caps a user's mailed links (tokencap.go).
	MaxOutstandingTokens int
	// UserFor derives a user from an email.
	UserFor func(email string) session.User
	// Issued counts an issued token by kind; nil counts nothing.
	Issued func(kind string)
	Log    logr.Logger
}

// Service runs the account flows on a store, for the tenants of a
// directory, ending sign-ins through sessions.
type Service struct {
	cfg      Config
	store    store.Store
	dir      *directory.Directory
	sessions *session.Manager
	log      logr.Logger
	// mailer sends account mails (through a queue); members creates
	// Memberships at signup; flows is the background jobs' state.
	mailer  mail.Mailer
	members MembershipWriter
	flows   flowState
	// hashing bounds argon2 work; lockouts counts failed sign-ins.
	hashing  passwordHasher
	lockouts *lockouts
}

// New returns a Service. mailer and members may be nil: no mail is sent,
// and signups cannot finish.
func New(cfg Config, st store.Store, dir *directory.Directory, sessions *session.Manager, mailer mail.Mailer, members MembershipWriter) *Service {
	return &Service{cfg: cfg, store: st, dir: dir, sessions: sessions, log: cfg.Log,
		mailer: mailer, members: members, lockouts: newLockouts(st, cfg.Now)}
}

func (s *Service) issued(kind string) {
	if s.cfg.Issued != nil {
		s.cfg.Issued(kind)
	}
}
