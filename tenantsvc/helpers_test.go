package tenantsvc

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
)

// Compile-time checks that Client implements the ports.
var (
	_ core.MembershipReader = (*Client)(nil)
	_ tenancy.Hierarchy     = (*Client)(nil)
)

// fakeTenantService implements CONTRACT.md §7 over raw JSON bodies keyed by
// id; an unknown id is a 404. override, when set, answers every request.
type fakeTenantService struct {
	mu         sync.Mutex
	identities map[string]string
	ancestors  map[string]string
	override   http.HandlerFunc
	headers    []http.Header

	requests atomic.Int32
	mux      *http.ServeMux
}

func newFake(t *testing.T) (*fakeTenantService, *httptest.Server) {
	t.Helper()
	f := &fakeTenantService{identities: map[string]string{}, ancestors: map[string]string{}, mux: http.NewServeMux()}
	f.mux.HandleFunc("GET /internal/identity/providers/{userId}/identity", func(w http.ResponseWriter, r *http.Request) {
		f.answer(w, f.identities, r.PathValue("userId"))
	})
	f.mux.HandleFunc("GET /internal/hierarchy/nodes/{nodeId}/ancestors", func(w http.ResponseWriter, r *http.Request) {
		f.answer(w, f.ancestors, r.PathValue("nodeId"))
	})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeTenantService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	f.mu.Lock()
	f.headers = append(f.headers, r.Header.Clone())
	override := f.override
	f.mu.Unlock()
	if override != nil {
		override(w, r)
		return
	}
	f.mux.ServeHTTP(w, r)
}

func (f *fakeTenantService) answer(w http.ResponseWriter, bodies map[string]string, id string) {
	f.mu.Lock()
	body, ok := bodies[id]
	f.mu.Unlock()
	if !ok {
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(body))
}

func (f *fakeTenantService) setIdentity(userID, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.identities[userID] = body
}

func (f *fakeTenantService) setAncestors(nodeID, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ancestors[nodeID] = body
}

func (f *fakeTenantService) setOverride(h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.override = h
}

func (f *fakeTenantService) lastHeader() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.headers) == 0 {
		return nil
	}
	return f.headers[len(f.headers)-1]
}

// status answers every request with code.
func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// body answers every request with 200 and b.
func body(b string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(b))
	}
}

// hang blocks until the client gives up (or 5 s pass).
func hang(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(5 * time.Second):
		w.WriteHeader(http.StatusOK)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newClient builds a Client for srv with fast test settings, adjusted by mod.
func newClient(t *testing.T, srv *httptest.Server, mod func(*Options)) (*Client, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	opts := Options{
		HTTPClient:     srv.Client(),
		Timeout:        500 * time.Millisecond,
		RetryBackoff:   5 * time.Millisecond,
		BreakerOpenFor: 100 * time.Millisecond,
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(srv.URL, opts)
	require.NoError(t, err)
	return c, logs
}

func requireKind(t *testing.T, err error, kind core.Kind) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, kind.String(), core.KindOf(err).String(), "error: %v", err)
}

func ptr[T any](v T) *T { return &v }

// callAncestors is a one-line call used by the resilience tests.
func callAncestors(c *Client, nodeID string) error {
	_, err := c.Ancestors(context.Background(), nodeID)
	return err
}
