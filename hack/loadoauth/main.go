// Command loadoauth measures the OAuth 2.0 refresh_token grant under
// load, against any token endpoint (Dex's, for the side-by-side in
// docs/bench-dex.md):
//
//	go run ./hack/loadoauth -token-url http://127.0.0.1:5556/dex/token \
//	    -client-id bench -client-secret bench-secret \
//	    -username admin@example.com -password password -workers 16,64
//
// Each worker first signs in with the password grant, so it holds its own
// token chain (its own session: parallel sessions of one user), then
// refreshes in a loop, always with the newest refresh token, for the run's
// duration. It prints refreshes per second, p50 and p99 latency, and the
// errors (any answer but 200 with a new refresh token; a worker whose
// chain broke signs in again and carries on).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

type config struct {
	tokenURL, clientID, clientSecret, username, password, scope string
	clients, users                                              int
}

// forWorker is the configuration worker i uses.
func (c config) forWorker(i int) config {
	if c.clients > 0 {
		c.clientID = fmt.Sprintf("%s-%d", c.clientID, i%c.clients)
	}
	if c.users > 0 {
		c.username = fmt.Sprintf(c.username, i%c.users)
	}
	return c
}

type tokenResponse struct {
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

func main() {
	var c config
	flag.StringVar(&c.tokenURL, "token-url", "http://127.0.0.1:5556/dex/token", "the token endpoint")
	flag.StringVar(&c.clientID, "client-id", "bench", "OAuth client ID; with -clients N, worker i uses <client-id>-<i mod N>")
	flag.IntVar(&c.clients, "clients", 0, "number of clients to spread workers over (0: every worker uses -client-id)")
	flag.StringVar(&c.clientSecret, "client-secret", "bench-secret", "OAuth client secret")
	flag.StringVar(&c.username, "username", "admin@example.com", "password-grant user; with -users N, a format whose %d is i mod N")
	flag.IntVar(&c.users, "users", 0, "number of users to spread workers over (0: every worker signs in as -username)")
	flag.StringVar(&c.password, "password", "password", "password-grant password")
	flag.StringVar(&c.scope, "scope", "openid email offline_access", "scopes of the password grant")
	workers := flag.String("workers", "16,64", "comma-separated worker counts, one run each")
	duration := flag.Duration("duration", 15*time.Second, "how long each run refreshes")
	warmup := flag.Duration("warmup", 2*time.Second, "refreshing before measurement starts, per run")
	flag.Parse()

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	fmt.Printf("%-8s %10s %10s %10s %10s %8s\n", "workers", "refresh/s", "p50", "p99", "refreshes", "errors")
	for _, w := range strings.Split(*workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "bad worker count", w)
			os.Exit(2)
		}
		r, err := run(client, c, n, *warmup, *duration)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%-8d %10.0f %10s %10s %10d %8d\n", n, float64(len(r.lat))/duration.Seconds(),
			pct(r.lat, 50), pct(r.lat, 99), len(r.lat), r.errors)
		for k, v := range r.kinds {
			fmt.Printf("         error %q x%d\n", k, v)
		}
	}
}

type result struct {
	lat    []time.Duration
	errors int
	kinds  map[string]int
}

func run(client *http.Client, c config, workers int, warmup, duration time.Duration) (*result, error) {
	// Sign every worker in first, so the password hashing is not measured.
	chains := make([]string, workers)
	for i := range chains {
		rt, err := signIn(client, c.forWorker(i))
		if err != nil {
			return nil, fmt.Errorf("password grant: %w", err)
		}
		chains[i] = rt
	}
	ctx, cancel := context.WithTimeout(context.Background(), warmup+duration)
	defer cancel()
	start := time.Now().Add(warmup)
	var mu sync.Mutex
	res := &result{kinds: map[string]int{}}
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			c := c.forWorker(i)
			rt := chains[i]
			var lat []time.Duration
			errs := 0
			kinds := map[string]int{}
			for ctx.Err() == nil {
				t0 := time.Now()
				next, err := refresh(ctx, client, c, rt)
				d := time.Since(t0)
				if ctx.Err() != nil {
					break
				}
				measured := t0.After(start)
				if err != nil {
					if measured {
						errs++
						kinds[err.Error()]++
					}
					if rt, err = signIn(client, c); err != nil {
						return
					}
					continue
				}
				rt = next
				if measured {
					lat = append(lat, d)
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += errs
			for k, v := range kinds {
				res.kinds[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(res.lat)
	return res, nil
}

func signIn(client *http.Client, c config) (string, error) {
	return grant(context.Background(), client, c, url.Values{"grant_type": {"password"}, "username": {c.username},
		"password": {c.password}, "scope": {c.scope}})
}

func refresh(ctx context.Context, client *http.Client, c config, rt string) (string, error) {
	return grant(ctx, client, c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

func grant(ctx context.Context, client *http.Client, c config, form url.Values) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.clientID), url.QueryEscape(c.clientSecret))
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tr tokenResponse
	_ = json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK || tr.RefreshToken == "" {
		// The body names the OAuth error only; it holds no token here.
		return "", fmt.Errorf("%s: %d %s", form.Get("grant_type"), resp.StatusCode, tr.Error)
	}
	return tr.RefreshToken, nil
}

func pct(sorted []time.Duration, p int) string {
	if len(sorted) == 0 {
		return "-"
	}
	d := sorted[min(len(sorted)-1, len(sorted)*p/100)]
	return d.Round(10 * time.Microsecond).String()
}
