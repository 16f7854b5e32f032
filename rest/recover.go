package rest

import (
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Recover turns a panic anywhere below it into a 500 problem+json without
// leaking internals; the stack goes to the log only.
func Recover(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v) // the server's own signal to abort a response
					}
					logger.ErrorContext(r.Context(), "panic serving request", "panic", v,
						"path", r.URL.Path, "stack", string(debug.Stack()),
						"request_id", core.RequestIDFrom(r.Context()))
					writeProblem(w, r, http.StatusInternalServerError, core.Internal(nil))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}
