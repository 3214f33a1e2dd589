// Command storeceiling measures what live sessions cost the Kubernetes
// store: heap and RSS of one auth-server replica per 10,000 sessions, and
// etcd bytes per session. It backs the ceiling in docs/deploy.md:
//
//	go run ./hack/storeceiling -sessions 10000
//
// It starts a real kube-apiserver and etcd (envtest, the binaries
// hack/controlplane.sh builds), then a measured replica in a child
// process, wired exactly as `tenantauth authserver` is (internal/app's
// NewAuthServer: its informer cache, its Secret selector and transform,
// the kubernetes store). The parent seeds sessions the way users make
// them, by password logins and refreshes through a second server on the
// same namespace (cheap argon2 parameters, so the seeding is quick), and
// reads etcd's etcd_mvcc_db_total_size_in_use_in_bytes before and after.
// The replica reports its heap (runtime.MemStats after a forced GC) and
// RSS (VmRSS after returning freed memory) before and after.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/authserver/kube"
	"github.com/tenantauth/tenantauth/internal/app"
	"github.com/tenantauth/tenantauth/internal/identity"
	"github.com/tenantauth/tenantauth/internal/installation"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
	"github.com/tenantauth/tenantauth/internal/testenv"
	"github.com/tenantauth/tenantauth/internal/trust"
)

const (
	sysNS    = "tenantauth-system"
	tenantNS = "ceiling"
	password = "correct horse battery"
)

func main() {
	serve := flag.String("serve", "", "run as the measured replica with this kubeconfig (internal)")
	sessions := flag.Int("sessions", 10000, "live sessions to make")
	users := flag.Int("users", 100, "users the sessions belong to")
	refreshes := flag.Int("refreshes", 2, "refreshes of each session after its login")
	conc := flag.Int("concurrency", 8, "logins at once while seeding")
	burst := flag.Int("burst", 200, "after seeding, this many clients log in to the measured replica at once, with the real argon2 parameters (0: none)")
	burstFor := flag.Duration("burst-duration", 10*time.Second, "how long the login burst lasts")
	memLimit := flag.String("gomemlimit", "200MiB", "GOMEMLIMIT of the measured replica (the chart's authserver.goMemLimit); empty for none")
	flag.Parse()
	if *serve != "" {
		if err := replica(*serve); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := measure(*sessions, *users, *refreshes, *conc, *burst, *burstFor, *memLimit); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// burstUsers are the members the login burst signs in as, whose passwords
// are hashed with the real argon2 parameters; the seeded sessions belong
// to the others, hashed cheaply so that seeding is quick.
const burstUsers = 16

func measure(sessions, users, refreshes, conc, burst int, burstFor time.Duration, memLimit string) error {
	ctrl.SetLogger(logr.Discard())
	env, cfg, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	c, err := client.New(cfg, client.Options{Scheme: app.Scheme()})
	if err != nil {
		return err
	}
	ctx := context.Background()
	for _, ns := range []string{sysNS, tenantNS} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	key, err := installation.EnsureKey(ctx, c, c, sysNS)
	if err != nil {
		return err
	}
	orgID, err := writeTenant(ctx, c, users+burstUsers)
	if err != nil {
		return err
	}

	kubeconfig, err := writeKubeconfig(cfg)
	if err != nil {
		return err
	}
	defer os.Remove(kubeconfig)
	child, err := startReplica(kubeconfig, memLimit)
	if err != nil {
		return err
	}
	defer child.stop()

	seeder, hasher, err := newSeeders(ctx, cfg, key)
	if err != nil {
		return err
	}
	for u := range users + burstUsers {
		srv := seeder
		if u >= users {
			srv = hasher
		}
		if err := srv.SetPassword(ctx, identity.UserID(key, email(u)), password); err != nil {
			return fmt.Errorf("seed password: %w", err)
		}
	}
	time.Sleep(3 * time.Second) // the replica's informer takes the credentials in
	etcd0, err := etcdInUse(env.ControlPlane.Etcd.URL.String())
	if err != nil {
		return err
	}
	m0, err := child.measure()
	if err != nil {
		return err
	}

	start := time.Now()
	var made, failed atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range conc {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(sessions) {
					return
				}
				if err := seedSession(seeder, email(int(i)%users), orgID, refreshes); err != nil {
					if failed.Add(1) <= 3 {
						fmt.Fprintln(os.Stderr, "seed:", err)
					}
					continue
				}
				made.Add(1)
			}
		})
	}
	wg.Wait()
	seedTime := time.Since(start)
	n := int(made.Load())
	if err := child.waitFor(n); err != nil {
		return err
	}
	etcd1, err := etcdInUse(env.ControlPlane.Etcd.URL.String())
	if err != nil {
		return err
	}
	m1, err := child.measure()
	if err != nil {
		return err
	}
	per := func(a, b uint64) float64 { return float64(int64(b)-int64(a)) / float64(n) }
	fmt.Printf("storeceiling: %d sessions (%d users, %d refreshes each) in %s, %d failed; %d CPUs\n",
		n, users, refreshes, seedTime.Round(time.Second), failed.Load(), runtime.NumCPU())
	fmt.Printf("%-28s %14s %14s %14s %18s\n", "", "before", "after", "per session", "per 10,000")
	row := func(name string, a, b uint64) {
		fmt.Printf("%-28s %14s %14s %12.0f B %15.1f MiB\n", name, mib(a), mib(b), per(a, b), per(a, b)*10000/(1<<20))
	}
	row("replica heap in use", m0.Heap, m1.Heap)
	row("replica RSS", m0.RSS, m1.RSS)
	row("etcd db in use", etcd0, etcd1)
	fmt.Printf("replica store index: %d records before, %d after\n", m0.Records, m1.Records)
	if burst == 0 {
		return nil
	}
	b, err := loginBurst(child, orgID, users, burst, burstFor)
	if err != nil {
		return err
	}
	m2, err := child.measure()
	if err != nil {
		return err
	}
	gc := (m2.GCCPU - m1.GCCPU) / max(m2.CPU-m1.CPU, 1e-9)
	fmt.Printf("login burst (GOGC %s, GOMEMLIMIT %q, %d hash slots): %d clients for %s: %.1f logins/s, p50 %s, p99 %s, %d busy, %d failed;\n"+
		"  replica peak RSS (VmHWM) %s, GC %.0f %% of its CPU during the burst\n",
		replicaGOGC(), memLimit, hashSlots, burst, burstFor, b.perSecond, b.p50, b.p99, b.busy, b.failed, mib(m2.HWM), 100*gc)
	return nil
}

