package app

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/tenantauth/tenantauth/authserver/mail"
)

// MailOptions are the auth server's mail flags. The SMTP password comes
// from the environment (SMTP_PASSWORD), never from a flag, so it stays out
// of process listings.
type MailOptions struct {
	Backend      string
	OutboxDir    string
	SMTPHost     string
	SMTPPort     int
	SMTPFrom     string
	SMTPUsername string
	SMTPTLS      string
}

// Bind registers the flags on fs.
func (o *MailOptions) Bind(fs *flag.FlagSet) {
	fs.StringVar(&o.Backend, "mailer", "smtp", "how account mails go out: smtp, file (one .eml per message in --outbox-dir) or log (not sent; only logged, without their links)")
	fs.StringVar(&o.OutboxDir, "outbox-dir", "", "folder of the file mailer")
	fs.StringVar(&o.SMTPHost, "smtp-host", "", "SMTP server host")
	fs.IntVar(&o.SMTPPort, "smtp-port", 0, "SMTP server port (default 587, or 465 with --smtp-tls=tls)")
	fs.StringVar(&o.SMTPFrom, "smtp-from", "", "sender address of account mails, e.g. 'Acme <no-reply@acme.com>'")
	fs.StringVar(&o.SMTPUsername, "smtp-username", "", "SMTP AUTH user name; the password is read from env SMTP_PASSWORD")
	fs.StringVar(&o.SMTPTLS, "smtp-tls", mail.TLSStartTLS, "starttls, tls (implicit, SMTPS) or none")
}

// newMailer builds the configured backend inside a delivery queue, so
// requests never wait on the mail server. An empty backend logs only.
func newMailer(o MailOptions, log logr.Logger) (mail.Mailer, error) {
	var backend mail.Mailer
	switch o.Backend {
	case "smtp":
		if o.SMTPHost == "" {
			return nil, usage(fmt.Errorf("--mailer=smtp needs --smtp-host (or use --mailer=file or --mailer=log)"))
		}
		s, err := mail.NewSMTP(mail.SMTPOptions{Host: o.SMTPHost, Port: o.SMTPPort, From: o.SMTPFrom,
			Username: o.SMTPUsername, Password: os.Getenv("SMTP_PASSWORD"), TLS: o.SMTPTLS})
		if err != nil {
			return nil, usage(err)
		}
		backend = s
	case "file":
		f, err := mail.NewFile(o.OutboxDir, o.SMTPFrom)
		if err != nil {
			return nil, usage(err)
		}
		backend = f
	case "log", "":
		backend = mail.NewLog(log)
	default:
		return nil, usage(fmt.Errorf("--mailer must be smtp, file or log, not %q", o.Backend))
	}
	return mail.NewQueue(backend, mail.QueueOptions{Log: log}), nil
}

// drainMail is a runnable that, when the manager stops, gives queued
// mails a few seconds to go out.
func drainMail(m mail.Mailer) manager.Runnable {
	return manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		q, ok := m.(*mail.Queue)
		if !ok {
			return nil
		}
		wait, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = q.Close(wait)
		return nil
	})
}
