package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// TLS modes of the SMTP backend.
const (
	// TLSStartTLS upgrades a plain connection with STARTTLS and refuses a
	// server that does not offer it (port 587).
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, port 465).
	TLSImplicit = "tls"
	// TLSNone sends in the clear; only for a relay on the same host or
	// network.
	TLSNone = "none"
)

// SMTPOptions configure the SMTP backend.
type SMTPOptions struct {
	Host string
	// Port defaults to 587 for starttls and none, 465 for tls.
	Port int
	// From is the sender address, e.g. "Acme <no-reply@acme.com>".
	From string
	// Username and Password turn on SMTP AUTH (the strongest mechanism
	// both sides support; PLAIN and LOGIN only over TLS).
	Username string
	Password string
	// TLS is starttls (default), tls or none.
	TLS string
	// TLSConfig overrides the TLS settings, e.g. to trust a private CA.
	TLSConfig *tls.Config
	// Timeout bounds connecting and each SMTP command (30s).
	Timeout time.Duration
}

// SMTP delivers messages to a mail server, one connection per message.
type SMTP struct {
	opts SMTPOptions
}

var _ Mailer = (*SMTP)(nil)

// NewSMTP checks the options and returns the backend. It does not connect.
func NewSMTP(o SMTPOptions) (*SMTP, error) {
	if o.Host == "" {
		return nil, errors.New("smtp: a host is required")
	}
	if o.From == "" {
		return nil, errors.New("smtp: a sender (from) address is required")
	}
	if o.TLS == "" {
		o.TLS = TLSStartTLS
	}
	switch o.TLS {
	case TLSStartTLS, TLSNone:
		if o.Port == 0 {
			o.Port = 587
		}
	case TLSImplicit:
		if o.Port == 0 {
			o.Port = 465
		}
	default:
		return nil, fmt.Errorf("smtp: tls mode must be starttls, tls or none, not %q", o.TLS)
	}
	if o.Password != "" && o.Username == "" {
		return nil, errors.New("smtp: a password needs a username")
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if _, err := render(o.From, Message{To: "check@example.com"}); err != nil {
		return nil, fmt.Errorf("smtp: sender address %q: %w", o.From, err)
	}
	return &SMTP{opts: o}, nil
}

func (s *SMTP) client() (*gomail.Client, error) {
	o := s.opts
	opts := []gomail.Option{gomail.WithPort(o.Port), gomail.WithTimeout(o.Timeout)}
	switch o.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if o.TLSConfig != nil {
		opts = append(opts, gomail.WithTLSConfig(o.TLSConfig))
	}
	if o.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(o.Username), gomail.WithPassword(o.Password))
	}
	return gomail.NewClient(o.Host, opts...)
}

// Send delivers m. A recipient the server refuses for good (5xx) is a
// permanent error; everything else may be retried.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg, err := render(s.opts.From, m)
	if err != nil {
		return err
	}
	c, err := s.client()
	if err != nil {
		return Permanent(fmt.Errorf("smtp client: %w", err))
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		var se *gomail.SendError
		if errors.As(err, &se) && se.Reason == gomail.ErrSMTPRcptTo && !se.IsTemp() {
			return Permanent(fmt.Errorf("smtp %s:%d refused the recipient: %w", s.opts.Host, s.opts.Port, err))
		}
		return fmt.Errorf("smtp %s:%d: %w", s.opts.Host, s.opts.Port, err)
	}
	return nil
}
