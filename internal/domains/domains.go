// Package domains holds what the operator, the admission webhooks and
// the auth server share about an Organization's email domains: which
// domains are public mail providers that nobody may claim, the DNS TXT
// challenge that proves a domain, and the token that challenge holds.
//
// It knows no Kubernetes types: the claim that makes a verified domain one
// Organization's lives in package trust.
package domains

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/internal/b32"
)

// ChallengePrefix is the label the TXT record sits under:
// _tenantauth-challenge.<domain>.
const ChallengePrefix = "_tenantauth-challenge."

// MaxNameLength is the longest domain name accepted: the challenge name
// built on it must stay within DNS's 253 characters.
const MaxNameLength = 253 - len(ChallengePrefix)

// ChallengeName is the DNS name whose TXT record proves domain.
func ChallengeName(domain string) string { return ChallengePrefix + domain }

var namePattern = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)

// ValidName reports why name is not a lower-case DNS name of at least two
// labels, such as acme.com, or nil when it is.
func ValidName(name string) error {
	if len(name) > MaxNameLength {
		return fmt.Errorf("is longer than %d characters", MaxNameLength)
	}
	if !namePattern.MatchString(name) {
		return errors.New("must be a lower-case DNS name such as acme.com: letters, digits and '-' in dot-separated labels, no trailing dot")
	}
	return nil
}

// Token is the verification token of domain for the organization with
// UID orgUID: an HMAC under the installation key, so it stays the same for
// the life of the Organization without being stored, differs between
// organizations, and cannot be read back from anything a tenant writes.
// It is 32 lower-case base32 characters (160 bits).
func Token(key []byte, orgUID, domain string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("tenantauth domain verification\x00" + orgUID + "\x00" + domain))
	return b32.Lower.EncodeToString(m.Sum(nil)[:20])
}

//go:embed publicmail.txt
var publicMailList string

// publicMail holds the exact entries of publicmail.txt; publicBrands the
// "brand.*" ones.
var publicMail, publicBrands = parseList(publicMailList)

// secondLevel are the labels country registries put brands under, as in
// yahoo.co.uk, yahoo.com.br and hotmail.co.jp.
var secondLevel = map[string]bool{"co": true, "com": true, "net": true, "org": true, "ne": true, "or": true}

func parseList(text string) (exact, brands map[string]bool) {
	exact, brands = map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasSuffix(line, ".*"):
			brands[strings.TrimSuffix(line, ".*")] = true
		default:
			exact[line] = true
		}
	}
	return exact, brands
}

// IsPublicMail reports whether name (lower-case, as ValidName admits) is a
// public mail provider's domain or a subdomain of one: gmail.com,
// outlook.com, gmx.de, mail.yahoo.co.uk. Nobody may claim those.
func IsPublicMail(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	labels := strings.Split(name, ".")
	for i := range labels {
		if publicMail[strings.Join(labels[i:], ".")] {
			return true
		}
		// brand.tld or brand.co.uk, below any subdomain; not
		// outlook.acme.com, a company's own host.
		rest := len(labels) - i - 1
		if publicBrands[labels[i]] && (rest == 1 || rest == 2 && secondLevel[labels[i+1]]) {
			return true
		}
	}
	return false
}

// Resolver looks up TXT records. *net.Resolver is one.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// NewResolver returns the system resolver for an empty addr, else a
// resolver that sends every query to the DNS server at addr (host:port).
func NewResolver(addr string) (Resolver, error) {
	if addr == "" {
		return net.DefaultResolver, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("DNS resolver %q: want host:port: %w", addr, err)
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}, nil
}

// Result is what one TXT lookup proved.
type Result int

// Results of Check.
const (
	// Missing means the DNS answered and no TXT record holds the token:
	// the name does not exist, has no TXT record, or another value.
	Missing Result = iota
	// Verified means a TXT record holds exactly the token.
	Verified
)

// LookupTimeout bounds one Check.
const LookupTimeout = 10 * time.Second

// Check looks up the challenge record of domain and reports whether it
// holds token. An error means the DNS did not answer (a timeout, a server
// failure): the caller must not take that as the record being gone.
func Check(ctx context.Context, r Resolver, domain, token string) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, LookupTimeout)
	defer cancel()
	records, err := r.LookupTXT(ctx, ChallengeName(domain))
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return Missing, nil
		}
		return Missing, fmt.Errorf("look up TXT %s: %w", ChallengeName(domain), err)
	}
	for _, rec := range records {
		// One record may arrive as several character strings; the
		// resolver joins them. Spaces around the value are a common
		// copy-and-paste slip, not a different token.
		if strings.TrimSpace(rec) == token {
			return Verified, nil
		}
	}
	return Missing, nil
}
