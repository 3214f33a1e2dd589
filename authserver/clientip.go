package authserver

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The client IP, which rate limits and audit logs key on. Clients write every header, so
// X-Forwarded-For is read only when the direct peer is a proxy listed in
// TrustedProxies, and then from the right: each trusted proxy appends the
// address it received the request from, so the rightmost address that is
// not a trusted proxy is the last one a trusted party vouched for. The
// leftmost entries are whatever the client wrote and are never used.

// maxForwardedHops bounds how far back the X-Forwarded-For chain is walked.
const maxForwardedHops = 32

// ProxyList is a set of CIDRs whose addresses are trusted to append to
// X-Forwarded-For.
type ProxyList []netip.Prefix

// ParseProxyList parses comma-separated CIDRs or single addresses
// ("10.0.0.0/8, 192.168.1.7"). Empty input is an empty list.
func ParseProxyList(s string) (ProxyList, error) {
	var out ProxyList
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q is neither a CIDR nor an address: %w", f, err)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is not a CIDR: %w", f, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// contains reports whether a is one of the trusted proxies.
func (l ProxyList) contains(a netip.Addr) bool {
	for _, p := range l {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the address rate limits are keyed by: the remote address,
// or, when that is a trusted proxy, the rightmost X-Forwarded-For address
// that is not. An entry that does not parse ends the walk at the trusted
// hop to its right, so garbage never picks a fresh bucket; a chain made
// only of trusted addresses yields its leftmost one.
func (s *Server) clientIP(r *http.Request) string {
	peer, ok := remoteAddr(r.RemoteAddr)
	if !ok {
		return "unknown"
	}
	if !s.cfg.TrustedProxies.contains(peer) {
		return peer.String()
	}
	hop := peer
	hops := 0
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		entries := strings.Split(values[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			e := strings.TrimSpace(entries[j])
			if e == "" {
				continue
			}
			if hops++; hops > maxForwardedHops {
				return hop.String()
			}
			a, ok := forwardedAddr(e)
			if !ok {
				return hop.String()
			}
			if !s.cfg.TrustedProxies.contains(a) {
				return a.String()
			}
			hop = a
		}
	}
	return hop.String()
}

// remoteAddr parses net/http's RemoteAddr ("ip:port").
func remoteAddr(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// forwardedAddr parses one X-Forwarded-For entry: an address, optionally
// with a port ("1.2.3.4:5678", "[2001:db8::1]:443").
func forwardedAddr(e string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(e); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(e); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// limitKeyIP is the rate-limit key of a client address: IPv6 clients are
// grouped by /64, the block one subscriber usually holds, so rotating
// addresses within it does not give fresh buckets.
func limitKeyIP(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() {
		return ip
	}
	p, _ := a.Prefix(64)
	return p.String()
}
