package authserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/tenantauth/tenantauth/authserver/problem"
)

// The errors more than one handler returns.
var (
	errInvalidCredentials = problem.InvalidCredentials.New()
	errUnauthenticated    = problem.Unauthenticated.New()
	errInvalidToken       = problem.InvalidToken.New()
	errCSRF               = problem.CSRFInvalid.New()
	errOrgNotFound        = problem.OrganizationNotFound.New()
	errStoreUnavailable   = problem.StoreUnavailable.New()
)

// writeError answers with err in the contract's shape and returns the
// status it wrote. Anything that is not an *Error is a fault of ours or of
// the store: it is logged and answered 503, because those are the faults a
// client may retry.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) int {
	var e *problem.Error
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
	return e.Status
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
