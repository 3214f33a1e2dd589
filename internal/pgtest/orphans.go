package pgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// A server outlives its process when the process is killed (a test
// timeout, kill -9) before Close: pg_ctl detaches it. Each server's folder
// names its owner, and Start stops and removes the servers of owners that
// are gone, so killed runs do not pile up idle servers that share the
// machine's cores with the next test or benchmark.

// ownerFile, in a server's folder, names the process that started it.
const ownerFile = "owner"

// reapOnce makes each process reap once, at its first Start.
var reapOnce sync.Once

// processID is a process's PID and start time (field 22 of
// /proc/<pid>/stat), so a PID used again later names someone else; "" when
// the process is gone.
func processID(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:])) // from field 3
	if len(f) < 20 {
		return ""
	}
	return fmt.Sprintf("%d %s", pid, f[19])
}

// own marks dir as this process's.
func own(dir string) error {
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(processID(os.Getpid())), 0o644)
}

// reapOrphans stops, with pg_ctl stop -m immediate, and removes every
// server folder under root whose owner is gone, and answers how many. A
// folder without an owner file (being made, or not pgtest's) is left.
func reapOrphans(root, bin string, run []string) int {
	dirs, _ := filepath.Glob(filepath.Join(root, "pgtest-*"))
	n := 0
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err != nil || processID(pid) == string(b) {
			continue
		}
		s := &Server{Dir: dir, bin: bin, run: run}
		if _, err := os.Stat(filepath.Join(s.dataDir(), "postmaster.pid")); err == nil {
			_ = s.Kill()
		}
		if os.RemoveAll(dir) == nil {
			n++
		}
	}
	return n
}
