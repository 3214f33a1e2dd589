package authserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"

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
const signupCookie = "tenantauth_signup"

// newSignupBinding makes a binding, sets its cookie and returns the hash
// to keep with the verification token.
func (s *Server) newSignupBinding(w http.ResponseWriter) string {
	raw := token.NewSecret()
	http.SetCookie(w, &http.Cookie{Name: signupCookie, Value: raw, Path: s.cfg.PathPrefix + "/auth",
		Domain: s.cfg.CookieDomain, MaxAge: int(verifyEmailTTL.Seconds()), HttpOnly: true,
		Secure: !strings.HasPrefix(s.cfg.PublicURL, "http://"), SameSite: http.SameSiteLaxMode})
	return bindingHash(raw)
}

// signupBound reports whether r carries the binding whose hash is want.
func signupBound(r *http.Request, want string) bool {
	c, err := r.Cookie(signupCookie)
	if err != nil || want == "" || len(c.Value) > 128 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(bindingHash(c.Value)), []byte(want)) == 1
}

func bindingHash(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}
