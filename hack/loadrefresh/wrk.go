package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"time"
)

var (
	wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+(\S+)`)
	wrkBad  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// verifyBesideBare loads a bare net/http handler and then /verify with a
// JWT on the named store with wrk, and prints both and their ratio.
func verifyBesideBare(name, base, jwt string, d time.Duration, conns int) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		fmt.Printf("%-14s /verify beside a bare handler: skipped, wrk not installed (apt-get install -y wrk)\n", name)
		return nil
	}
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer bare.Close()
	var rates [2]float64
	for i, t := range []struct{ name, url, header string }{
		{"bare net/http", bare.URL + "/", "X-Nothing: 1"},
		{"/verify (JWT)", base + "/verify?org=acme", "Authorization: Bearer " + jwt},
	} {
		out, err := exec.Command("wrk", "-t2", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(d.Seconds())), "--latency",
			"-H", t.header, t.url).CombinedOutput()
		if err != nil {
			return fmt.Errorf("wrk: %w: %s", err, out)
		}
		m := wrkRate.FindSubmatch(out)
		if m == nil {
			return fmt.Errorf("wrk output: %s", out)
		}
		fmt.Sscanf(string(m[1]), "%f", &rates[i])
		pct := map[string]string{}
		for _, p := range wrkPct.FindAllSubmatch(out, -1) {
			pct[string(p[1])] = string(p[2])
		}
		bad := "0"
		if b := wrkBad.FindSubmatch(out); b != nil {
			bad = string(b[1])
		}
		fmt.Printf("%-14s wrk c=%d %-14s %9.0f req/s  p50 %8s  p99 %8s  non-2xx %s\n", name, conns, t.name, rates[i], pct["50"], pct["99"], bad)
	}
	fmt.Printf("%-14s /verify at %.0f%% of the bare handler\n", name, 100*rates[1]/rates[0])
	return nil
}
