package authserver

import (
	"context"
	"sync"
	"time"
)

// requestContext is context.WithDeadline(parent, deadline) made on first
// use. Every request is bounded by RequestTimeout, but most never wait on
// anything: /verify reads the store's in-memory index and the directory,
// and never looks at its context. Making the deadline context up front
// costs a timer, a cancel registration on the parent and a channel on
// every request; this one makes them only when a store call actually
// waits (Done, Err or Value). The deadline is fixed when the request
// starts, so a context made late still ends at the same instant, and a
// deadline already past ends it at once, as WithDeadline does.
type requestContext struct {
	parent   context.Context
	deadline time.Time

	once sync.Once
	ctx  context.Context // the deadline context, or &ended after end
	stop context.CancelFunc
	// ended stands in for the context when the request ends before
	// anything used it: cancelled, with the parent's values.
	ended endedContext
}

func (c *requestContext) init(parent context.Context, deadline time.Time) {
	c.parent, c.deadline, c.ended.rc = parent, deadline, c
}

func (c *requestContext) get() context.Context {
	c.once.Do(func() { c.ctx, c.stop = context.WithDeadline(c.parent, c.deadline) })
	return c.ctx
}

// end is the CancelFunc of the request's context: from here on the
// context is done, whether or not it was made.
func (c *requestContext) end() {
	c.once.Do(func() { c.ctx = &c.ended })
	if c.stop != nil {
		c.stop()
	}
}

// Deadline is the earlier of the parent's deadline and the request's, as
// WithDeadline reports it, without making the context.
func (c *requestContext) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *requestContext) Done() <-chan struct{} { return c.get().Done() }
func (c *requestContext) Err() error            { return c.get().Err() }
func (c *requestContext) Value(key any) any     { return c.get().Value(key) }

// endedContext is a request context cancelled before it was used.
type endedContext struct{ rc *requestContext }

// closedDone is the Done channel of every endedContext.
var closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *endedContext) Deadline() (time.Time, bool) { return c.rc.Deadline() }
func (c *endedContext) Done() <-chan struct{}       { return closedDone }
func (c *endedContext) Err() error                  { return context.Canceled }
func (c *endedContext) Value(key any) any           { return c.rc.parent.Value(key) }
