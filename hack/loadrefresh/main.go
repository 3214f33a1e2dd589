// Command loadrefresh measures refresh rotation and /verify on real
// listeners, on the postgres store (Debian's PostgreSQL, started here with
// fsync on) beside the kubernetes store (envtest's kube-apiserver and
// etcd), in one run on one machine:
//
//	export KUBEBUILDER_ASSETS=$PWD/bin/k8s/<version>
//	go run ./hack/loadrefresh -duration 10s -workers 16,64
//	go run ./hack/loadrefresh -stores postgres -scale 1000000 -gc 1000000
//	go run ./hack/loadrefresh -stores postgres,postgres-alone,kubernetes
//
// postgres-alone is the postgres store with every swap a statement of its
// own (postgres.Config.Batchers -1), the build before batched swaps.
//
// Each worker logs in once and then refreshes its own session as fast as
// it can (parallel sessions of one user), so a refresh is one
// compare-and-swap of a session record plus the family check. -scale seeds
// that many live sessions (COPY into the records table) and compares
// refresh and /verify latency against a run at 1,000, with the process's
// RSS at both; -gc seeds that many expired sessions and times their
// collection and the table's size.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver/kube"
	"github.com/tenantauth/tenantauth/authserver/postgres"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/internal/app"
	"github.com/tenantauth/tenantauth/internal/authcluster"
	"github.com/tenantauth/tenantauth/internal/pgtest"
	"github.com/tenantauth/tenantauth/internal/testenv"
)

const password = "correct horse battery"

