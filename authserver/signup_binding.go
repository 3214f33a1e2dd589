package authserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/token"
)

// signupCookie binds a registration to the client that made it. The
// password chosen at register becomes the account's only when
// verify-email comes back with this cookie as well as the mailed token:
// the token proves control of the mailbox, the cookie proves that whoever
// clicked also chose the password. Without it, someone who registers a
// stranger's address with a password of their own could sign in as that
// stranger once the stranger clicks the genuine mail. The sign-in then
// still happens, as an email sign-in, and the password is discarded.
//
// The cookie is host-only, unlike the session cookies: --cookie-domain
// would let a sibling subdomain read it, or plant its own binding in a
// victim's browser and so make the victim's click keep the planter's
// password. Over https it is named with the __Host- prefix, which
// browsers accept only from this host, Secure, with Path=/ and no Domain,
// so nothing else can set it. Plain http (dev) cannot use the prefix and
// keeps the bare name.
const (
	signupCookie     = "tenantauth_signup"
	hostSignupCookie = "__Host-" + signupCookie
)

// newSignupBinding makes a binding, sets its cookie and returns what to
// keep with the verification token: the cookie's name and the hash of its
// value. The name comes along so verify-email reads exactly the cookie the
// binding was set as, never the bare name where __Host- was used.
func (s *Server) newSignupBinding(w http.ResponseWriter) string {
	raw := token.NewSecret()
	c := &http.Cookie{Name: signupCookie, Value: raw, Path: s.cfg.PathPrefix + "/auth",
		MaxAge: int(account.VerifyEmailTTL.Seconds()), HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if !strings.HasPrefix(s.cfg.PublicURL, "http://") {
		c.Name, c.Path, c.Secure = hostSignupCookie, "/", true
	}
	http.SetCookie(w, c)
	return c.Name + ":" + bindingHash(raw)
}

// signupBound reports whether r carries the binding want that
// newSignupBinding returned. A binding without a cookie name, kept by a
// release that set the cookie on --cookie-domain, binds nothing: its
// password is discarded, as for any other client.
func signupBound(r *http.Request, want string) bool {
	name, hash, ok := strings.Cut(want, ":")
	if !ok || (name != signupCookie && name != hostSignupCookie) || hash == "" {
		return false
	}
	c, err := r.Cookie(name)
	if err != nil || len(c.Value) > 128 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(bindingHash(c.Value)), []byte(hash)) == 1
}

func bindingHash(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}
