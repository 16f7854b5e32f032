package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ghasi-ehealth/identity-service/cache"
	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/keys/keystest"
	"github.com/ghasi-ehealth/identity-service/core/password"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

const (
	testIssuer   = "https://identity.test"
	testAudience = "ghasi-platform"
	goodPassword = "correct horse battery staple"
)

var testT0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// lowParams keeps argon2id cheap in tests.
var lowParams = password.Params{Memory: 64, Time: 1, Threads: 1}

// countingHasher wraps the real hasher and counts the hashes computed.
type countingHasher struct {
	inner                  *password.Hasher
	verifies, dummies, new atomic.Int32
	// fail, when set, is returned by Verify and VerifyDummy.
	fail error
}

func (h *countingHasher) Verify(ctx context.Context, plain, encoded string) (bool, bool, error) {
	if h.fail != nil {
		return false, false, h.fail
	}
	h.verifies.Add(1)
	return h.inner.Verify(ctx, plain, encoded)
}

func (h *countingHasher) VerifyDummy(ctx context.Context, plain string) error {
	if h.fail != nil {
		return h.fail
	}
	h.dummies.Add(1)
	return h.inner.VerifyDummy(ctx, plain)
}

func (h *countingHasher) Hash(ctx context.Context, plain string) (string, error) {
	h.new.Add(1)
	return h.inner.Hash(ctx, plain)
}

// computed is the number of password checks (real or dummy) so far.
func (h *countingHasher) computed() int32 { return h.verifies.Load() + h.dummies.Load() }

// flakySet is a revocation set whose writes fail while broken is set.
type flakySet struct {
	core.RevocationSet
	broken atomic.Bool
}

var errSetDown = errors.New("revocation set unreachable")

func (f *flakySet) Revoke(ctx context.Context, ids []string, ttl time.Duration) error {
	if f.broken.Load() {
		return errSetDown
	}
	return f.RevocationSet.Revoke(ctx, ids, ttl)
}

func (f *flakySet) IsRevoked(ctx context.Context, id string) (bool, error) {
	if f.broken.Load() {
		return false, errSetDown
	}
	return f.RevocationSet.IsRevoked(ctx, id)
}

// devices records DeviceRevoker calls.
type devices struct {
	mu    sync.Mutex
	users []string
}

func (d *devices) RevokeAllDevicesOfUser(_ context.Context, userID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users = append(d.users, userID)
	return nil
}

// env is one database with an auth service over real stores, the real
// keyring, issuer and verifier, the in-process limiter and revocation set.
type env struct {
	db       *persistence.DB
	sessions *persistence.SessionStore
	users    *persistence.UserStore
	dir      *persistence.TenancyStore
	clock    *core.FixedClock
	hasher   *countingHasher
	limiter  *cache.LocalLimiter
	set      *flakySet
	devices  *devices
	issuer   *token.Issuer
	verifier *token.Verifier
	spans    *tracetest.SpanRecorder
	svc      *auth.Service
	deps     auth.Deps
	cfg      auth.Config
}

func newEnv(t testing.TB, open dbtest.Opener) *env {
	t.Helper()
	db := open(t)
	clock := core.NewFixedClock(testT0)
	ks, mk := keystest.New(t, db, clock)
	e := &env{
		db: db, sessions: persistence.NewSessionStore(db), users: persistence.NewUserStore(db),
		dir: persistence.NewTenancyStore(db), clock: clock,
		hasher:  &countingHasher{inner: password.NewHasher(lowParams, 4, 0)},
		limiter: cache.NewLocalLimiter(clock),
		set:     &flakySet{RevocationSet: cache.NewLocalRevocations(clock)},
		devices: &devices{},
		issuer:  token.NewIssuer(ks, testIssuer, testAudience, clock, 0),
		spans:   tracetest.NewSpanRecorder(),
	}
	e.verifier = token.NewVerifier(ks, testIssuer, testAudience, clock, auth.TokenRevocation{Set: e.set})
	e.deps = auth.Deps{
		Store: e.sessions, Users: e.sessions, Directory: e.dir, Hasher: e.hasher, Issuer: e.issuer,
		Limiter: e.limiter, Revocations: e.set, Devices: e.devices, Clock: clock,
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans)),
	}
	e.cfg = auth.Config{RefreshKey: mk.DeriveSecret(auth.RefreshKeyLabel)}
	e.svc = auth.NewService(e.deps, e.cfg)
	return e
}

// withMetrics rebuilds the service with m.
func (e *env) withMetrics(m *telemetry.Metrics) {
	e.deps.Metrics = m
	e.svc = auth.NewService(e.deps, e.cfg)
}

