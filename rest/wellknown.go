package rest

import (
	"encoding/json"
	"net/http"
	"strings"
)

// JWKSource serves the pre-serialized JWKS document and its ETag.
type JWKSource interface {
	JWKS() (doc []byte, etag string)
}

// jwks serves GET /.well-known/jwks.json from memory; it keeps working while
// the database is down. Clients may cache it for an hour because the next
// key is published a full rotation period before it signs.
func jwks(src JWKSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		doc, etag := src.JWKS()
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("ETag", etag)
		if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(doc)
	}
}

func etagMatches(header, etag string) bool {
	for _, candidate := range strings.Split(header, ",") {
		c := strings.TrimPrefix(strings.TrimSpace(candidate), "W/")
		if c == etag || c == "*" {
			return true
		}
	}
	return false
}

// openIDConfiguration is the discovery document; it is built once.
func openIDConfiguration(publicURL string) http.HandlerFunc {
	base := strings.TrimRight(publicURL, "/")
	doc, _ := json.Marshal(map[string]any{
		"issuer":                                base,
		"jwks_uri":                              base + "/.well-known/jwks.json",
		"token_endpoint":                        base + "/oauth2/token",
		"grant_types_supported":                 []string{"client_credentials", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"token"},
		"subject_types_supported":               []string{"public"},
		"claims_supported":                      []string{"sub", "tid", "tids", "jti", "amr", "context_node_id", "exp", "iat", "iss", "aud"},
	})
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(doc)
	}
}
