package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStartReapsOrphans plays two servers whose processes were killed
// before Close, one owned by a process that is gone and one by a PID now
// used by another process: the reaper stops and removes both, and leaves
// a server whose owner lives.
func TestStartReapsOrphans(t *testing.T) {
	start := func() *Server {
		s, err := Start(Options{})
		if errors.Is(err, ErrNoBinaries) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	live, gone, reused := start(), start(), start()
	t.Cleanup(func() { _ = live.Close() })
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	for s, owner := range map[*Server]string{
		gone:   fmt.Sprintf("%d x", exited.Process.Pid),
		reused: fmt.Sprintf("%d 0", os.Getpid()), // this PID, another start time
	} {
		if err := os.WriteFile(filepath.Join(s.Dir, ownerFile), []byte(owner), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n := reapOrphans(os.TempDir(), live.bin, live.run); n < 2 {
		t.Fatalf("reaped %d servers, want at least the two orphans", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, s := range map[string]*Server{"gone": gone, "reused": reused} {
		if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
			t.Errorf("the %s owner's folder is still there: %v", name, err)
		}
		if c, err := pgx.Connect(ctx, s.DSN("postgres")); err == nil {
			c.Close(ctx)
			t.Errorf("the %s owner's server still answers", name)
		}
	}
	c, err := pgx.Connect(ctx, live.DSN("postgres"))
	if err != nil {
		t.Fatalf("the live owner's server: %v", err)
	}
	defer c.Close(ctx)
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("the live owner's server: %v", err)
	}
}