// replicaGOGC is the GC target the replica runs at: app.TuneGC's, unless
// the environment sets GOGC.
func replicaGOGC() string {
	if v, ok := os.LookupEnv("GOGC"); ok {
		return v
	}
	return "400"
}

// hashSlots is the replica's --password-hash-concurrency, the chart's.
const hashSlots = 2

type burstResult struct {
	perSecond    float64
	p50, p99     time.Duration
	busy, failed int64
}

// loginBurst has n clients log in to the replica as the burst users for
// d, each waiting as Retry-After says when shed, as loadlogin's do.
func loginBurst(child *child, orgID string, users, n int, d time.Duration) (burstResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	var ok, busy, failed, seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				u := users + int(seq.Add(1))%burstUsers
				body, _ := json.Marshal(map[string]string{"email": email(u), "password": password, "organization": orgID})
				t0 := time.Now()
				resp, err := client.Post("http://"+child.addr+"/auth/login", "application/json", strings.NewReader(string(body)))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok.Add(1)
					mu.Lock()
					lat = append(lat, time.Since(t0))
					mu.Unlock()
				case http.StatusServiceUnavailable:
					busy.Add(1)
					wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
					select {
					case <-time.After(time.Duration(max(wait, 1)) * time.Second):
					case <-ctx.Done():
					}
				default:
					if failed.Add(1) <= 3 {
						fmt.Fprintln(os.Stderr, "burst login:", resp.StatusCode)
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(lat) == 0 {
		return burstResult{}, fmt.Errorf("no login of the burst succeeded (%d busy, %d failed)", busy.Load(), failed.Load())
	}
	slices.Sort(lat)
	return burstResult{perSecond: float64(ok.Load()) / elapsed.Seconds(), p50: lat[len(lat)/2].Round(time.Millisecond),
		p99: lat[len(lat)*99/100].Round(time.Millisecond), busy: busy.Load(), failed: failed.Load()}, nil
}

func email(u int) string { return fmt.Sprintf("user%d@ceiling.example", u) }

// writeTenant makes one organization with users members, and the
// operator's records for it.
func writeTenant(ctx context.Context, c client.Client, users int) (string, error) {
	org := &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "acme"}, Spec: tav1.OrganizationSpec{DisplayName: "Acme"}}
	if err := c.Create(ctx, org); err != nil {
		return "", err
	}
	id := "org_ceiling"
	if err := writeOrgRecords(ctx, c, org, id); err != nil {
		return "", err
	}
	for u := range users {
		m := &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "m" + strconv.Itoa(u)},
			Spec: tav1.MembershipSpec{Organization: "acme", Email: email(u), Role: "member"}}
		if err := c.Create(ctx, m); err != nil {
			return "", err
		}
	}
	return id, nil
}

