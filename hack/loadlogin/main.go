// Command loadlogin measures password login under load: throughput,
// latency and the auth server's peak memory, with the argon2 pool at a
// given size or without a bound (the behaviour before the pool):
//
//	go run ./hack/loadlogin -concurrency 64,200 -duration 10s
//
// For each run it starts the auth server in a child process (the memory
// store, one organization, 50 members, the default argon2id parameters,
// rate limits off, the loopback trusted as a proxy), so the server's
// memory is measured apart from the load generator's: peak RSS is the
// child's VmHWM. Every client sends from its own address
// (X-Forwarded-For) and waits as Retry-After says when shed; half the
// logins are members with the right password, half are unknown emails,
// each used once.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/internal/app"
	"github.com/tenantauth/tenantauth/internal/identity"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
)

const (
	members  = 50
	password = "correct horse battery"
)

var installKey = []byte("loadlogin-installation-key-01234")

func main() {
	serve := flag.Bool("serve", false, "run as the measured server (internal)")
	pool := flag.Int("pool", 0, "argon2 pool size for the server; 0 is the default (CPUs, at most 4), -1 is unbounded")
	conc := flag.String("concurrency", "64,200", "comma-separated numbers of concurrent clients, one run each")
	duration := flag.Duration("duration", 10*time.Second, "how long each run lasts")
	modes := flag.String("modes", "default,unbounded", "pool modes to run: default, unbounded, or a size")
	memLimit := flag.String("gomemlimit", "200MiB", "GOMEMLIMIT of the server (the chart's authserver.goMemLimit); empty for none")
	flag.Parse()
	if *serve {
		if err := runServer(*pool); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	fmt.Printf("loadlogin: %d CPUs (GOMAXPROCS %d), argon2id m=%d KiB t=%d, %s per run; server at GOGC %s, GOMEMLIMIT %q\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), account.DefaultArgon2.MemoryKiB, account.DefaultArgon2.Time, *duration, serverGOGC(), *memLimit)
	fmt.Printf("%-10s %6s %10s %8s %8s %8s %8s %10s %10s\n", "pool", "conc", "logins/s", "ok", "busy", "p50", "p99", "idle RSS", "peak RSS")
	for _, mode := range strings.Split(*modes, ",") {
		size := 0
		switch mode {
		case "default":
		case "unbounded":
			size = -1
		default:
			n, err := strconv.Atoi(mode)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bad mode", mode)
				os.Exit(2)
			}
			size = n
		}
		for _, c := range strings.Split(*conc, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(c))
			if err != nil {
				fmt.Fprintln(os.Stderr, "bad concurrency", c)
				os.Exit(2)
			}
			if err := run(mode, size, n, *duration, *memLimit); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
}

// serverGOGC is the GC target the server child runs at: app.TuneGC's,
// unless the environment sets GOGC.
func serverGOGC() string {
	if v, ok := os.LookupEnv("GOGC"); ok {
		return v
	}
	return "400 (app.TuneGC)"
}

// run starts a server child, loads it with n clients for d and prints one
// line.
func run(mode string, pool, n int, d time.Duration, memLimit string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-serve", "-pool", strconv.Itoa(pool))
	cmd.Stderr = os.Stderr
	cmd.Env = os.Environ()
	if memLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+memLimit)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("server did not start: %w", err)
	}
	addr = strings.TrimSpace(addr)
	idle := procKiB(cmd.Process.Pid, "VmRSS")

	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	var ok, busy, other, seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range n {
		wg.Go(func() {
			ip := fmt.Sprintf("198.51.%d.%d", c/250, c%250+1)
			for ctx.Err() == nil {
				i := seq.Add(1)
				email := fmt.Sprintf("nobody%d@acme.com", i)
				if i%2 == 0 {
					email = fmt.Sprintf("user%d@acme.com", i%members)
				}
				body, _ := json.Marshal(map[string]string{"email": email, "password": password})
				req, _ := http.NewRequest("POST", "http://"+addr+"/auth/login", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", ip)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				el := time.Since(t0)
				switch resp.StatusCode {
				case 200, 401:
					ok.Add(1)
					mu.Lock()
					lat = append(lat, el)
					mu.Unlock()
				case 503:
					// A well-behaved client waits as Retry-After says.
					busy.Add(1)
					wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
					select {
					case <-time.After(time.Duration(max(wait, 1)) * time.Second):
					case <-ctx.Done():
					}
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	peak := procKiB(cmd.Process.Pid, "VmHWM")
	slices.Sort(lat)
	pct := func(p float64) string {
		if len(lat) == 0 {
			return "-"
		}
		return lat[int(p*float64(len(lat)-1))].Round(time.Millisecond).String()
	}
	fmt.Printf("%-10s %6d %10.1f %8d %8d %8s %8s %8.0fMi %8.0fMi", mode, n, float64(ok.Load())/elapsed.Seconds(), ok.Load(), busy.Load(),
		pct(0.5), pct(0.99), float64(idle)/1024, float64(peak)/1024)
	if other.Load() > 0 {
		fmt.Printf("  (%d other answers or errors)", other.Load())
	}
	fmt.Println()
	return nil
}

// procKiB reads a field of /proc/<pid>/status, in KiB.
func procKiB(pid int, field string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// runServer serves the auth server on a loopback port, printed on stdout.
func runServer(pool int) error {
	app.TuneGC() // as the auth server runs
	dir := directory.NewDirectory()
	roles := map[string]directory.RoleDef{"owner": {Rank: 100}, "member": {Rank: 40}}
	dir.PutOrg(&directory.Org{Ref: "demo/acme", ID: "org_acme", Slug: "acme", Name: "Acme", AccessTTL: time.Hour,
		IdleTTL: time.Hour, AbsoluteTTL: time.Hour, Algorithm: "ES256", Password: true, Roles: roles})
	set := &signingkeys.Set{}
	if _, _, err := set.Rotate(signingkeys.Policy{Algorithm: "ES256", RotationInterval: 24 * time.Hour, AccessTokenTTL: time.Hour}, time.Now().Add(-time.Minute)); err != nil {
		return err
	}
	ks, err := directory.PrepareKeySet(set)
	if err != nil {
		return err
	}
	dir.PutKeys("demo/acme", ks)
	proxies, _ := authserver.ParseProxyList("127.0.0.0/8")
	cfg := authserver.Config{PublicURL: "http://127.0.0.1", Secret: installKey, RateLimitPerMinute: -1, TrustedProxies: proxies}
	switch {
	case pool < 0:
		cfg.PasswordHashConcurrency, cfg.PasswordHashQueue = 1<<20, 1<<20
	case pool > 0:
		cfg.PasswordHashConcurrency = pool
	}
	srv := authserver.New(cfg, dir, store.NewMemoryStore(), installKey)
	for i := range members {
		email := fmt.Sprintf("user%d@acme.com", i)
		dir.PutMember(&directory.Member{Ref: "demo/" + strconv.Itoa(i), OrgRef: "demo/acme", Email: email, Role: "member"})
		if err := srv.SetPassword(context.Background(), identity.UserID(installKey, email), password); err != nil {
			return err
		}
	}
	dir.SetSynced()
	runtime.GC()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String())
	return srv.Serve(context.Background(), l)
}
