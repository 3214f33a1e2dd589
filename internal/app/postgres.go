package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/tenantauth/tenantauth/authserver/postgres"
)

// postgresDSNEnv names the environment variable a DSN may come from, as
// the chart passes one from a Secret.
const postgresDSNEnv = "TENANTAUTH_POSTGRES_DSN"

// PostgresOptions are the flags of the postgres store.
type PostgresOptions struct {
	// DSN is --postgres-dsn (or $TENANTAUTH_POSTGRES_DSN); DSNFile is
	// --postgres-dsn-file, a file holding the DSN (a mounted Secret key),
	// which keeps the password out of the process's arguments.
	DSN     string
	DSNFile string
	// Batchers is --postgres-batchers and RecentSessions
	// --postgres-recent-sessions: postgres.Config's, where 0 takes the
	// store's default and a negative number turns each off.
	Batchers       int
	RecentSessions int
}

// Bind registers the flags on fs.
func (o *PostgresOptions) Bind(fs *flag.FlagSet) {
	fs.StringVar(&o.DSN, "postgres-dsn", "", "with --store=postgres: the PostgreSQL connection string or URL (default $"+postgresDSNEnv+"); prefer --postgres-dsn-file, which keeps the password out of the process list")
	fs.StringVar(&o.DSNFile, "postgres-dsn-file", "", "with --store=postgres: a file holding the connection string, such as a mounted Secret key")
	fs.IntVar(&o.Batchers, "postgres-batchers", 0, "with --store=postgres: how many batches of concurrent refresh writes run at once, each one statement (0: the default, 4; -1: each write its own statement)")
	fs.IntVar(&o.RecentSessions, "postgres-recent-sessions", 0, "with --store=postgres: sessions each replica keeps as it last wrote them, so a refresh on the same replica needs no read (0: the default, 4096; -1: none)")
}

// resolve returns the DSN from the flag, the file or the environment.
func (o PostgresOptions) resolve() (string, error) {
	if o.DSN != "" && o.DSNFile != "" {
		return "", usage(errors.New("set one of --postgres-dsn and --postgres-dsn-file, not both"))
	}
	dsn := o.DSN
	if o.DSNFile != "" {
		b, err := os.ReadFile(o.DSNFile)
		if err != nil {
			return "", fmt.Errorf("read --postgres-dsn-file: %w", err)
		}
		dsn = strings.TrimSpace(string(b))
	}
	if dsn == "" {
		dsn = os.Getenv(postgresDSNEnv)
	}
	if dsn == "" {
		return "", usage(errors.New("--store=postgres needs --postgres-dsn, --postgres-dsn-file or $" + postgresDSNEnv))
	}
	return dsn, nil
}

// newPostgresStore opens the postgres store and the runnable that
// migrates it and keeps its revocation view current. The store is not
// ready (and /readyz says so) until the database answers; a schema newer
// than the binary stops the process.
func newPostgresStore(o PostgresOptions, log logr.Logger) (*postgres.Store, manager.Runnable, error) {
	dsn, err := o.resolve()
	if err != nil {
		return nil, nil, err
	}
	if host, insecure := postgres.InsecureRemote(dsn); insecure {
		log.Info("WARNING: the PostgreSQL connection may be unencrypted (sslmode disable, allow or prefer) to a host that is not local; "+
			"set sslmode=verify-full (or require)", "host", host)
	}
	st, err := postgres.Open(postgres.Config{DSN: dsn, Log: log, Batchers: o.Batchers, RecentSessions: o.RecentSessions})
	if err != nil {
		return nil, nil, err
	}
	return st, manager.RunnableFunc(func(ctx context.Context) error {
		defer st.Close()
		return st.Run(ctx)
	}), nil
}
