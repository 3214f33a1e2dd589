package authserver

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestMetricsCountRequestsIssuancesAndVerifications(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, nil)
	h.srv.metrics = NewMetrics(reg)
	h.srv.handler = h.srv.routes()
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	jwt := h.login("alice@acme.com", "correct horse battery", "").str("access_token")
	h.do("GET", "/verify", nil, "Authorization", "Bearer "+jwt)
	h.do("GET", "/verify", nil, "Authorization", "Bearer nonsense")

	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`tenantauth_http_requests_total{code="200",route="/auth/login"} 1`,
		`tenantauth_http_requests_total{code="401",route="/verify"} 1`,
		`tenantauth_http_request_duration_seconds_count{route="/verify"} 2`,
		`tenantauth_tokens_issued_total{kind="access"} 1`,
		`tenantauth_verifications_total{kind="user",result="ok"} 1`,
		`tenantauth_verifications_total{kind="user",result="invalid_token"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
