package rest

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Check is one readiness dependency (database, Valkey, NATS).
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// healthz answers 200 while the process lives.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// readyz answers 200 only when every dependency answers within 2 s; the body
// names each dependency's state so an operator sees which one failed.
func readyz(checks []Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status := http.StatusOK
		deps := map[string]string{}
		for _, c := range checks {
			if err := c.Ping(ctx); err != nil {
				deps[c.Name] = "unavailable"
				status = http.StatusServiceUnavailable
				continue
			}
			deps[c.Name] = "ok"
		}
		overall := "ok"
		if status != http.StatusOK {
			overall = "unavailable"
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": overall, "dependencies": deps})
	}
}
