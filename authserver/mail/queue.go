package mail

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// Errors of Queue.Send.
var (
	// ErrQueueFull means the queue already holds its maximum of undelivered
	// messages; the message was not accepted.
	ErrQueueFull = errors.New("mail queue is full")
	// ErrClosed means the queue was closed.
	ErrClosed = errors.New("mail queue is closed")
)

// QueueOptions tune a Queue. Zero values take the defaults.
type QueueOptions struct {
	// Size is how many messages may wait for delivery at once (10000),
	// in all lanes; each lane holds at most LaneSize of them (half of Size,
	// or all of a queue of up to 16), so a flood of one kind of mail leaves
	// room for the others.
	Size     int
	LaneSize int
	// Concurrency is how many deliveries run at once (4), so a burst does
	// not open hundreds of connections to the mail server.
	Concurrency int
	// MaxAttempts is how often a message is tried before it is given up
	// (10).
	MaxAttempts int
	// BaseDelay is the wait before the first retry (2s); each retry waits
	// twice as long as the one before, up to MaxDelay (2m), with jitter.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// SendTimeout bounds one delivery attempt (30s).
	SendTimeout time.Duration
	// Log receives delivery failures, without message bodies.
	Log logr.Logger
	// Now is the clock; tests replace it.
	Now func() time.Time
}

