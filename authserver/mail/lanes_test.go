package mail_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tenantauth/tenantauth/authserver/mail"
)

// TestQueueLanes fills the signup lane: it refuses more signup mail, takes
// a sign-in link all the same, and delivers the link before the backlog.
func TestQueueLanes(t *testing.T) {
	b := &blocking{release: make(chan struct{})}
	q := mail.NewQueue(b, mail.QueueOptions{Size: 100, LaneSize: 5, Concurrency: 1})
	verify := func(i int) mail.Message {
		m := testMessage(fmt.Sprintf("flood%d@acme.test", i))
		m.Lane = mail.LaneVerify
		return m
	}
	for i := range 5 {
		if err := q.Send(context.Background(), verify(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Send(context.Background(), verify(5)); !errors.Is(err, mail.ErrQueueFull) {
		t.Fatalf("sixth signup mail: %v", err)
	}
	link := testMessage("alice@acme.test")
	link.Lane = mail.LaneMagicLink
	if err := q.Send(context.Background(), link); err != nil {
		t.Fatalf("sign-in link with the signup lane full: %v", err)
	}
	close(b.release)
	flush(t, q)
	// The one worker took flood0 first (it was alone then); the link came
	// next, ahead of the four other signup mails.
	pos := -1
	for i, m := range b.sent {
		if m.To == "alice@acme.test" {
			pos = i
		}
	}
	if pos < 0 || pos > 1 {
		t.Fatalf("the link was delivered at position %d of %d", pos, len(b.sent))
	}
}