func (e *env) tenant(t testing.TB, slug string) string {
	t.Helper()
	tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: slug, CreatedAt: testT0, UpdatedAt: testT0}
	require.NoError(t, e.dir.CreateTenant(context.Background(), tn))
	return tn.ID
}

func (e *env) node(t testing.TB, tenantID string, parent *string) string {
	t.Helper()
	n := tenancy.Node{ID: core.NewID(), TenantID: tenantID, ParentID: parent, Name: "n", Kind: "facility", CreatedAt: testT0}
	require.NoError(t, e.dir.CreateNode(context.Background(), n))
	return n.ID
}

func (e *env) member(t testing.TB, userID, tenantID, nodeID string) {
	t.Helper()
	require.NoError(t, e.dir.UpsertMembership(context.Background(),
		core.Membership{UserID: userID, TenantID: tenantID, NodeID: nodeID, Roles: []string{"nurse"}}, testT0))
}

// user stores a user of tenantID with goodPassword (hashed with params).
func (e *env) user(t testing.TB, tenantID, email string, status user.Status) user.User {
	t.Helper()
	return e.userWith(t, tenantID, email, status, lowParams)
}

func (e *env) userWith(t testing.TB, tenantID, email string, status user.Status, params password.Params) user.User {
	t.Helper()
	hash, err := password.NewHasher(params, 1, 0).Hash(context.Background(), goodPassword)
	require.NoError(t, err)
	u := user.User{ID: core.NewID(), TenantID: tenantID, Email: email, FirstName: "Ada", LastName: "Lovelace",
		Status: status, PasswordHash: hash, CreatedAt: testT0, UpdatedAt: testT0}
	require.NoError(t, e.users.InsertUser(context.Background(), u))
	return u
}

// ipCtx is a request context from ip.
func ipCtx(ip string) context.Context { return core.WithClientIP(context.Background(), ip) }

// login logs u in with the good password from ip.
func (e *env) login(t testing.TB, email, ip string) auth.TokenResponse {
	t.Helper()
	resp, err := e.svc.Login(ipCtx(ip), auth.LoginInput{Email: email, Password: goodPassword})
	require.NoError(t, err)
	return resp
}

// as is a request context authenticated by accessToken (verified for real).
func (e *env) as(t testing.TB, accessToken string) context.Context {
	t.Helper()
	p, err := e.verifier.Verify(context.Background(), accessToken)
	require.NoError(t, err)
	return core.WithPrincipal(ipCtx("198.51.100.1"), p)
}

// claims decodes the payload of a JWT without verifying it.
func claims(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	require.Len(t, parts, 3)
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

// sessionOf returns the session id in an access token's jti.
func sessionOf(t testing.TB, jwt string) string {
	t.Helper()
	sid, ok := auth.SessionIDOf(claims(t, jwt)["jti"].(string))
	require.True(t, ok)
	return sid
}

// requireCode asserts err is a core error with code (and kind).
func requireCode(t testing.TB, err error, kind core.Kind, code string) *core.Error {
	t.Helper()
	require.Error(t, err)
	var ce *core.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, code, ce.Code, "error: %v", err)
	require.Equal(t, kind, ce.Kind)
	return ce
}

// event is a stored event as the tests look at it.
type event struct {
	Subject, TenantID string
	Data              map[string]any
}

// validEvents validates every stored event of typ against its schema (there
// must be at least one) and returns them oldest first.
func validEvents(t testing.TB, db *persistence.DB, typ string) []event {
	t.Helper()
	envs := eventtest.RequireValidStored(t, db, typ)
	out := make([]event, 0, len(envs))
	for _, env := range envs {
		var data map[string]any
		require.NoError(t, json.Unmarshal(env.Data, &data))
		out = append(out, event{Subject: env.Subject, TenantID: env.TenantID, Data: data})
	}
	return out
}

// countEvents is the number of stored events of typ.
func countEvents(t testing.TB, db *persistence.DB, typ string) int {
	t.Helper()
	stored, err := db.ListStoredEvents(context.Background(), audit.Query{Type: typ, AllTenants: true})
	require.NoError(t, err)
	return len(stored)
}

// forDialects runs fn on SQLite and Postgres.
func forDialects(t *testing.T, fn func(t *testing.T, e *env)) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) { fn(t, newEnv(t, open)) })
	}
}

// sqliteOnly is for tests whose subject does not depend on the dialect.
var sqliteOnly dbtest.Opener = dbtest.SQLite
