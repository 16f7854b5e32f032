package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// This file holds the in-memory fakes of the federation ports and a fake
// IdP (discovery and token endpoints only) shared by the package's tests.

var fedT0 = time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)

// --- Store ---------------------------------------------------------------

type fakeTxKey struct{}

func inFakeTx(ctx context.Context) bool { return ctx.Value(fakeTxKey{}) != nil }

// fakeStore is an in-memory Store. InTx snapshots the state and restores it
// when fn fails, so a rolled-back link leaves nothing behind; AddEvents
// refuses to run outside a transaction, as the real outbox does.
type fakeStore struct {
	mu        sync.Mutex
	tenants   map[string]bool
	providers map[string]Provider // by id
	exts      map[string]ExternalIdentity
	users     map[string]user.User
	events    []core.Event
	upserts   []Provider // every UpsertProvider argument, as received

	// Injected failures.
	extErr       error // ExternalIdentity
	insertExtErr error // InsertExternalIdentity
	userByEmail  error // UserByEmailInTenant
}

func newFakeStore(tenants ...string) *fakeStore {
	s := &fakeStore{
		tenants: map[string]bool{}, providers: map[string]Provider{},
		exts: map[string]ExternalIdentity{}, users: map[string]user.User{},
	}
	for _, t := range tenants {
		s.tenants[t] = true
	}
	return s
}

func extKey(issuer, subject string) string { return issuer + "\x00" + subject }

func (s *fakeStore) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if inFakeTx(ctx) {
		return fn(ctx)
	}
	s.mu.Lock()
	providers, exts, users := maps.Clone(s.providers), maps.Clone(s.exts), maps.Clone(s.users)
	events := slices.Clone(s.events)
	s.mu.Unlock()
	if err := fn(context.WithValue(ctx, fakeTxKey{}, true)); err != nil {
		s.mu.Lock()
		s.providers, s.exts, s.users, s.events = providers, exts, users, events
		s.mu.Unlock()
		return err
	}
	return nil
}

func (s *fakeStore) AddEvents(ctx context.Context, events ...core.Event) error {
	if !inFakeTx(ctx) {
		return errors.New("fakeStore: AddEvents outside a transaction")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, events...)
	return nil
}

func (s *fakeStore) UpsertProvider(_ context.Context, p Provider) (Provider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upserts = append(s.upserts, p)
	if !s.tenants[p.TenantID] {
		return Provider{}, core.NotFound("tenant")
	}
	for id, old := range s.providers {
		if old.TenantID == p.TenantID && old.Slug == p.Slug {
			p.ID, p.CreatedAt = id, old.CreatedAt
		}
	}
	s.providers[p.ID] = p
	return p, nil
}

func (s *fakeStore) ProviderBySlug(_ context.Context, tenantID, slug string) (Provider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.providers {
		if p.TenantID == tenantID && p.Slug == slug {
			return p, nil
		}
	}
	return Provider{}, core.NotFound("OIDC provider")
}

func (s *fakeStore) ProviderByID(_ context.Context, id string) (Provider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.providers[id]
	if !ok {
		return Provider{}, core.NotFound("OIDC provider")
	}
	return p, nil
}

func (s *fakeStore) ExternalIdentity(_ context.Context, issuer, subject string) (ExternalIdentity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.extErr != nil {
		return ExternalIdentity{}, s.extErr
	}
	e, ok := s.exts[extKey(issuer, subject)]
	if !ok {
		return ExternalIdentity{}, core.NotFound("external identity")
	}
	return e, nil
}

func (s *fakeStore) InsertExternalIdentity(_ context.Context, e ExternalIdentity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.insertExtErr != nil {
		return s.insertExtErr
	}
	if _, ok := s.exts[extKey(e.Issuer, e.Subject)]; ok {
		return core.E(core.KindConflict, core.CodeConflict, "already linked")
	}
	s.exts[extKey(e.Issuer, e.Subject)] = e
	return nil
}

func (s *fakeStore) UserByID(_ context.Context, id string) (user.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return user.User{}, core.NotFound("user")
	}
	return u, nil
}

func (s *fakeStore) UserByEmailInTenant(_ context.Context, tenantID, email string) (user.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.userByEmail != nil {
		return user.User{}, s.userByEmail
	}
	for _, u := range s.users {
		if u.TenantID == tenantID && u.Email == email {
			return u, nil
		}
	}
	return user.User{}, core.NotFound("user")
}

func (s *fakeStore) InsertUser(_ context.Context, u user.User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.users {
		if o.TenantID == u.TenantID && o.Email == u.Email {
			return core.E(core.KindConflict, core.CodeEmailDuplicate, "email taken")
		}
	}
	s.users[u.ID] = u
	return nil
}

func (s *fakeStore) addUser(tenantID, email string) user.User {
	u := user.User{ID: core.NewID(), TenantID: tenantID, Email: email, FirstName: "Existing", LastName: "User",
		Status: user.StatusActive, CreatedAt: fedT0, UpdatedAt: fedT0}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = u
	return u
}

