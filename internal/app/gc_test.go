package app

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	TuneGC()
	if got := debug.SetGCPercent(100); got != authServerGCPercent {
		t.Fatalf("without GOGC the target is %d, want %d", got, authServerGCPercent)
	}
	// An operator's GOGC is left as the runtime read it.
	t.Setenv("GOGC", "150")
	TuneGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("with GOGC set the target was changed to %d", got)
	}
}