// durable is -durable; etcdFsync is -etcd-fsync; besideBare is -verify;
// batchers is -batchers; warmup is -warmup.
var (
	durable, etcdFsync, besideBare bool
	batchers                       int
	warmup                         time.Duration
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "how long each measurement runs")
	workers := flag.String("workers", "16,64", "comma-separated worker counts")
	stores := flag.String("stores", "postgres,kubernetes", "stores to measure")
	scale := flag.Int("scale", 0, "with postgres: seed this many live sessions and compare with 1,000")
	gc := flag.Int("gc", 0, "with postgres: seed this many expired sessions and time their collection")
	flag.BoolVar(&durable, "durable", true, "run PostgreSQL with fsync and synchronous commit on")
	// envtest starts etcd with --unsafe-no-fsync; production etcd syncs
	// every commit, as durable PostgreSQL does.
	flag.BoolVar(&etcdFsync, "etcd-fsync", false, "run the kubernetes store's etcd with fsync (envtest's default is --unsafe-no-fsync)")
	flag.BoolVar(&besideBare, "verify", true, "with postgres and kubernetes: also load /verify beside a bare handler (off: profile refresh alone)")
	flag.DurationVar(&warmup, "warmup", 2*time.Second, "refresh load before each refresh measurement, not counted but for its errors (a fresh database is still settling)")
	flag.IntVar(&batchers, "batchers", 0, "with postgres: postgres.Config.Batchers (0: the store's default)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (auth server and load generator) to the file")
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	app.TuneGC() // the auth server's, as it runs in production and make dev
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
	if err := run(*duration, *workers, *stores, *scale, *gc); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(d time.Duration, workerList, storeList string, scale, gc int) error {
	ctx := context.Background()
	var ws []int
	for _, w := range strings.Split(workerList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil {
			return fmt.Errorf("-workers: %w", err)
		}
		ws = append(ws, n)
	}
	gogc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gogc)
	fmt.Printf("# loadrefresh: %s per measurement after %s of warm-up, cores: %d, GOGC %d, postgres durable: %v, etcd fsync: %v\n", d, warmup, numCPU(), gogc, durable, etcdFsync)
	for _, name := range strings.Split(storeList, ",") {
		st, closeFn, err := openStore(ctx, name)
		if err != nil {
			return fmt.Errorf("%s store: %w", name, err)
		}
		c, err := authcluster.New([]store.Store{st}, authcluster.Options{})
		if err != nil {
			return err
		}
		if err := c.AddMember(ctx, "alice@acme.com", "owner", password); err != nil {
			return err
		}
		base := c.Replicas[0].URL
		for _, w := range ws {
			res, err := refreshLoad(ctx, base, w, d)
			if err != nil {
				return err
			}
			fmt.Printf("%-14s refresh  workers=%-3d %8.0f/s  p50 %6.2f ms  p99 %6.2f ms  errors %d\n", name, w, res.rate, ms(res.p50), ms(res.p99), res.errors)
		}
		if (name == "postgres" || name == "kubernetes") && besideBare {
			s, _, err := authcluster.Login(ctx, base, "alice@acme.com", password)
			if err != nil || s == nil {
				return fmt.Errorf("login: %v", err)
			}
			if err := verifyBesideBare(name, base, s.AccessToken, d, 64); err != nil {
				return err
			}
		}
		if ps, ok := st.(*postgres.Store); ok && (scale > 0 || gc > 0) {
			if err := scaleRuns(ctx, ps, base, d, scale, gc); err != nil {
				return err
			}
		}
		c.Close()
		closeFn()
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func numCPU() int {
	n, _ := strconv.Atoi(os.Getenv("GOMAXPROCS"))
	if n == 0 {
		b, _ := os.ReadFile("/proc/cpuinfo")
		n = strings.Count(string(b), "processor\t:")
	}
	return n
}

// openStore starts the backing service and the store.
func openStore(ctx context.Context, name string) (store.Store, func(), error) {
	switch name {
	case "postgres", "postgres-alone":
		pg, err := pgtest.Start(pgtest.Options{Durable: durable})
		if err != nil {
			return nil, nil, err
		}
		dsn, err := pg.CreateDB(ctx)
		if err != nil {
			return nil, nil, err
		}
		cfg := postgres.Config{DSN: dsn, Log: logr.Discard(), Batchers: batchers}
		if name == "postgres-alone" {
			cfg.Batchers = -1
		}
		st, err := postgres.Open(cfg)
		if err != nil {
			return nil, nil, err
		}
		rctx, cancel := context.WithCancel(ctx)
		go func() { _ = st.Run(rctx) }()
		for st.Ready() != nil {
			time.Sleep(20 * time.Millisecond)
		}
		return st, func() { cancel(); st.Close(); _ = pg.Close() }, nil
	case "kubernetes":
		env, err := testenv.New()
		if err != nil {
			return nil, nil, err
		}
		env.ControlPlane.Etcd = &envtest.Etcd{}
		env.ControlPlane.Etcd.Configure().Set("unsafe-no-fsync", strconv.FormatBool(!etcdFsync))
		cfg, err := env.Start()
		if err != nil {
			return nil, nil, fmt.Errorf("start envtest: %w", err)
		}
		scheme := app.Scheme()
		direct, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return nil, nil, err
		}
		ns := "loadrefresh"
		if err := direct.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, nil, err
		}
		req, _ := labels.NewRequirement(tav1.LabelComponent, selection.Exists, nil)
		c, err := cache.New(cfg, cache.Options{Scheme: scheme, ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.NewSelector().Add(*req)},
		}})
		if err != nil {
			return nil, nil, err
		}
		cctx, cancel := context.WithCancel(ctx)
		go func() { _ = c.Start(cctx) }()
		st := kube.NewStore(direct, direct, ns)
		if err := st.Watch(cctx, c); err != nil {
			cancel()
			return nil, nil, err
		}
		return st, func() { cancel(); _ = env.Stop() }, nil
	}
	return nil, nil, fmt.Errorf("unknown store %q", name)
}

type result struct {
	rate     float64
	p50, p99 time.Duration
	errors   int
}

func summarize(lat []time.Duration, errs int, elapsed time.Duration) result {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := result{errors: errs, rate: float64(len(lat)) / elapsed.Seconds()}
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

// refreshLoad logs in w sessions of one user and refreshes each in its own
// worker for warmup and then d, measured.
func refreshLoad(ctx context.Context, base string, w int, d time.Duration) (result, error) {
	tokens := make([]string, w)
	for i := range tokens {
		s, r, err := authcluster.Login(ctx, base, "alice@acme.com", password)
		if err != nil || s == nil {
			return result{}, fmt.Errorf("login: %v %d %s", err, r.Status, r.Body)
		}
		tokens[i] = s.RefreshToken
	}
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	start := time.Now().Add(warmup)
	end := start.Add(d)
	for i := range w {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for time.Now().Before(end) {
				t0 := time.Now()
				s, _, err := authcluster.Refresh(ctx, base, tokens[i])
				if err != nil || s == nil {
					bad++
					continue
				}
				if t0.After(start) {
					mine = append(mine, time.Since(t0))
				}
				tokens[i] = s.RefreshToken
			}
			mu.Lock()
			lat, errs = append(lat, mine...), errs+bad
			mu.Unlock()
		})
	}
	wg.Wait()
	return summarize(lat, errs, time.Since(start)), nil
}

