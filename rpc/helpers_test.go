package rpc

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ghasi-ehealth/identity-service/core"
)

// fakeCore implements every port with canned answers. It records what it was
// called with and the principal it found in the context; err and panicValue
// make every method fail. The mutex matters: the handler runs on a server
// goroutine and the race detector does not see the socket in between.
type fakeCore struct {
	mu         sync.Mutex
	err        error
	panicValue any
	// requirePrincipal makes the fake authorize like core does.
	requirePrincipal bool

	principal *core.Principal
	calls     []any
}

func (f *fakeCore) enter(ctx context.Context, input any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := core.PrincipalFrom(ctx); ok {
		f.principal = p
	}
	f.calls = append(f.calls, input)
	if f.panicValue != nil {
		panic(f.panicValue)
	}
	if f.requirePrincipal {
		if _, err := core.RequirePrincipal(ctx); err != nil {
			return err
		}
	}
	return f.err
}

func (f *fakeCore) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeCore) lastCall() (any, *core.Principal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return nil, f.principal
	}
	return f.calls[len(f.calls)-1], f.principal
}

func (f *fakeCore) EffectiveLicenses(ctx context.Context, q EffectiveLicensesQuery) ([]EffectiveModule, error) {
	if err := f.enter(ctx, q); err != nil {
		return nil, err
	}
	return []EffectiveModule{
		{Code: "ehr.core", Status: "active", Granted: true, Scope: "inherit_down", SourceNodeID: "node-root", AssignmentID: "asg-1"},
		{Code: "lab.orders", Status: "suspended", Granted: false, Scope: "exact", SourceNodeID: q.NodeID, AssignmentID: "asg-2"},
	}, nil
}

func (f *fakeCore) CheckModuleAccess(ctx context.Context, q ModuleAccessQuery) (ModuleAccess, error) {
	if err := f.enter(ctx, q); err != nil {
		return ModuleAccess{}, err
	}
	return ModuleAccess{Granted: true, Status: "trial"}, nil
}

func (f *fakeCore) ExchangeToken(ctx context.Context, req TokenExchangeRequest) (ExchangedToken, error) {
	if err := f.enter(ctx, req); err != nil {
		return ExchangedToken{}, err
	}
	return ExchangedToken{
		AccessToken:     "at-123",
		IssuedTokenType: "urn:ietf:params:oauth:token-type:access_token",
		TokenType:       "Bearer",
		ExpiresIn:       15 * time.Minute,
	}, nil
}

func (f *fakeCore) VerifyAPIKey(ctx context.Context, key string) (APIKeyVerification, error) {
	if err := f.enter(ctx, key); err != nil {
		return APIKeyVerification{}, err
	}
	return APIKeyVerification{Valid: true, KeyID: "key-1", TenantID: "tenant-1", Scopes: []string{"tenant:users:read", "tenant:licensing:read"}}, nil
}

func (f *fakeCore) deps() Deps {
	return Deps{Licensing: f, TokenExchange: f, APIKeys: f}
}

// protocol is one way a connect-go client can talk to the server.
type protocol struct {
	name string
	opts []connect.ClientOption
	// contentType is what the server should see (for GET: none).
	contentType string
	method      string
}

// protocols lists every protocol and codec combination the contract promises.
func protocols() []protocol {
	return []protocol{
		{"connect+proto", nil, "application/proto", http.MethodPost},
		{"connect+json", []connect.ClientOption{connect.WithProtoJSON()}, "application/json", http.MethodPost},
		{"grpc+proto", []connect.ClientOption{connect.WithGRPC()}, "application/grpc", http.MethodPost},
		{"grpc+json", []connect.ClientOption{connect.WithGRPC(), connect.WithProtoJSON()}, "application/grpc+json", http.MethodPost},
		{"grpcweb+proto", []connect.ClientOption{connect.WithGRPCWeb()}, "application/grpc-web+proto", http.MethodPost},
		{"grpcweb+json", []connect.ClientOption{connect.WithGRPCWeb(), connect.WithProtoJSON()}, "application/grpc-web+json", http.MethodPost},
	}
}

// seenRequest is what the test middleware observed of the last request.
type seenRequest struct {
	mu          sync.Mutex
	protoMajor  int
	method      string
	contentType string
}

func (s *seenRequest) get() (int, string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.protoMajor, s.method, s.contentType
}

// observe is a middleware that records the last request's HTTP version,
// method and content type.
func (s *seenRequest) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.protoMajor, s.method, s.contentType = r.ProtoMajor, r.Method, r.Header.Get("Content-Type")
		s.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// withPrincipal stands in for the shared authentication middleware.
func withPrincipal(p *core.Principal) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(core.WithPrincipal(r.Context(), p)))
		})
	}
}

// testServer is Mount behind an HTTP/1.1 + h2c listener, as the lead wires it.
type testServer struct {
	url    string
	client *http.Client
}

// startServer mounts deps on a fresh mux; wrap middlewares apply in order,
// the last one outermost.
func startServer(t *testing.T, deps Deps, opts Options, wrap ...func(http.Handler) http.Handler) testServer {
	t.Helper()
	mux := http.NewServeMux()
	Mount(mux, deps, opts)
	var h http.Handler = mux
	for _, w := range wrap {
		h = w(h)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)

	// The client speaks HTTP/2 with prior knowledge, as gRPC clients do.
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return testServer{url: srv.URL, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// logRecord is one captured log line with the principal of the context it
// was logged with (proving the request's context reached the logger).
type logRecord struct {
	level     slog.Level
	msg       string
	attrs     map[string]string
	principal *core.Principal
}

// captureLog is a slog.Handler that keeps records for assertions.
type captureLog struct {
	mu      *sync.Mutex
	records *[]logRecord
}

func newCaptureLog() (*slog.Logger, captureLog) {
	c := captureLog{mu: new(sync.Mutex), records: new([]logRecord)}
	return slog.New(c), c
}

func (c captureLog) Enabled(context.Context, slog.Level) bool { return true }
func (c captureLog) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c captureLog) WithGroup(string) slog.Handler            { return c }

func (c captureLog) Handle(ctx context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	rec.principal, _ = core.PrincipalFrom(ctx)
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.records = append(*c.records, rec)
	return nil
}

func (c captureLog) all() []logRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]logRecord(nil), *c.records...)
}
