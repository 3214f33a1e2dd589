package app

import (
	"os"
	"runtime/debug"
)

// authServerGCPercent is the auth server's garbage-collection target: the
// heap may grow to 5× what is live before a collection, against Go's
// default of 2×.
//
// The auth server's live heap is small (about 8 MiB on make dev: the
// directory, keys, revocations) and every request allocates, so at the
// default it collects about 12 times a second under /verify load, and
// each mark phase takes a share of the cores the requests need; requests
// that arrive during one wait longer, which is most of /verify's tail
// beyond the bare handler's. At 400 it collects a quarter as often for
// about 30 MiB more heap. GOMEMLIMIT, which the chart sets below the
// pod's memory limit, still bounds the total: the collector works harder
// as the heap nears it. Run outside the chart, the auth server needs
// GOMEMLIMIT set the same way, or GOGC=100 where memory is tight; in
// make dev the operator in the same process collects at 400 too.
const authServerGCPercent = 400

// TuneGC sets the auth server's garbage-collection target, unless the
// environment sets GOGC: an operator's choice wins. Load tools that host
// the auth server in their process call it too, so they measure the
// server as it runs.
func TuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(authServerGCPercent)
	}
}