// verifyLoad sends /verify with w workers for d.
func verifyLoad(ctx context.Context, base, jwt string, w int, d time.Duration) result {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for range w {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for time.Now().Before(end) {
				t0 := time.Now()
				r, err := authcluster.Verify(ctx, base, jwt)
				if err != nil || r.Status != 200 {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat, errs = append(lat, mine...), errs+bad
			mu.Unlock()
		})
	}
	wg.Wait()
	return summarize(lat, errs, time.Since(start))
}

func rssMiB() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

// scaleRuns compares refresh and /verify at 1,000 and at scale live
// sessions, and times the collection of gc expired ones.
func scaleRuns(ctx context.Context, st *postgres.Store, base string, d time.Duration, scale, gc int) error {
	if scale > 0 {
		seeded := 0
		for _, n := range []int{1000, scale} {
			t0 := time.Now()
			if err := seed(ctx, st, n-seeded, time.Now().Add(24*time.Hour), "live"); err != nil {
				return err
			}
			fmt.Printf("postgres   seeded %d live sessions (now %d) in %v\n", n-seeded, n, time.Since(t0).Round(time.Millisecond))
			seeded = n
			// Let the database settle (vacuum, analyze, flush the dirty
			// pages of the seed) so its background work does not compete
			// with the measurement on the same cores.
			for _, q := range []string{"VACUUM ANALYZE tenantauth_records", "CHECKPOINT"} {
				if _, err := st.Pool().Exec(ctx, q); err != nil {
					return err
				}
			}
			rr, err := refreshLoad(ctx, base, 16, d)
			if err != nil {
				return err
			}
			s, _, err := authcluster.Login(ctx, base, "alice@acme.com", password)
			if err != nil || s == nil {
				return fmt.Errorf("login: %v", err)
			}
			vr := verifyLoad(ctx, base, s.AccessToken, 16, d)
			fmt.Printf("postgres   sessions=%-8d refresh %6.0f/s p99 %6.2f ms | verify %6.0f/s p99 %6.2f ms | errors %d | RSS %.0f MiB | table %s\n",
				n, rr.rate, ms(rr.p99), vr.rate, ms(vr.p99), rr.errors+vr.errors, rssMiB(), tableSize(ctx, st))
		}
	}
	if gc > 0 {
		if _, err := st.Pool().Exec(ctx, "DELETE FROM tenantauth_records WHERE data = $1", []byte(seedData("live"))); err != nil {
			return err
		}
		if _, err := st.Pool().Exec(ctx, "VACUUM tenantauth_records"); err != nil {
			return err
		}
		t0 := time.Now()
		if err := seed(ctx, st, gc, time.Now().Add(-time.Minute), "expired"); err != nil {
			return err
		}
		fmt.Printf("postgres   seeded %d expired sessions in %v; table %s\n", gc, time.Since(t0).Round(time.Millisecond), tableSize(ctx, st))
		t0 = time.Now()
		n, err := st.DeleteExpired(ctx, time.Now())
		if err != nil {
			return err
		}
		took := time.Since(t0)
		fmt.Printf("postgres   GC deleted %d expired rows in %v (%.0f rows/s, %d-row statements); table after GC %s\n",
			n, took.Round(time.Millisecond), float64(n)/took.Seconds(), 1000, tableSize(ctx, st))
		if _, err := st.Pool().Exec(ctx, "VACUUM tenantauth_records"); err != nil {
			return err
		}
		fmt.Printf("postgres   after VACUUM: table %s (space reusable; VACUUM FULL would return it)\n", tableSize(ctx, st))
	}
	return nil
}

func tableSize(ctx context.Context, st *postgres.Store) string {
	var s string
	_ = st.Pool().QueryRow(ctx, "SELECT pg_size_pretty(pg_total_relation_size('tenantauth_records'))").Scan(&s)
	return s
}
