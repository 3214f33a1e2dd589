// Package netguard keeps outbound fetches that a tenant can aim (SSO
// discovery, SAML metadata, token endpoints) off the network the server
// itself sits in.
package netguard

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// PublicOnly is a net.Dialer Control function: it refuses to connect to
// an address that is not a public unicast one: loopback, private (RFC
// 1918, unique local), link-local (cloud metadata), shared (RFC 6598),
// unspecified or multicast. It runs on the address dialled, after DNS, so
// a name that resolves, or re-resolves, to such an address is refused.
func PublicOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("address %q: %w", host, err)
	}
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || sharedAddressSpace.Contains(ip) {
		return fmt.Errorf("refusing to connect to %s: not a public address (set --sso-allow-private-networks for an identity provider inside the network)", ip)
	}
	return nil
}

// sharedAddressSpace is RFC 6598's carrier-grade NAT range, which netip
// does not count as private.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// Dialer is a dialer that connects to public addresses only.
func Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: PublicOnly}
}
