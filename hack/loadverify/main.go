// Command loadverify measures /verify under load on real listeners, beside
// a bare net/http handler measured in the same run, with wrk (Debian's
// package) as the load generator:
//
//	go run ./hack/loadverify -duration 10s -connections 64
//
// It serves the auth server with the memory store and one organization on
// 127.0.0.1, and prints requests per second and latency percentiles for
// the bare handler, /verify with a JWT and /verify with an API key, each
// bare and with an original request in X-Original-URL (the default
// ingress-nginx source) whose path the normaliser has to clean.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/internal/apikey"
	"github.com/tenantauth/tenantauth/internal/identity"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "how long each target is loaded")
	conns := flag.Int("connections", 64, "wrk connections")
	threads := flag.Int("threads", 2, "wrk threads")
	base := flag.String("url", "", "base URL of a running auth server to load instead of an in-process one")
	extJWT := flag.String("jwt", "", "with -url: an access token of the organization -org")
	extKey := flag.String("api-key", "", "with -url: an API key of -org with scope read")
	org := flag.String("org", "acme", "with -url: the organization's slug")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the in-process server to the file")
	// Background load on shared cores drifts by more than the difference
	// being measured; rounds interleave every target with the bare
	// handler, and the summary takes each target's ratio within its round.
	rounds := flag.Int("rounds", 1, "measure every target this many times, interleaved, and print the medians")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "-cpuprofile:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		fmt.Fprintln(os.Stderr, "loadverify needs wrk: apt-get install -y wrk")
		os.Exit(2)
	}
	var srv http.Handler
	jwt, key, slug := *extJWT, *extKey, *org
	if *base == "" {
		s, j, k, err := setup()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		srv, jwt, key, slug = s, j, k, "acme"
	} else if jwt == "" || key == "" {
		fmt.Fprintln(os.Stderr, "-url needs -jwt and -api-key")
		os.Exit(2)
	}
	fwd := strings.ReplaceAll(forwarded, "%61cme", slug)
	bare := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	targets := []struct {
		name    string
		handler http.Handler
		path    string
		headers []string
	}{
		{"bare net/http 200", bare, "/", nil},
		// The same handler sent /verify's request (path, query and the
		// JWT's header): what net/http and wrk cost for that request alone.
		{"  bare, JWT request", bare, "/verify?org=" + slug, []string{"Authorization: Bearer " + jwt}},
		{"/verify JWT (ES256)", srv, "/verify?org=" + slug, []string{"Authorization: Bearer " + jwt}},
		{"  + forwarded path", srv, "/verify?org=" + slug, []string{"Authorization: Bearer " + jwt, fwd}},
		{"/verify API key", srv, "/verify?org=" + slug + "&scope=read", []string{"X-API-Key: " + key}},
		{"  + forwarded path", srv, "/verify?org=" + slug + "&scope=read", []string{"X-API-Key: " + key, fwd}},
	}
	fmt.Printf("wrk -t%d -c%d -d%s, %d cores\n", *threads, *conns, *duration, numCPU())
	ratios := make([][]float64, len(targets)) // req/s over bare's, per round
	tails := make([][]float64, len(targets))  // p99 over bare's, per round
	rates := make([][]float64, len(targets))
	for range *rounds {
		fmt.Printf("\n%-22s %12s %10s %10s %10s %10s\n", "target", "req/s", "p50", "p90", "p99", "non-2xx")
		var bare result
		for i, t := range targets {
			res, err := measure(t.handler, *base, t.path, t.headers, *threads, *conns, *duration)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			rel := ""
			if i == 0 {
				bare = res
			} else {
				rel = fmt.Sprintf("  (%.0f%% of bare)", 100*res.rps/bare.rps)
			}
			ratios[i] = append(ratios[i], res.rps/bare.rps)
			tails[i] = append(tails[i], seconds(res.p99)/seconds(bare.p99))
			rates[i] = append(rates[i], res.rps)
			fmt.Printf("%-22s %12.0f %10s %10s %10s %10d%s\n", t.name, res.rps, res.p50, res.p90, res.p99, res.non2xx, rel)
		}
	}
	if *rounds > 1 {
		fmt.Printf("\nmedians of %d rounds (ratios taken within each round)\n", *rounds)
		fmt.Printf("%-22s %12s %12s %14s\n", "target", "req/s", "of bare", "p99 / bare's")
		for i, t := range targets {
			fmt.Printf("%-22s %12.0f %11.0f%% %13.2fx\n", t.name, median(rates[i]), 100*median(ratios[i]), median(tails[i]))
		}
	}
}

