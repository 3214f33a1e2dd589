// Package mailtest runs an in-process SMTP server for tests and reads the
// messages it receives the way a mail client would: MIME parts decoded,
// links taken from the text.
package mailtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a Server.
type Options struct {
	// TLS offers STARTTLS with a fresh self-signed certificate for
	// 127.0.0.1 and localhost (see Server.CertPool and Server.CAPEM).
	TLS bool
	// Username and Password, when set, require SMTP AUTH PLAIN.
	Username, Password string
}

// Received is one message as the server got it.
type Received struct {
	From string
	To   []string
	Data []byte
}

// Server is an SMTP server on 127.0.0.1 that keeps what it receives.
type Server struct {
	Host string
	Port int
	// CertPool trusts the server's certificate (TLS only); CAPEM is the
	// same certificate in PEM.
	CertPool *x509.CertPool
	CAPEM    []byte

	opts Options
	srv  *smtp.Server

	mu       sync.Mutex
	messages []Received
	arrived  chan struct{} // closed and replaced on each message
	failNext int
	delay    time.Duration
	authed   int
}

// Start runs a server until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New runs a server until Close, for suites that share one (TestMain).
func New(opts Options) (*Server, error) {
	s := &Server{opts: opts, arrived: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{s: s}, nil
	}))
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	s.srv.MaxMessageBytes = 1 << 20
	if opts.TLS {
		cert, pemBytes, err := selfSigned()
		if err != nil {
			return nil, err
		}
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.CAPEM = pemBytes
		s.CertPool = x509.NewCertPool()
		s.CertPool.AppendCertsFromPEM(pemBytes)
	} else {
		// Plain-text AUTH for a server on loopback only.
		s.srv.AllowInsecureAuth = true
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.Host = "127.0.0.1"
	s.Port = l.Addr().(*net.TCPAddr).Port
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { _ = s.srv.Close() }

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// FailNext makes the next n messages fail with a temporary 451 error.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	s.failNext = n
	s.mu.Unlock()
}

// SetDelay makes the server wait d before accepting each message, as a
// slow server would.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// Messages returns every message received so far.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.messages...)
}

// Authenticated counts successful AUTH exchanges.
func (s *Server) Authenticated() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authed
}

// WaitFor returns the first message to rcpt whose index among all messages
// is at least from, waiting up to timeout.
func (s *Server) WaitFor(t testing.TB, rcpt string, from int, timeout time.Duration) Received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for i := from; i < len(s.messages); i++ {
			for _, to := range s.messages[i].To {
				if to == rcpt {
					m := s.messages[i]
					s.mu.Unlock()
					return m
				}
			}
		}
		arrived := s.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("no mail to %s within %s", rcpt, timeout)
		}
	}
}

// Count is the number of messages received.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

type session struct {
	s      *Server
	authed bool
	from   string
	to     []string
}

func (se *session) AuthMechanisms() []string {
	if se.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != se.s.opts.Username || password != se.s.opts.Password {
			return smtp.ErrAuthFailed
		}
		se.authed = true
		se.s.mu.Lock()
		se.s.authed++
		se.s.mu.Unlock()
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.s.opts.Username != "" && !se.authed {
		return smtp.ErrAuthRequired
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := se.s
	s.mu.Lock()
	delay, fail := s.delay, s.failNext > 0
	if fail {
		s.failNext--
	}
	s.mu.Unlock()
	time.Sleep(delay)
	if fail {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	s.mu.Lock()
	s.messages = append(s.messages, Received{From: se.from, To: append([]string(nil), se.to...), Data: data})
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
	return nil
}

func (se *session) Reset() { se.from, se.to = "", nil }

func (se *session) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and localhost.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "mailtest"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	if der == nil {
		return tls.Certificate{}, nil, errors.New("empty certificate")
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
