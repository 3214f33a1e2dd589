// Package mail sends the auth server's account mails: sign-in links, email
// verification and password resets.
//
// A Mailer delivers one Message. The backends are SMTP (a real client with
// STARTTLS or implicit TLS and SMTP AUTH), File (one RFC 5322 .eml file per
// message, for development) and Log (no delivery, for installs without a
// mail server). Queue wraps any of them so that callers never wait on the
// mail server: it accepts a message at once and delivers it in the
// background, retrying with exponential backoff.
//
// Messages carry single-use links. Nothing here writes a message's body,
// and so its link, to a log; log lines name the recipient only in masked
// form.
package mail

import (
	"context"
	"errors"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one mail with a plain-text and an HTML part.
type Message struct {
	// To is the recipient's address.
	To      string
	Subject string
	// Text is the plain-text part; HTML the HTML alternative (optional).
	Text string
	HTML string
	// Expires, when set, is when the message's link stops working: a queue
	// stops retrying a message past it, since delivering it is pointless.
	Expires time.Time
	// Lane is the Queue lane the message waits in (one of the Lane
	// constants; empty is LaneNotice), so a flood of one kind of mail
	// never delays another.
	Lane string
}

// The lanes of a Queue: one per flow, served in turn.
const (
	LaneMagicLink = "magic_link"
	LaneReset     = "password_reset"
	LaneVerify    = "verify_email"
	LaneNotice    = "notice"
)

// lanes lists the lanes in the order they are served.
var lanes = []string{LaneMagicLink, LaneReset, LaneVerify, LaneNotice}

// laneIndex maps a message to its lane; unknown lanes are notices.
func laneIndex(lane string) int {
	for i, l := range lanes {
		if l == lane {
			return i
		}
	}
	return len(lanes) - 1
}

// Mailer delivers messages.
type Mailer interface {
	// Send delivers m, or accepts it for delivery when the Mailer is a
	// Queue.
	Send(ctx context.Context, m Message) error
}

// permanentError marks a failure that a retry cannot fix, such as a
// recipient the server refuses.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as a failure that retrying will not fix.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// MaskAddress shortens an address for logs: "alice@acme.com" becomes
// "a***@acme.com".
func MaskAddress(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" {
		return "***"
	}
	return local[:1] + "***@" + domain
}

// render builds the RFC 5322 message: multipart/alternative with the text
// part first, so clients that prefer HTML pick the last part.
//
// An all-ASCII message with short lines goes unencoded (labelled 8bit, as
// go-mail writes 7bit parts quoted-printable), so its links stay whole and
// readable in the raw file (a developer greps the .eml outbox); anything
// else is quoted-printable.
func render(from string, m Message) (*gomail.Msg, error) {
	enc := gomail.EncodingQP
	if plain(m.Text) && plain(m.HTML) {
		enc = gomail.NoEncoding
	}
	msg := gomail.NewMsg(gomail.WithEncoding(enc))
	if err := msg.From(from); err != nil {
		return nil, Permanent(err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, Permanent(err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetUserAgent("tenantauth")
	// RFC 3834: this mail is automatic, so auto-responders should not reply.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// plain reports whether s is ASCII with lines short enough for 7bit
// transfer (RFC 5322: at most 998 characters).
func plain(s string) bool {
	line := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\n':
			line = 0
		case c >= 0x80 || c == 0 || c == '\r':
			return false
		default:
			if line++; line > 900 {
				return false
			}
		}
	}
	return true
}
