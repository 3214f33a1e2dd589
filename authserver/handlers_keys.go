package authserver

import (
	"bytes"
	"net/http"
)

// handleJWKS is GET /.well-known/jwks.json: every organization's public
// keys, active and retiring.
func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	buf.WriteString(`{"keys":[`)
	first := true
	for _, o := range s.dir.Orgs() {
		ks, ok := s.dir.Keys(o.Ref)
		if !ok {
			continue
		}
		for _, k := range ks.PublicJWKs {
			if !first {
				buf.WriteByte(',')
			}
			first = false
			buf.Write(k)
		}
	}
	buf.WriteString("]}")
	writeRaw(w, buf.Bytes())
}

// handleOrgJWKS is GET /orgs/{org}/.well-known/jwks.json.
func (s *Server) handleOrgJWKS(w http.ResponseWriter, r *http.Request) {
	o, ok := s.dir.Org(r.PathValue("org"))
	if !ok {
		s.writeError(w, r, errOrgNotFound)
		return
	}
	ks, ok := s.dir.Keys(o.Ref)
	if !ok {
		writeRaw(w, []byte(`{"keys":[]}`))
		return
	}
	writeRaw(w, ks.JWKS)
}

// handleDiscovery is GET /orgs/{org}/.well-known/openid-configuration.
func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	o, ok := s.dir.Org(r.PathValue("org"))
	if !ok {
		s.writeError(w, r, errOrgNotFound)
		return
	}
	base := s.cfg.PublicURL + s.cfg.PathPrefix
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.issuer(o),
		"jwks_uri":                              base + "/orgs/" + o.Slug + "/.well-known/jwks.json",
		"token_endpoint":                        base + "/auth/login",
		"id_token_signing_alg_values_supported": []string{o.Algorithm},
		"token_endpoint_auth_methods_supported": []string{"none"},
		"response_types_supported":              []string{"token"},
		"subject_types_supported":               []string{"public"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "org_id", "org_slug",
			"role", "permissions", "email", "amr"},
	})
}

// writeRaw answers pre-rendered JSON that caches may keep for a short
// while: rotation publishes keys ahead of use.
func writeRaw(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