func (o *QueueOptions) defaults() {
	if o.Size <= 0 {
		o.Size = 10000
	}
	if o.LaneSize <= 0 {
		o.LaneSize = max(o.Size/2, min(o.Size, 16))
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 2 * time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 2 * time.Minute
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 30 * time.Second
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Queue delivers messages in the background through another Mailer. Send
// only accepts a message, so a slow or unreachable mail server never slows
// the caller. Messages wait in lanes (Message.Lane), which workers serve in
// turn, so a burst of one kind (signup mails) delays another (a sign-in
// link) by at most one delivery per lane; failed deliveries are retried with exponential backoff until
// they succeed, fail permanently, run out of attempts or pass the
// message's Expires. Up to Concurrency workers deliver; a message waiting
// for its retry holds a timer, not a goroutine.
type Queue struct {
	backend Mailer
	opts    QueueOptions
	ctx     context.Context
	cancel  context.CancelFunc

	mu      sync.Mutex
	ready   [][]*entry             // per lane, waiting for a worker, oldest first
	inLane  []int                  // per lane, accepted and not finished
	next    int                    // the lane served next
	waiting map[*entry]*time.Timer // waiting for their retry
	workers int
	pending int           // accepted and not yet delivered or given up
	idle    chan struct{} // closed when pending drops to zero
	closed  bool
	stats   QueueStats
}

// entry is one accepted message.
type entry struct {
	msg      Message
	lane     int
	attempts int
}

// QueueStats count what happened to accepted messages.
type QueueStats struct {
	Accepted, Delivered, Retried, Failed, Rejected int
}

var _ Mailer = (*Queue)(nil)

// NewQueue returns a queue delivering through backend.
func NewQueue(backend Mailer, opts QueueOptions) *Queue {
	opts.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	close(idle)
	return &Queue{backend: backend, opts: opts, ctx: ctx, cancel: cancel, idle: idle, waiting: map[*entry]*time.Timer{},
		ready: make([][]*entry, len(lanes)), inLane: make([]int, len(lanes))}
}

// Send accepts m for delivery and returns at once. It fails only when the
// queue or m's lane is full, or the queue is closed; delivery errors are logged, never returned.
func (q *Queue) Send(_ context.Context, m Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	lane := laneIndex(m.Lane)
	if q.pending >= q.opts.Size || q.inLane[lane] >= q.opts.LaneSize {
		q.stats.Rejected++
		return ErrQueueFull
	}
	if q.pending == 0 {
		q.idle = make(chan struct{})
	}
	q.pending++
	q.inLane[lane]++
	q.stats.Accepted++
	q.ready[lane] = append(q.ready[lane], &entry{msg: m, lane: lane})
	q.spawnLocked()
	return nil
}

// spawnLocked starts a worker when fewer than Concurrency run.
func (q *Queue) spawnLocked() {
	if q.workers < q.opts.Concurrency {
		q.workers++
		go q.work()
	}
}

// work delivers ready messages until there are none.
func (q *Queue) work() {
	for {
		q.mu.Lock()
		e := q.nextLocked()
		if e == nil {
			q.workers--
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		q.attempt(e)
	}
}

// nextLocked takes the oldest ready message of the next lane that has
// one, round robin, or nil.
func (q *Queue) nextLocked() *entry {
	for range lanes {
		l := q.next
		q.next = (q.next + 1) % len(lanes)
		if r := q.ready[l]; len(r) > 0 {
			e := r[0]
			r[0] = nil
			q.ready[l] = r[1:]
			return e
		}
	}
	return nil
}

// Stats returns the counts so far.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stats
}

// Flush waits until every accepted message is delivered or given up, or
// ctx ends.
func (q *Queue) Flush(ctx context.Context) error {
	q.mu.Lock()
	idle := q.idle
	q.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting messages and waits, until ctx ends, for the ones
// accepted to be delivered; then it abandons the rest (they are logged).
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	err := q.Flush(ctx)
	q.cancel()
	if err == nil {
		return nil
	}
	q.mu.Lock()
	for e, t := range q.waiting {
		t.Stop()
		delete(q.waiting, e)
		q.giveUpLocked(e, q.ctx.Err(), "mail not delivered: the queue closed")
	}
	q.mu.Unlock()
	// Messages in flight see the cancelled context and end soon.
	wait, done := context.WithTimeout(context.Background(), q.opts.SendTimeout)
	defer done()
	_ = q.Flush(wait)
	return err
}

// finishLocked ends an accepted message's stay.
func (q *Queue) finishLocked(e *entry) {
	q.pending--
	q.inLane[e.lane]--
	if q.pending == 0 {
		close(q.idle)
	}
}

func (q *Queue) giveUpLocked(e *entry, err error, msg string) {
	q.log(e).Error(redact(err, e.msg.To), msg, "attempts", e.attempts, "permanent", IsPermanent(err))
	q.stats.Failed++
	q.finishLocked(e)
}

func (q *Queue) log(e *entry) logr.Logger {
	return q.opts.Log.WithValues("to", MaskAddress(e.msg.To), "subject", e.msg.Subject)
}

// attempt makes one delivery of e and decides what follows.
func (q *Queue) attempt(e *entry) {
	if !e.msg.Expires.IsZero() && !q.opts.Now().Before(e.msg.Expires) {
		q.log(e).Info("mail given up: its link expired before it could be delivered", "attempts", e.attempts)
		q.mu.Lock()
		q.stats.Failed++
		q.finishLocked(e)
		q.mu.Unlock()
		return
	}
	e.attempts++
	ctx, cancel := context.WithTimeout(q.ctx, q.opts.SendTimeout)
	err := q.backend.Send(ctx, e.msg)
	cancel()
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case err == nil:
		q.stats.Delivered++
		q.finishLocked(e)
	case IsPermanent(err) || e.attempts >= q.opts.MaxAttempts || q.ctx.Err() != nil:
		q.giveUpLocked(e, err, "mail not delivered")
	default:
		wait := q.backoff(e.attempts)
		q.log(e).Info("mail delivery failed; will retry", "attempt", e.attempts, "retryIn", wait.String(), "error", redact(err, e.msg.To).Error())
		q.stats.Retried++
		q.waiting[e] = time.AfterFunc(wait, func() { q.retry(e) })
	}
}

// retry puts a message whose wait is over back in line.
func (q *Queue) retry(e *entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.waiting[e]; !ok {
		return // abandoned by Close
	}
	delete(q.waiting, e)
	q.ready[e.lane] = append(q.ready[e.lane], e)
	q.spawnLocked()
}

// backoff is BaseDelay·2^(attempt-1), capped at MaxDelay, ±20% jitter so
// retries after an outage do not arrive together.
func (q *Queue) backoff(attempt int) time.Duration {
	d := q.opts.BaseDelay
	for i := 1; i < attempt && d < q.opts.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, q.opts.MaxDelay)
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// redact masks the recipient in a delivery error (SMTP errors list the
// affected recipients).
func redact(err error, to string) error {
	if to == "" {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), to, MaskAddress(to)))
}
