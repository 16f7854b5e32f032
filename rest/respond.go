package rest

import (
	"encoding/json"
	"net/http"
)

// writeJSON encodes v with status; API responses are never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// handler adapts "decode, call one core method, encode" into an
// http.HandlerFunc with the one error mapping. do returns the status and the
// body to encode (nil body with 204).
func (e Errors) handler(do func(w http.ResponseWriter, r *http.Request) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body, err := do(w, r)
		if err != nil {
			e.Write(w, r, err)
			return
		}
		if status == http.StatusNoContent || body == nil {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, body)
	}
}
