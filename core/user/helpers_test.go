package user_test

import (
	"context"
	"encoding/json"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/core/password"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

const publicURL = "https://id.example.org"

var testT0 = time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)

// revokeCall is one SessionRevoker call.
type revokeCall struct {
	UserID, Reason string
}

// recordingSessions is a SessionRevoker that records calls. It writes one
// outbox row per call through the sink, which fails outside a transaction:
// so a successful call proves it ran inside the service's transaction.
type recordingSessions struct {
	mu    sync.Mutex
	calls []revokeCall
	sink  core.EventSink
	err   error
}

func (r *recordingSessions) RevokeAllForUser(ctx context.Context, userID, reason string) error {
	if r.err != nil {
		return r.err
	}
	if err := r.sink.AddEvents(ctx, core.NewEvent(testT0, "identity.test.sessions_revoked.v1", userID, "",
		map[string]any{"userId": userID, "reason": reason})); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, revokeCall{userID, reason})
	return nil
}

func (r *recordingSessions) Calls() []revokeCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]revokeCall(nil), r.calls...)
}

// env is one database with tenants A (self-registration on), B (off) and the
// platform tenant, and the users superAdmin, adminA, adminB and memberA.
type env struct {
	db       *persistence.DB
	store    *persistence.UserStore
	dir      *persistence.DirectoryStore
	clock    *core.FixedClock
	sessions *recordingSessions
	svc      *user.Service

	platform, tenantA, tenantB          string
	superAdmin, adminA, adminB, memberA string
}

func newEnv(t *testing.T, open dbtest.Opener) *env {
	t.Helper()
	db := open(t)
	e := &env{
		db: db, store: persistence.NewUserStore(db), dir: persistence.NewDirectoryStore(db),
		clock: core.NewFixedClock(testT0), sessions: &recordingSessions{sink: db},
	}
	policy, err := password.NewPolicy("")
	require.NoError(t, err)
	e.svc = user.NewService(e.store, core.NewAuthorizer(e.dir),
		hasher(),
		policy, e.sessions, e.clock,
		user.Config{PublicURL: publicURL + "/", TokenKey: []byte("0123456789abcdef0123456789abcdef")})
	e.platform = e.tenant(t, "platform", false)
	e.tenantA = e.tenant(t, "clinic-a", true)
	e.tenantB = e.tenant(t, "clinic-b", false)
	e.superAdmin = e.member(t, e.platform, "root@example.org", core.RoleSuperAdmin)
	e.adminA = e.member(t, e.tenantA, "admin@a.example.org", core.RoleTenantAdmin)
	e.adminB = e.member(t, e.tenantB, "admin@b.example.org", core.RoleTenantAdmin)
	e.memberA = e.member(t, e.tenantA, "nurse@a.example.org", "nurse")
	return e
}

func (e *env) tenant(t *testing.T, slug string, selfReg bool) string {
	t.Helper()
	tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: slug, SelfRegistration: selfReg, CreatedAt: testT0, UpdatedAt: testT0}
	require.NoError(t, e.dir.CreateTenant(context.Background(), tn))
	return tn.ID
}

// member inserts an active user of tenantID holding role there.
func (e *env) member(t *testing.T, tenantID, email, role string) string {
	t.Helper()
	u := e.insertUser(t, tenantID, email, user.StatusActive)
	require.NoError(t, e.dir.AddMembership(context.Background(), core.Membership{UserID: u.ID, TenantID: tenantID, Roles: []string{role}}))
	return u.ID
}

// insertUser stores a user directly (no event), in the given state.
func (e *env) insertUser(t *testing.T, tenantID, email string, status user.Status) user.User {
	t.Helper()
	u := user.User{ID: core.NewID(), TenantID: tenantID, Email: email, FirstName: "First", LastName: "Last",
		Status: status, PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		CreatedAt: testT0, UpdatedAt: testT0}
	require.NoError(t, e.store.InsertUser(context.Background(), u))
	return u
}

// as returns a context whose principal is user id of tenantID.
func (e *env) as(id, tenantID string) context.Context {
	return core.WithPrincipal(context.Background(), &core.Principal{
		Type: core.PrincipalUser, ID: id, TenantID: tenantID, TenantIDs: []string{tenantID},
	})
}

func (e *env) asSuper() context.Context  { return e.as(e.superAdmin, e.platform) }
func (e *env) asAdminA() context.Context { return e.as(e.adminA, e.tenantA) }

// get reads a user straight from the store.
func (e *env) get(t *testing.T, id string) user.User {
	t.Helper()
	u, err := e.store.UserByID(context.Background(), id)
	require.NoError(t, err)
	return u
}

// events returns the stored events of type typ about subject, oldest first.
func (e *env) events(t *testing.T, typ, subject string) []persistence.StoredEvent {
	t.Helper()
	evs, err := e.db.ListStoredEvents(context.Background(), audit.Query{Type: typ, Subject: subject, AllTenants: true})
	require.NoError(t, err)
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs
}

// eventCount counts every stored event.
func (e *env) eventCount(t *testing.T) int {
	t.Helper()
	evs, err := e.db.ListStoredEvents(context.Background(), audit.Query{AllTenants: true})
	require.NoError(t, err)
	return len(evs)
}

// token returns the verification token of the latest registered event of userID.
func (e *env) token(t *testing.T, userID string) string {
	t.Helper()
	evs := e.events(t, user.EventRegistered, userID)
	require.NotEmpty(t, evs)
	var data user.RegisteredData
	require.NoError(t, json.Unmarshal(evs[len(evs)-1].Data, &data))
	u, err := url.Parse(data.VerificationURL)
	require.NoError(t, err)
	return u.Query().Get("token")
}

// forEachDialect runs fn against SQLite and Postgres.
func forEachDialect(t *testing.T, fn func(t *testing.T, e *env)) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) { fn(t, newEnv(t, open)) })
	}
}

func ptr[T any](v T) *T { return &v }

// requireCode asserts err is a core error with code.
func requireCode(t *testing.T, code string, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, core.CodeOf(err), "error: %v", err)
}

// hasher is a cheap argon2id hasher for tests.
func hasher() *password.Hasher {
	return password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 4, time.Second)
}
