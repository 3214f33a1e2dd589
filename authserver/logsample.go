package authserver

import (
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
)

// Log lines the server writes because of a client's request (a failed
// store call, a refused signup, net/http's complaints about malformed
// requests) are rate-limited, so a client cannot grow the log by
// megabytes in seconds. Each message has its own bucket, so a flood of one
// kind never hides another; lines dropped are counted and the count rides
// on the next line of that message as "suppressed".

// Limits of each message's bucket.
const (
	logLinesPerSecond = 5
	logBurst          = 20
	// maxLogMessages bounds the buckets kept; messages are constants of
	// the code, so this is never reached in practice.
	maxLogMessages = 1024
)

// logSampler is the state shared by a logger and every logger derived
// from it with WithName or WithValues.
type logSampler struct {
	mu      sync.Mutex
	buckets map[string]*logBucket
	now     func() time.Time
}

type logBucket struct {
	lim        *rate.Limiter
	suppressed int
}

// allow reports whether a line of key may be written now, and how many
// were dropped before it.
func (s *logSampler) allow(key string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[key]
	if !ok {
		if len(s.buckets) >= maxLogMessages {
			clear(s.buckets)
		}
		b = &logBucket{lim: rate.NewLimiter(logLinesPerSecond, logBurst)}
		s.buckets[key] = b
	}
	if !b.lim.AllowN(s.now(), 1) {
		b.suppressed++
		return 0, false
	}
	n := b.suppressed
	b.suppressed = 0
	return n, true
}

// sampledSink is a logr.LogSink that drops lines past their message's
// rate.
type sampledSink struct {
	sink    logr.LogSink
	name    string
	sampler *logSampler
}

// SampledLogger wraps l so that each message is written at most
// logLinesPerSecond times a second (after a burst of logBurst). The server
// wraps its own logger; wrap the logger of anything else that logs per
// request, such as the mail queue.
func SampledLogger(l logr.Logger) logr.Logger { return sampledLogger(l, time.Now) }

func sampledLogger(l logr.Logger, now func() time.Time) logr.Logger {
	sink := l.GetSink()
	if sink == nil {
		return l
	}
	return logr.New(&sampledSink{sink: sink, sampler: &logSampler{buckets: map[string]*logBucket{}, now: now}}).V(0)
}

func (s *sampledSink) Init(info logr.RuntimeInfo) {
	info.CallDepth++
	s.sink.Init(info)
}

func (s *sampledSink) Enabled(level int) bool { return s.sink.Enabled(level) }

func (s *sampledSink) Info(level int, msg string, kv ...any) {
	n, ok := s.sampler.allow(s.name + "\x00" + msg)
	if !ok {
		return
	}
	if n > 0 {
		kv = append(kv, "suppressed", n)
	}
	s.sink.Info(level, msg, kv...)
}

func (s *sampledSink) Error(err error, msg string, kv ...any) {
	n, ok := s.sampler.allow(s.name + "\x00" + msg)
	if !ok {
		return
	}
	if n > 0 {
		kv = append(kv, "suppressed", n)
	}
	s.sink.Error(err, msg, kv...)
}

func (s *sampledSink) WithValues(kv ...any) logr.LogSink {
	return &sampledSink{sink: s.sink.WithValues(kv...), name: s.name, sampler: s.sampler}
}

func (s *sampledSink) WithName(name string) logr.LogSink {
	return &sampledSink{sink: s.sink.WithName(name), name: s.name + "/" + name, sampler: s.sampler}
}