// measure loads path with wrk: on an in-process listener for handler, or
// at base when handler is nil.
func measure(handler http.Handler, base, path string, headers []string, threads, conns int, d time.Duration) (result, error) {
	url := strings.TrimSuffix(base, "/")
	if handler != nil {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return result{}, err
		}
		hs := &http.Server{Handler: handler}
		go func() { _ = hs.Serve(l) }()
		defer func() { _ = hs.Shutdown(context.Background()) }()
		url = "http://" + l.Addr().String()
	}
	return runWrk(threads, conns, d, url+path, headers)
}

// seconds reads one of wrk's latencies ("624.00us", "8.58ms", "1.02s").
func seconds(s string) float64 {
	d, err := time.ParseDuration(s)
	if err != nil {
		return math.NaN()
	}
	return d.Seconds()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// setup builds an auth server with one organization, a member with a
// session and an API key.
func setup() (*authserver.Server, string, string, error) {
	installKey := []byte("loadverify-installation-key-0123")
	dir := directory.NewDirectory()
	roles := map[string]directory.RoleDef{"owner": {Rank: 100}, "member": {Rank: 40}, "viewer": {Rank: 20}}
	dir.PutOrg(&directory.Org{Ref: "demo/acme", ID: "org_acme", Slug: "acme", Name: "Acme", AccessTTL: time.Hour,
		IdleTTL: time.Hour, AbsoluteTTL: time.Hour, Algorithm: "ES256", Password: true, APIKeys: true, Roles: roles})
	set := &signingkeys.Set{}
	if _, _, err := set.Rotate(signingkeys.Policy{Algorithm: "ES256", RotationInterval: 24 * time.Hour, AccessTokenTTL: time.Hour}, time.Now().Add(-time.Minute)); err != nil {
		return nil, "", "", err
	}
	ks, err := directory.PrepareKeySet(set)
	if err != nil {
		return nil, "", "", err
	}
	dir.PutKeys("demo/acme", ks)
	dir.PutMember(&directory.Member{Ref: "demo/alice", OrgRef: "demo/acme", Email: "alice@acme.com", Role: "owner"})
	plain, k, err := apikey.Generate("live")
	if err != nil {
		return nil, "", "", err
	}
	dir.PutAPIKey(&directory.APIKeyInfo{KeyID: k.ID, OrgRef: "demo/acme", Scopes: []string{"read"}})
	dir.PutAPIKeyHash(k.ID, k.Hash())
	dir.SetSynced()

	srv := authserver.New(authserver.Config{PublicURL: "http://127.0.0.1", Secret: installKey}, dir, store.NewMemoryStore(), installKey)
	if err := srv.SetPassword(context.Background(), identity.UserID(installKey, "alice@acme.com"), "correct horse battery"); err != nil {
		return nil, "", "", err
	}
	r := httptest.NewRequest("POST", "/auth/login", strings.NewReader(`{"email":"alice@acme.com","password":"correct horse battery"}`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	var resp struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.AccessToken == "" {
		return nil, "", "", fmt.Errorf("login for the load test failed: %d %s", w.Code, w.Body)
	}
	return srv, resp.AccessToken, plain, nil
}

// forwarded is the original request ingress-nginx would send, with a path
// that needs decoding, slash collapsing and dot-segment removal.
const forwarded = "X-Original-URL: https://api.example.com//api/./org/%61cme/orders/x/../42?page=2"

type result struct {
	rps           float64
	p50, p90, p99 string
	non2xx        int
}

var (
	reqRe    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	pctRe    = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+(\S+)`)
	non2xxRe = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func runWrk(threads, conns int, d time.Duration, url string, headers []string) (result, error) {
	args := []string{fmt.Sprintf("-t%d", threads), fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(d.Seconds())), "--latency"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	var res result
	if m := reqRe.FindSubmatch(out); m != nil {
		fmt.Sscanf(string(m[1]), "%f", &res.rps)
	}
	for _, m := range pctRe.FindAllSubmatch(out, -1) {
		switch string(m[1]) {
		case "50":
			res.p50 = string(m[2])
		case "90":
			res.p90 = string(m[2])
		case "99":
			res.p99 = string(m[2])
		}
	}
	if m := non2xxRe.FindSubmatch(out); m != nil {
		fmt.Sscanf(string(m[1]), "%d", &res.non2xx)
	}
	return res, nil
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "processor\t:")
}