func (s *fakeStore) snapshot() (exts []ExternalIdentity, users []user.User, events []core.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.exts)), slices.Collect(maps.Values(s.users)), slices.Clone(s.events)
}

// --- FlowStore -----------------------------------------------------------

type fakeFlows struct {
	mu      sync.Mutex
	records map[string][]byte
	ttls    map[string]time.Duration
	err     error // returned by Put and Take when set
}

func newFakeFlows() *fakeFlows {
	return &fakeFlows{records: map[string][]byte{}, ttls: map[string]time.Duration{}}
}

func (f *fakeFlows) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.records[key] = slices.Clone(value)
	f.ttls[key] = ttl
	return nil
}

func (f *fakeFlows) Take(_ context.Context, key string) ([]byte, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, false, f.err
	}
	v, ok := f.records[key]
	delete(f.records, key)
	return v, ok, nil
}

func (f *fakeFlows) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.records)
}

func (f *fakeFlows) get(key string) ([]byte, time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.records[key]
	return v, f.ttls[key], ok
}

// putFlow stores a flow record under state as Start would.
func (f *fakeFlows) putFlow(t testing.TB, state string, rec flowRecord) {
	t.Helper()
	b, err := json.Marshal(rec)
	require.NoError(t, err)
	require.NoError(t, f.Put(context.Background(), recordKey(statePrefix, state), b, DefaultFlowTTL))
}

// --- Sealer --------------------------------------------------------------

type sealedSecret struct {
	plaintext []byte
	aad       string
}

// fakeSealer hands out opaque handles; the plaintext stays inside it, and
// Unwrap insists on the AAD the handle was wrapped with.
type fakeSealer struct {
	mu      sync.Mutex
	n       int
	sealed  map[string]sealedSecret
	wrapErr error
}

func newFakeSealer() *fakeSealer { return &fakeSealer{sealed: map[string]sealedSecret{}} }

func (s *fakeSealer) Wrap(plaintext, aad []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wrapErr != nil {
		return nil, s.wrapErr
	}
	s.n++
	h := fmt.Sprintf("sealed-%d", s.n)
	s.sealed[h] = sealedSecret{plaintext: slices.Clone(plaintext), aad: string(aad)}
	return []byte(h), nil
}

func (s *fakeSealer) Unwrap(wrapped, aad []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.sealed[string(wrapped)]
	if !ok || sec.aad != string(aad) {
		return nil, errors.New("fakeSealer: cannot unwrap")
	}
	return slices.Clone(sec.plaintext), nil
}

// --- SessionOpener -------------------------------------------------------

type sessionCall struct {
	UserID, IP, UserAgent string
	InTx                  bool
}

type fakeSessions struct {
	mu    sync.Mutex
	calls []sessionCall
	err   error
}

func (f *fakeSessions) OpenFederatedSession(ctx context.Context, userID, ip, userAgent string) (auth.TokenResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, sessionCall{UserID: userID, IP: ip, UserAgent: userAgent, InTx: inFakeTx(ctx)})
	if f.err != nil {
		return auth.TokenResponse{}, f.err
	}
	return auth.TokenResponse{AccessToken: "access-" + userID, RefreshToken: "refresh-" + userID,
		ExpiresIn: 15 * time.Minute, User: user.User{ID: userID}}, nil
}

func (f *fakeSessions) callsSoFar() []sessionCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// --- MembershipReader ----------------------------------------------------

type fakeMembers map[string][]core.Membership

func (m fakeMembers) MembershipsOfUser(_ context.Context, userID string) ([]core.Membership, error) {
	return m[userID], nil
}

// --- fake IdP --------------------------------------------------------------

// fakeIdP serves an OpenID discovery document (and a token endpoint that
// answers tokenStatus) and counts requests. discoveryStatus, when not 0,
// replaces the document by that status.
type fakeIdP struct {
	srv             *httptest.Server
	discoveryHits   atomic.Int32
	tokenHits       atomic.Int32
	discoveryStatus atomic.Int32
	tokenStatus     atomic.Int32
	wrongIssuer     atomic.Bool
	noTokenEndpoint atomic.Bool
	delay           atomic.Int64 // nanoseconds slept before answering discovery
}

func newFakeIdP(t testing.TB, tlsServer bool) *fakeIdP {
	t.Helper()
	idp := &fakeIdP{}
	idp.tokenStatus.Store(http.StatusBadRequest)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		idp.discoveryHits.Add(1)
		if d := time.Duration(idp.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if st := int(idp.discoveryStatus.Load()); st != 0 {
			http.Error(w, "unavailable", st)
			return
		}
		doc := map[string]any{
			"issuer":                                idp.issuer(),
			"authorization_endpoint":                idp.srv.URL + "/authorize",
			"token_endpoint":                        idp.srv.URL + "/token",
			"jwks_uri":                              idp.srv.URL + "/keys",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"code_challenge_methods_supported":      []string{"S256"},
		}
		if idp.wrongIssuer.Load() {
			doc["issuer"] = "https://other-issuer.example.org"
		}
		if idp.noTokenEndpoint.Load() {
			delete(doc, "token_endpoint")
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		idp.tokenHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(idp.tokenStatus.Load()))
		_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"bad code"}`))
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[]}`))
	})
	if tlsServer {
		idp.srv = httptest.NewTLSServer(mux)
	} else {
		idp.srv = httptest.NewServer(mux)
	}
	t.Cleanup(idp.srv.Close)
	return idp
}

