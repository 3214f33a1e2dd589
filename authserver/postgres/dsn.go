package postgres

import (
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
)

// InsecureRemote reports whether dsn may connect to a host that is not
// local without TLS: sslmode disable, allow or prefer (prefer is libpq's
// and pgx's default, and falls back to plain text), for a host that is
// not a loopback address or a Unix socket. The caller logs a warning; it
// names only the host, never the DSN.
func InsecureRemote(dsn string) (host string, insecure bool) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", false
	}
	plain := cc.TLSConfig == nil
	for _, fb := range cc.Fallbacks {
		plain = plain || fb.TLSConfig == nil
	}
	if !plain {
		return cc.Host, false
	}
	return cc.Host, !localHost(cc.Host)
}

func localHost(h string) bool {
	if strings.HasPrefix(h, "/") || h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
