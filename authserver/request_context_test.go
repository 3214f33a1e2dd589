package authserver

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

func TestRequestContextActsAsWithDeadline(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	tests := []struct {
		name     string
		deadline time.Duration // from now
		end      bool          // end the request before using the context
		wantErr  error
	}{
		{"live until its deadline", time.Hour, false, nil},
		{"a deadline already past ends it at once", -time.Second, false, context.DeadlineExceeded},
		{"ended before use", time.Hour, true, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c requestContext
			deadline := time.Now().Add(tt.deadline)
			c.init(parent, deadline)
			if d, ok := c.Deadline(); !ok || !d.Equal(deadline) {
				t.Errorf("Deadline = %v, %v; want %v", d, ok, deadline)
			}
			if tt.end {
				c.end()
			}
			if err := c.Err(); !errors.Is(err, tt.wantErr) {
				t.Errorf("Err = %v, want %v", err, tt.wantErr)
			}
			select {
			case <-c.Done():
				if tt.wantErr == nil {
					t.Error("Done is closed on a live context")
				}
			default:
				if tt.wantErr != nil {
					t.Error("Done is open on an ended context")
				}
			}
			if v := c.Value(ctxKey{}); v != "v" {
				t.Errorf("Value = %v, want the parent's", v)
			}
			c.end()
			if !errors.Is(c.Err(), tt.wantErr) && !errors.Is(c.Err(), context.Canceled) {
				t.Errorf("after end: Err = %v", c.Err())
			}
			<-c.Done()
		})
	}
}

func TestRequestContextEndsAtItsDeadlineWhenUsedLate(t *testing.T) {
	var c requestContext
	deadline := time.Now().Add(50 * time.Millisecond)
	c.init(context.Background(), deadline)
	defer c.end()
	time.Sleep(20 * time.Millisecond) // the store is first asked after this
	select {
	case <-c.Done():
		if time.Now().Before(deadline) {
			t.Fatal("done before the deadline")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v", c.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not done by the deadline")
	}
}

func TestRequestContextKeepsAnEarlierParentDeadline(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var c requestContext
	c.init(parent, time.Now().Add(time.Hour))
	defer c.end()
	want, _ := parent.Deadline()
	if d, _ := c.Deadline(); !d.Equal(want) {
		t.Fatalf("Deadline = %v, want the parent's %v", d, want)
	}
	cancel()
	<-c.Done()
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err = %v after the parent was cancelled", c.Err())
	}
}