func (idp *fakeIdP) issuer() string { return idp.srv.URL }

// --- fixture ---------------------------------------------------------------

type fixture struct {
	svc      *Service
	store    *fakeStore
	flows    *fakeFlows
	sealer   *fakeSealer
	sessions *fakeSessions
	members  fakeMembers
	clock    *core.FixedClock
	idp      *fakeIdP

	platform, tenantA, tenantB         string
	superAdmin, adminA, adminB, nurseA string
}

// testConfig is the Config of newFixture: plain-HTTP issuers allowed, a
// short breaker timeout.
func testConfig(clock core.Clock) Config {
	return Config{
		PublicURL:           "https://id.example.org/",
		AllowInsecureIssuer: true,
		IdPTimeout:          2 * time.Second,
		OpenTimeout:         50 * time.Millisecond,
		Clock:               clock,
	}
}

func newFixture(t testing.TB) *fixture {
	return newFixtureWith(t, func(*Config) {})
}

func newFixtureWith(t testing.TB, configure func(*Config)) *fixture {
	t.Helper()
	f := &fixture{
		platform: core.NewID(), tenantA: core.NewID(), tenantB: core.NewID(),
		superAdmin: core.NewID(), adminA: core.NewID(), adminB: core.NewID(), nurseA: core.NewID(),
		flows: newFakeFlows(), sealer: newFakeSealer(), sessions: &fakeSessions{},
		clock: core.NewFixedClock(fedT0),
	}
	f.store = newFakeStore(f.platform, f.tenantA, f.tenantB)
	f.members = fakeMembers{
		f.superAdmin: {{UserID: f.superAdmin, TenantID: f.platform, Roles: []string{core.RoleSuperAdmin}}},
		f.adminA:     {{UserID: f.adminA, TenantID: f.tenantA, Roles: []string{core.RoleTenantAdmin}}},
		f.adminB:     {{UserID: f.adminB, TenantID: f.tenantB, Roles: []string{core.RoleTenantAdmin}}},
		f.nurseA:     {{UserID: f.nurseA, TenantID: f.tenantA, Roles: []string{"nurse"}}},
	}
	f.idp = newFakeIdP(t, false)
	cfg := testConfig(f.clock)
	configure(&cfg)
	f.svc = f.newService(cfg)
	return f
}

func (f *fixture) newService(cfg Config) *Service {
	return NewService(Deps{Store: f.store, Flows: f.flows, Sealer: f.sealer, Sessions: f.sessions,
		Authz: core.NewAuthorizer(f.members)}, cfg)
}

// as returns a context whose caller is user userID of tenantID.
func as(userID, tenantID string) context.Context {
	return core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser, ID: userID,
		TenantID: tenantID, TenantIDs: []string{tenantID}})
}

func (f *fixture) asSuperAdmin() context.Context { return as(f.superAdmin, f.platform) }
func (f *fixture) asAdminA() context.Context     { return as(f.adminA, f.tenantA) }

// seedProvider stores a provider of tenantID at issuer directly (no
// discovery), its secret sealed as ConfigureProvider seals it.
func (f *fixture) seedProvider(t testing.TB, tenantID, slug, issuer string, returnURLs ...string) Provider {
	t.Helper()
	sealed, err := f.sealer.Wrap([]byte("client-secret-"+slug), secretAAD(tenantID, slug))
	require.NoError(t, err)
	now := f.clock.Now()
	p := Provider{
		ID: core.NewID(), TenantID: tenantID, Slug: slug, Issuer: issuer, ClientID: "client-" + slug,
		ClientSecret: sealed, Scopes: []string{"openid", "email", "profile"},
		AllowedEmailDomains: []string{}, ReturnURLs: returnURLs, CreatedAt: now, UpdatedAt: now,
	}
	f.store.mu.Lock()
	f.store.providers[p.ID] = p
	f.store.mu.Unlock()
	return p
}

// requireCode fails unless err carries code.
func requireCode(t testing.TB, code string, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, core.CodeOf(err), "%v", err)
}

// requireFields fails unless err is IDENT_VALIDATION naming exactly fields.
func requireFields(t testing.TB, err error, fields ...string) {
	t.Helper()
	requireCode(t, core.CodeValidation, err)
	got := slices.Sorted(maps.Keys(core.AsError(err).Fields))
	slices.Sort(fields)
	require.Equal(t, fields, got, "%v", err)
}
