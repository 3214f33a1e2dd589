package kube

import (
	"sort"
	"sync"
	"testing"
	"time"
)

// BenchmarkRefreshKubernetes measures refresh rotation on the Kubernetes
// store against envtest's kube-apiserver: 16 clients, each rotating its own
// session, as many logged-in users would. It reports refreshes per second
// and the p99 latency.
func BenchmarkRefreshKubernetes(b *testing.B) {
	tn := newTenant(b)
	const clients = 16
	tokens := make([]string, clients)
	for i := range tokens {
		tokens[i] = tn.login(b)["refresh_token"].(string)
	}
	var mu sync.Mutex
	var lat []time.Duration
	next := make(chan struct{}, b.N)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			for range next {
				t0 := time.Now()
				code, body := tn.post(b, "/auth/refresh", map[string]string{"refresh_token": tokens[i]})
				d := time.Since(t0)
				if code != 200 {
					b.Errorf("refresh: %d %v", code, body)
					return
				}
				tokens[i] = body["refresh_token"].(string)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "refresh/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}
