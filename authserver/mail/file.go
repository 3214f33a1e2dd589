package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
)

// File writes each message as an RFC 5322 .eml file into a folder, for
// development: any mail client opens them. Files are written whole and
// then renamed, so a reader never sees half a message, and are readable by
// their owner only, since they hold live links.
type File struct {
	dir  string
	from string
}

var _ Mailer = (*File)(nil)

// DefaultFileFrom is the sender of File messages when none is given.
const DefaultFileFrom = "tenantauth <no-reply@localhost>"

// NewFile returns a File backend writing into dir, which it creates.
func NewFile(dir, from string) (*File, error) {
	if dir == "" {
		return nil, fmt.Errorf("file mailer: an outbox folder is required")
	}
	if from == "" {
		from = DefaultFileFrom
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("file mailer: make outbox %s: %w", dir, err)
	}
	if _, err := render(from, Message{To: "check@example.com"}); err != nil {
		return nil, fmt.Errorf("file mailer: sender address %q: %w", from, err)
	}
	return &File{dir: dir, from: from}, nil
}

// Send writes m to <dir>/<UTC time>-<random>.eml; names sort by time.
func (f *File) Send(_ context.Context, m Message) error {
	msg, err := render(f.from, m)
	if err != nil {
		return err
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := time.Now().UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(suffix) + ".eml"
	tmp, err := os.CreateTemp(f.dir, ".writing-*")
	if err != nil {
		return fmt.Errorf("file mailer: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := msg.WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("file mailer: write message: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("file mailer: write message: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(f.dir, name)); err != nil {
		return fmt.Errorf("file mailer: %w", err)
	}
	return nil
}

// Log delivers nothing: it records that a message was dropped, naming the
// masked recipient and the subject but never the body, which holds a live
// link. It serves installs without a mail server (--mailer=log), where
// account mails cannot work and an operator needs to see that they were
// asked for.
type Log struct {
	log logr.Logger
}

var _ Mailer = (*Log)(nil)

// NewLog returns a Log backend.
func NewLog(log logr.Logger) *Log { return &Log{log: log} }

// Send logs that m was not delivered.
func (l *Log) Send(_ context.Context, m Message) error {
	l.log.Info("mail not delivered: no mail server is configured (--mailer=log)",
		"to", MaskAddress(m.To), "subject", m.Subject)
	return nil
}
