package testenv

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNSServer is a real DNS server on 127.0.0.1 (UDP and TCP), authoritative
// for whatever TXT records a test sets. Names it does not know answer
// NXDOMAIN; names marked failing answer SERVFAIL.
type DNSServer struct {
	// Addr is the server's host:port, for --dns-resolver.
	Addr string

	mu      sync.Mutex
	txt     map[string][]string
	failing map[string]bool
	queries map[string]int
}

// StartDNS starts a DNS server for the test and stops it when the test
// ends.
func StartDNS(tb testing.TB) *DNSServer {
	tb.Helper()
	s, stop, err := NewDNS()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return s
}

// NewDNS starts a DNS server; stop shuts it down. For TestMain, where no
// testing.TB exists yet.
func NewDNS() (s *DNSServer, stop func(), err error) {
	s = &DNSServer{txt: map[string][]string{}, failing: map[string]bool{}, queries: map[string]int{}}
	pc, l, err := listenBoth()
	if err != nil {
		return nil, nil, err
	}
	s.Addr = pc.LocalAddr().String()
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: l, Handler: s}
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	return s, func() { _ = udp.Shutdown(); _ = tcp.Shutdown() }, nil
}

// listenBoth listens on one port for UDP and TCP: a resolver retries a
// truncated answer over TCP on the same address. The UDP port the kernel
// picks may be taken for TCP, so it tries a few.
func listenBoth() (net.PacketConn, net.Listener, error) {
	var err error
	for range 20 {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, nil, err
		}
		var l net.Listener
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			return pc, l, nil
		}
		_ = pc.Close()
	}
	return nil, nil, err
}

// SetTXT makes name (without the trailing dot) answer with one TXT record
// per value; no values deletes the name.
func (s *DNSServer) SetTXT(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = dns.Fqdn(strings.ToLower(name))
	if len(values) == 0 {
		delete(s.txt, name)
		return
	}
	s.txt[name] = values
}

// SetFailing makes queries for name answer SERVFAIL (or stop doing so).
func (s *DNSServer) SetFailing(name string, failing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing[dns.Fqdn(strings.ToLower(name))] = failing
}

// Queries counts the queries the server answered for name.
func (s *DNSServer) Queries(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[dns.Fqdn(strings.ToLower(name))]
}

// ServeDNS answers one query.
func (s *DNSServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	s.mu.Lock()
	for _, q := range req.Question {
		name := strings.ToLower(q.Name)
		s.queries[name]++
		values, known := s.txt[name]
		switch {
		case s.failing[name]:
			m.Rcode = dns.RcodeServerFailure
		case !known:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeTXT:
			for _, v := range values {
				m.Answer = append(m.Answer, &dns.TXT{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 0},
					Txt: splitTXT(v),
				})
			}
		}
	}
	s.mu.Unlock()
	_ = w.WriteMsg(m)
}

// splitTXT cuts a value into the 255-byte character strings a TXT record
// is made of.
func splitTXT(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}
