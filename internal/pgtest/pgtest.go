// Package pgtest starts a real PostgreSQL server for tests and load tools:
// Debian's server binaries (package postgresql), initdb and pg_ctl in a
// temporary folder, listening on 127.0.0.1 and a free port. PostgreSQL
// refuses to run as root, so a root process runs the binaries as the
// postgres system user (or nobody) through runuser.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries says the PostgreSQL server binaries are not installed.
var ErrNoBinaries = errors.New("PostgreSQL server binaries not found (install the Debian package postgresql, or set PGTEST_BINDIR)")

// Options tune a server.
type Options struct {
	// Durable keeps fsync and synchronous commit on, as in production;
	// tests leave it off for speed, benchmarks turn it on.
	Durable bool
	// Settings are extra postgres -c settings.
	Settings map[string]string
}

// Server is a running PostgreSQL server owned by this process.
type Server struct {
	Dir  string
	Port int
	bin  string
	run  []string // prefix that runs a command as the server's user
	opts Options
	dbs  atomic.Int64
}

// BinDir finds the server binaries: $PGTEST_BINDIR, or the newest
// /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// Start runs initdb and starts a server in a fresh temporary folder.
func Start(opts Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	var (
		run      []string
		uid, gid = -1, -1
	)
	if os.Geteuid() == 0 {
		u, err := serverUser()
		if err != nil {
			return nil, err
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		run = []string{"runuser", "-u", u.Username, "--"}
	}
	reapOnce.Do(func() { reapOrphans(os.TempDir(), bin, run) })
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	if err := own(dir); err != nil {
		return nil, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bin: bin, run: run, opts: opts}
	if out, err := s.cmd("initdb", "-D", s.dataDir(), "-U", "tenantauth", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	for attempt := 0; ; attempt++ {
		if s.Port, err = freePort(); err != nil {
			return nil, err
		}
		if err = s.StartAgain(); err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func serverUser() (*user.User, error) {
	if u, err := user.Lookup("postgres"); err == nil {
		return u, nil
	}
	return user.Lookup("nobody")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.Dir, "data") }

func (s *Server) cmd(name string, args ...string) *exec.Cmd {
	argv := append(append([]string{}, s.run...), append([]string{filepath.Join(s.bin, name)}, args...)...)
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = s.Dir
	return c
}

// StartAgain starts the server on its port, after Stop or Kill.
func (s *Server) StartAgain() error {
	set := map[string]string{
		"listen_addresses": "127.0.0.1", "port": strconv.Itoa(s.Port), "unix_socket_directories": s.Dir,
		"max_connections": "300", "shared_buffers": "128MB",
	}
	if !s.opts.Durable {
		set["fsync"], set["synchronous_commit"], set["full_page_writes"] = "off", "off", "off"
	}
	for k, v := range s.opts.Settings {
		set[k] = v
	}
	var o []string
	for k, v := range set {
		o = append(o, "-c "+k+"="+v)
	}
	sort.Strings(o)
	out, err := s.cmd("pg_ctl", "start", "-w", "-t", "60", "-D", s.dataDir(), "-l", filepath.Join(s.Dir, "log"),
		"-o", strings.Join(o, " ")).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
		return fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, tail(log, 2000))
	}
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Kill stops the server the way a crash does (pg_ctl stop -m immediate):
// open connections break at once, nothing is shut down cleanly.
func (s *Server) Kill() error { return s.stop("immediate") }

// Stop stops the server cleanly.
func (s *Server) Stop() error { return s.stop("fast") }

func (s *Server) stop(mode string) error {
	out, err := s.cmd("pg_ctl", "stop", "-w", "-m", mode, "-D", s.dataDir()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w: %s", mode, err, out)
	}
	return nil
}

// Close stops the server and removes its folder.
func (s *Server) Close() error {
	err := s.Stop()
	if rmErr := os.RemoveAll(s.Dir); err == nil {
		err = rmErr
	}
	return err
}

// DSN is the connection string of database db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://tenantauth@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// CreateDB makes a fresh, empty database and returns its DSN.
func (s *Server) CreateDB(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.dbs.Add(1))
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.DSN(name), nil
}

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
)

// Shared is one server for every test of the process; it skips tb when
// the binaries are missing. Call Main from TestMain to stop it at the end.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedOnce.Do(func() { shared, sharedErr = Start(Options{}) })
	check(tb, sharedErr)
	return shared
}

// NewDB is a fresh database on the shared server: its DSN.
func NewDB(tb testing.TB) string {
	tb.Helper()
	s := Shared(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, err := s.CreateDB(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return dsn
}

// Own starts a server of tb's own (for tests that stop or kill it),
// closed when tb ends.
func Own(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Start(opts)
	check(tb, err)
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func check(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrNoBinaries) {
		tb.Skipf("skipping: %v", err)
	}
	if err != nil {
		tb.Fatalf("start PostgreSQL: %v", err)
	}
}

// Main runs the tests and then stops the shared server, if one started.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		_ = shared.Close()
	}
	return code
}
