package authserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tenantauth/tenantauth/authserver/problem"
)

// maxBody is the largest request body accepted (413 above it).
const maxBody = 1 << 20

// handlerFunc is a handler that returns its error for the one writer of
// errors to answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// authedFunc is a handler that runs with an authenticated principal.
type authedFunc func(w http.ResponseWriter, r *http.Request, p *Principal) error

// public adapts a handlerFunc: its error is answered in the contract's
// shape.
func (s *Server) public(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// authenticated runs h with the request's principal, answering 401 when
// there is none and 403 when a cookie-authenticated request that changes
// state lacks its CSRF token.
func (s *Server) authenticated(h authedFunc) http.Handler {
	return s.public(func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.authenticateRequest(r)
		if err != nil {
			return err
		}
		return h(w, r, p)
	})
}

// authenticateRequest is authenticateInto plus the CSRF rule: a
// cookie-authenticated request that changes state must carry the
// session's X-CSRF-Token. Every endpoint that acts for its caller uses it.
func (s *Server) authenticateRequest(r *http.Request) (*Principal, error) {
	return s.authenticateMethod(r, r.Method)
}

// authenticateMethod is authenticateRequest for a request whose method is
// method: forward-auth acts on the original request, so the CSRF rule
// applies to the forwarded method, and to the X-CSRF-Token the client sent
// with it. An unknown method ("") counts as state-changing.
func (s *Server) authenticateMethod(r *http.Request, method string) (*Principal, error) {
	p := new(Principal)
	if err := s.authenticateMethodInto(r.Context(), r, method, p); err != nil {
		return nil, err
	}
	return p, nil
}

// authenticateMethodInto is authenticateMethod writing the principal into
// p, as authenticateInto does.
func (s *Server) authenticateMethodInto(ctx context.Context, r *http.Request, method string, p *Principal) error {
	if err := s.authenticateInto(ctx, r, p); err != nil {
		return err
	}
	if p.ViaCookie && changesState(method) && !s.csrfValid(p.SessionID, r.Header.Get("X-CSRF-Token")) {
		return errCSRF
	}
	return nil
}

// changesState reports whether a method may change state: anything but
// GET, HEAD and OPTIONS, including an unknown one.
func changesState(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// limitIP counts a request against its route's limit for the client IP.
func (s *Server) limitIP(r *http.Request) error {
	if wait, ok := s.limiter.allow(r.Pattern + "|ip|" + limitKeyIP(s.clientIP(r))); !ok {
		return tooMany(wait)
	}
	return nil
}

// limitedByIP is limited for a route whose body is not JSON (the SAML
// ACS's form): the client IP only.
func (s *Server) limitedByIP(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := s.limitIP(r); err != nil {
			return err
		}
		return h(w, r)
	}
}

// limited applies the per-IP and per-email rate limits of the abuse-prone
// endpoints. field is the body field the handler reads the email from, so
// the key is the address the handler acts on; a body that carries both
// email and email_address is refused, so a second field can never pick a
// fresh bucket. Only a valid address becomes a key, and keys are hashed
// by the limiter, so no input decides a bucket's size.
func (s *Server) limited(field string, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		route := r.Pattern
		if err := s.limitIP(r); err != nil {
			return err
		}
		body, err := readBody(r)
		if err != nil {
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var peek struct {
			Email        json.RawMessage `json:"email"`
			EmailAddress json.RawMessage `json:"email_address"`
		}
		if json.Unmarshal(body, &peek) != nil {
			return h(w, r) // the handler's decoder answers the malformed body
		}
		if peek.Email != nil && peek.EmailAddress != nil {
			return problem.ConflictingFields.New()
		}
		var raw json.RawMessage
		switch field {
		case "email":
			raw = peek.Email
		case "email_address":
			raw = peek.EmailAddress
		}
		var value string
		if json.Unmarshal(raw, &value) == nil {
			if email := normalizeEmail(value); validEmail(email) {
				if wait, ok := s.limiter.allow(route + "|email|" + email); !ok {
					return tooMany(wait)
				}
			}
		}
		return h(w, r)
	}
}

func tooMany(wait time.Duration) *problem.Error {
	return problem.RateLimited.Because("too many requests; retry after " + strconv.Itoa(int(wait.Seconds()+0.999)) + "s").After(max(wait, time.Second))
}

// readBody reads a JSON request body: 415 for another content type, 413
// past 1 MiB. An empty body with no content type reads as empty.
func readBody(r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, problem.UnsupportedMediaType.New()
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, problem.BodyTooLarge.New()
		}
		return nil, problem.InvalidBody.New()
	}
	if ct == "" && len(bytes.TrimSpace(body)) > 0 {
		return nil, problem.UnsupportedMediaType.New()
	}
	if !utf8.Valid(body) {
		// JSON is UTF-8 (RFC 8259); decoding would turn every invalid
		// byte into U+FFFD and make different inputs equal.
		return nil, problem.InvalidBody.Because("the body must be UTF-8")
	}
	return body, nil
}

// decode reads a JSON body into v. Unknown fields are ignored, as in most
// JSON APIs; a missing body decodes as {}.
func decode(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return problem.InvalidJSON.Because("the body is not valid JSON for this endpoint: " + jsonProblem(err))
	}
	return nil
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "syntax error at byte " + strconv.FormatInt(syn.Offset, 10)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "the body must be a JSON object"
		}
		return "field " + strconv.Quote(typ.Field) + " must be " + jsonKind(typ.Type.Kind())
	}
	return "unexpected input"
}

// jsonKind names a Go kind as the JSON a client should send, so no
// message names a Go type.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "another type"
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// instrument counts and times requests per route, and bounds them by
// RequestTimeout. The route's histogram and counters are resolved here,
// once, rather than by label on every request.
func (s *Server) instrument(route string, next http.Handler) http.Handler {
	hist := s.metrics.duration.WithLabelValues(route)
	codes := s.metrics.routeRequests(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// One allocation holds the request's recorder and its context.
		st := &requestState{statusRecorder: statusRecorder{ResponseWriter: w, status: http.StatusOK}}
		st.ctx.init(r.Context(), start.Add(s.cfg.RequestTimeout))
		defer st.ctx.end()
		next.ServeHTTP(&st.statusRecorder, r.WithContext(&st.ctx))
		hist.Observe(time.Since(start).Seconds())
		codes.get(st.status).Inc()
	})
}

// instrumentVerify is instrument for /verify, the hot path. The handler
// returns the status it wrote, so no recorder wraps the writer, and it is
// handed the request's deadline context rather than a copy of the request
// that carries it: one small allocation instead of three.
func (s *Server) instrumentVerify(route string) http.Handler {
	hist := s.metrics.duration.WithLabelValues(route)
	codes := s.metrics.routeRequests(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx := new(requestContext)
		ctx.init(r.Context(), start.Add(s.cfg.RequestTimeout))
		defer ctx.end()
		status := s.handleVerify(ctx, w, r)
		hist.Observe(time.Since(start).Seconds())
		codes.get(status).Inc()
	})
}

// requestState is what instrument keeps for one request.
type requestState struct {
	statusRecorder
	ctx requestContext
}