func writeKubeconfig(cfg *rest.Config) (string, error) {
	raw, err := testenv.Kubeconfig(cfg, sysNS)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "storeceiling-kubeconfig-*")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.Write(raw)
	return f.Name(), err
}

// newSeeders are two more auth servers on the same namespace, driven
// in-process with no rate limit: seeder with cheap argon2 parameters, and
// hasher with the real ones, to set the burst users' passwords.
func newSeeders(ctx context.Context, cfg *rest.Config, key []byte) (seeder, hasher *authserver.Server, _ error) {
	req, _ := labels.NewRequirement(tav1.LabelComponent, selection.Exists, nil)
	ca, err := cache.New(cfg, cache.Options{Scheme: app.Scheme(), ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Label: labels.NewSelector().Add(*req), Namespaces: map[string]cache.Config{sysNS: {}}}}})
	if err != nil {
		return nil, nil, err
	}
	go func() { _ = ca.Start(ctx) }()
	direct, err := client.New(cfg, client.Options{Scheme: app.Scheme()})
	if err != nil {
		return nil, nil, err
	}
	dir := directory.NewDirectory()
	go func() {
		_ = (&kube.Source{Dir: dir, Cache: ca, Log: logr.Discard(), SystemNamespace: sysNS}).Start(ctx)
	}()
	st := kube.NewStore(direct, direct, sysNS)
	if err := st.Watch(ctx, ca); err != nil {
		return nil, nil, err
	}
	for !dir.Synced() {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	seeder = authserver.New(authserver.Config{PublicURL: "http://ceiling.test", Secret: key, RateLimitPerMinute: 1 << 30,
		Argon2: account.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}}, dir, st, key)
	hasher = authserver.New(authserver.Config{PublicURL: "http://ceiling.test", Secret: key, RateLimitPerMinute: 1 << 30}, dir, st, key)
	return seeder, hasher, nil
}

func seedSession(srv *authserver.Server, email, orgID string, refreshes int) error {
	body, err := call(srv, "/auth/login", map[string]string{"email": email, "password": password, "organization": orgID})
	if err != nil {
		return err
	}
	for range refreshes {
		if body, err = call(srv, "/auth/refresh", map[string]string{"refresh_token": body["refresh_token"].(string)}); err != nil {
			return err
		}
	}
	return nil
}

func call(srv *authserver.Server, path string, body any) (map[string]any, error) {
	raw, _ := json.Marshal(body)
	r := httptest.NewRequest("POST", path, strings.NewReader(string(raw)))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	if w.Code != http.StatusOK || out["refresh_token"] == nil {
		e, _ := out["error"].(map[string]any)
		return nil, fmt.Errorf("%s: %d %v", path, w.Code, e["code"])
	}
	return out, nil
}

// etcdInUse reads etcd's logical database size from its /metrics.
func etcdInUse(base string) (uint64, error) {
	resp, err := http.Get(strings.TrimRight(base, "/") + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("etcd metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "etcd_mvcc_db_total_size_in_use_in_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return uint64(f), err
		}
	}
	return 0, fmt.Errorf("etcd metrics: no etcd_mvcc_db_total_size_in_use_in_bytes")
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// sample is what the replica reports: its heap and RSS after a forced
// collection, its peak RSS so far, and the CPU seconds it spent in all and
// on garbage collection.
type sample struct {
	Heap, RSS, HWM uint64
	Records        int
	CPU, GCCPU     float64
}

// child is the measured replica: a line on its stdin asks for a sample,
// which it answers as a JSON line.
type child struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string // where it serves
}

