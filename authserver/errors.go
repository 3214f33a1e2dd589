package authserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Error is an answer in the contract's error shape:
// {"error": {"code": "...", "message": "..."}}. Messages are written for
// the client and never carry a credential.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter sets the Retry-After header on 429 and 503 answers.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errf(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// The errors more than one handler returns.
var (
	errInvalidCredentials = errf(http.StatusUnauthorized, "invalid_credentials", "the email or password is wrong")
	errUnauthenticated    = errf(http.StatusUnauthorized, "unauthenticated", "this endpoint needs a session token or API key")
	errInvalidToken       = errf(http.StatusUnauthorized, "invalid_token", "the token is malformed, expired, revoked or unknown")
	errCSRF               = errf(http.StatusForbidden, "csrf_invalid", "a cookie-authenticated request that changes state needs the X-CSRF-Token header of its session")
	errOrgNotFound        = errf(http.StatusNotFound, "organization_not_found", "no such organization")
	errStoreUnavailable   = &Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Message: "the session store cannot be reached; retry the request", RetryAfter: 2 * time.Second}
)

// writeError answers with err in the contract's shape. Anything that is not
// an *Error is a fault of ours or of the store: it is logged and answered
// 503, because those are the faults a client may retry.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		s.log.Error(err, "request failed", "method", r.Method, "path", r.URL.Path)
		e = errStoreUnavailable
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tenantauth", error="invalid_token"`)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Round(time.Second)/time.Second)))
	}
	writeJSON(w, e.Status, map[string]any{"error": map[string]string{"code": e.Code, "message": e.Message}})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
