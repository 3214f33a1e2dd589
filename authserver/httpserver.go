package authserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log"
	"net"
	"net/http"
	"path"
	"strconv"
	"time"

	"github.com/tenantauth/tenantauth/authserver/problem"
)

// The HTTP server around the handler: timeouts that cut off clients that
// stop sending, and the answers net/http and ServeMux would give on their
// own (plain-text 400 and 431, 307 redirects for unclean paths) turned into
// the contract's error shape.

// Defaults of the server's timeouts and header limit.
const (
	defaultReadHeaderTimeout = 5 * time.Second
	// defaultReadTimeout bounds the whole request, body included: a body
	// that stops arriving is cut off this long after the request began.
	defaultReadTimeout  = 10 * time.Second
	defaultWriteTimeout = 30 * time.Second
	defaultIdleTimeout  = 60 * time.Second
	// defaultMaxHeaderBytes leaves room for cookies and a few JWTs.
	defaultMaxHeaderBytes = 64 << 10
)

// ServerTimeouts are the HTTP server's limits; zero values take the
// defaults above.
type ServerTimeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
	MaxHeaderBytes                int
}

func (t *ServerTimeouts) defaults() {
	if t.ReadHeader == 0 {
		t.ReadHeader = defaultReadHeaderTimeout
	}
	if t.Read == 0 {
		t.Read = defaultReadTimeout
	}
	if t.Write == 0 {
		t.Write = defaultWriteTimeout
	}
	if t.Idle == 0 {
		t.Idle = defaultIdleTimeout
	}
	if t.MaxHeaderBytes == 0 {
		t.MaxHeaderBytes = defaultMaxHeaderBytes
	}
}

// httpServer is the http.Server Serve runs. net/http's own error log
// (malformed requests, TLS noise) goes through the server's rate-limited
// logger.
func (s *Server) httpServer() *http.Server {
	t := s.cfg.Timeouts
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    t.MaxHeaderBytes,
		// "OPTIONS *" reaches the handler, which answers it in shape.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     log.New(logWriter{s}, "", 0),
	}
}

// logWriter feeds net/http's error log into the server's logger.
type logWriter struct{ s *Server }

func (w logWriter) Write(p []byte) (int, error) {
	w.s.log.Info("http server", "message", string(bytes.TrimSpace(p)))
	return len(p), nil
}

// Serve runs the HTTP server on l until ctx ends, then drains it.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := s.httpServer()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(shapeListener{l}) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// canonical answers, in the contract's shape, the requests ServeMux would
// redirect: a path that is not clean (dot segments, doubled slashes) is a
// 404, never a 307 to another URL, and CONNECT is refused. Forward-auth's
// Envoy form (/verify/<original path>) goes to its handler as sent, since
// the original path is its input, not a route.
func (s *Server) canonical(mux http.Handler) http.Handler {
	verifyPrefix := s.cfg.PathPrefix + "/verify/"
	verify := s.instrumentVerify("/verify/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			w.Header().Set("Allow", "GET, HEAD, POST")
			s.writeError(w, r, problem.MethodNotAllowed.Because("CONNECT is not supported"))
			return
		}
		p := r.URL.EscapedPath()
		if cleanPath(p) == p {
			mux.ServeHTTP(w, r)
			return
		}
		if len(p) > len(verifyPrefix) && p[:len(verifyPrefix)] == verifyPrefix {
			verify.ServeHTTP(w, r)
			return
		}
		s.writeError(w, r, problem.NotFound.Because("no such endpoint (the path must not hold empty or dot segments)"))
	})
}

// cleanPath is ServeMux's canonical form of a path.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		return "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// shapeListener wraps each connection so that the errors net/http writes
// straight to it, before any handler runs, leave in the contract's shape.
type shapeListener struct{ net.Listener }

func (l shapeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &shapeConn{Conn: c}, nil
}

// shapeConn rewrites net/http's own error responses. net/http writes each
// of them with one Write of a fixed form: a status line followed directly
// by plainHeaders and a text body. A handler's answer never has that form
// (net/http adds a Date header to every one), so nothing else is touched.
type shapeConn struct{ net.Conn }

const plainHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *shapeConn) Write(b []byte) (int, error) {
	if out, ok := shapeServerError(b); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// CloseWrite keeps net/http's graceful close of a failed connection.
func (c *shapeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// shapeServerError turns one of net/http's plain-text error responses into
// the same status with a JSON error body.
func shapeServerError(b []byte) ([]byte, bool) {
	if !bytes.HasPrefix(b, []byte("HTTP/1.")) || len(b) > 4096 {
		return nil, false
	}
	eol := bytes.Index(b, []byte("\r\n"))
	if eol < 12 || !bytes.HasPrefix(b[eol:], []byte(plainHeaders)) {
		return nil, false
	}
	status, err := strconv.Atoi(string(b[9:12]))
	if err != nil || status < 400 || status > 599 {
		return nil, false
	}
	code, msg := "bad_request", "the request is not valid HTTP"
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		code, msg = "headers_too_large", "the request headers are too large"
	case http.StatusNotImplemented:
		code, msg = "not_implemented", "the transfer encoding is not supported"
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	body = append(body, '\n')
	var out bytes.Buffer
	out.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n")
	out.WriteString("Content-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\n")
	out.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	out.Write(body)
	return out.Bytes(), true
}