// startReplica starts the replica with GOMEMLIMIT memLimit ("": none).
func startReplica(kubeconfig, memLimit string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve", kubeconfig)
	cmd.Stderr = os.Stderr
	cmd.Env = os.Environ()
	if memLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+memLimit)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	addr, ready := "", c.out.Scan()
	if ready {
		addr, ready = strings.CutPrefix(c.out.Text(), "ready ")
	}
	if !ready {
		c.stop()
		return nil, fmt.Errorf("replica did not start: %q", c.out.Text())
	}
	c.addr = addr
	return c, nil
}

func (c *child) measure() (sample, error) {
	var s sample
	if _, err := io.WriteString(c.in, "measure\n"); err != nil {
		return s, err
	}
	if !c.out.Scan() {
		return s, fmt.Errorf("replica gone")
	}
	return s, json.Unmarshal(c.out.Bytes(), &s)
}

// waitFor waits until the replica's index holds at least the sessions
// made (and their families), and holds still.
func (c *child) waitFor(sessions int) error {
	last := -1
	for range 600 {
		s, err := c.measure()
		if err != nil {
			return err
		}
		if s.Records >= 2*sessions && s.Records == last {
			return nil
		}
		last = s.Records
		time.Sleep(time.Second)
	}
	return fmt.Errorf("the replica's index never caught up (%d records)", last)
}

func (c *child) stop() {
	_ = c.in.Close()
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// replica runs `tenantauth authserver` as NewAuthServer wires it, and
// answers samples on stdin.
func replica(kubeconfig string) error {
	app.TuneGC() // as runAuthServer does
	ctrl.SetLogger(logr.Discard())
	// Loaded as runAuthServer loads it: ctrl.GetConfig also turns off
	// client-go's client-side throttling (5 requests a second), which
	// would throttle the burst's writes.
	if err := os.Setenv("KUBECONFIG", kubeconfig); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx := context.Background()
	mgr, srv, err := app.NewAuthServer(ctx, cfg, app.AuthServerOptions{Listener: l, MetricsAddr: "0", Namespace: sysNS,
		StoreBackend: "kubernetes", PublicURL: "http://ceiling.test", PasswordHashConcurrency: hashSlots,
		RateLimitPerMinute: 1 << 30}) // the burst comes from one address
	if err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "replica:", err)
			os.Exit(1)
		}
	}()
	for !srv.Directory().Synced() {
		time.Sleep(100 * time.Millisecond)
	}
	counter, _ := srv.Store().(interface{ Len() int })
	fmt.Println("ready", l.Addr().String())
	sc := bufio.NewScanner(os.Stdin)
	cpu := []metrics.Sample{{Name: "/cpu/classes/total:cpu-seconds"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	for sc.Scan() {
		metrics.Read(cpu) // before the forced collection, which is the tool's
		s := sample{HWM: procStatus("VmHWM"), CPU: cpu[0].Value.Float64(), GCCPU: cpu[1].Value.Float64()}
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.Heap, s.RSS = ms.HeapInuse, procStatus("VmRSS")
		if counter != nil {
			s.Records = counter.Len()
		}
		raw, _ := json.Marshal(s)
		fmt.Println(string(raw))
	}
	return nil
}

// procStatus reads a size field of /proc/self/status, such as VmRSS.
func procStatus(field string) uint64 {
	raw, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// writeOrgRecords writes what the operator writes for org in the system
// namespace: its record (ID and a fresh ES256 key) and its slug claim.
func writeOrgRecords(ctx context.Context, c client.Client, org *tav1.Organization, id string) error {
	set := &signingkeys.Set{}
	if _, _, err := set.Rotate(signingkeys.Policy{Algorithm: "ES256", RotationInterval: time.Hour, AccessTokenTTL: 15 * time.Minute},
		time.Now().Add(-time.Minute)); err != nil {
		return err
	}
	data, err := set.Marshal()
	if err != nil {
		return err
	}
	rec := trust.New(sysNS, trust.SigningKeysName(id), trust.ComponentSigningKeys, trust.OwnerOf(org))
	rec.Annotations[trust.AnnotationOrganizationID] = id
	rec.Data = map[string][]byte{signingkeys.DataKey: data}
	if err := c.Create(ctx, rec); err != nil {
		return err
	}
	claim := trust.New(sysNS, trust.SlugClaimName(org.EffectiveSlug()), trust.ComponentSlugClaim, trust.OwnerOf(org))
	claim.Annotations[trust.AnnotationSlug] = org.EffectiveSlug()
	return c.Create(ctx, claim)
}
