package device_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/device"
	"github.com/ghasi-ehealth/identity-service/core/keys/keystest"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
	"github.com/ghasi-ehealth/identity-service/telemetry"
	"github.com/ghasi-ehealth/identity-service/telemetry/telemetrytest"
)

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// roles is the membership port: user id → tenant → roles.
type roles map[string]map[string][]string

func (r roles) MembershipsOfUser(_ context.Context, userID string) ([]core.Membership, error) {
	var out []core.Membership
	for tenant, rs := range r[userID] {
		out = append(out, core.Membership{UserID: userID, TenantID: tenant, Roles: rs})
	}
	return out, nil
}

// env is one database with a device service over the real store and a real
// keyring holding the device CA.
type env struct {
	db      *persistence.DB
	store   *persistence.DeviceStore
	clock   *core.FixedClock
	svc     *device.Service
	reader  *sdkmetric.ManualReader
	roles   roles
	tenantA string
	tenantB string
	owner   string // user in tenant A
	other   string // user in tenant A, no role
	adminA  string
	adminB  string
	super   string
}

func newEnv(t *testing.T, open dbtest.Opener, cfg device.Config) *env {
	t.Helper()
	db := open(t)
	ctx := context.Background()
	clock := core.NewFixedClock(t0)
	ks, _ := keystest.New(t, db, clock)
	reader := sdkmetric.NewManualReader()
	m, err := telemetry.NewMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	require.NoError(t, err)

	e := &env{db: db, store: persistence.NewDeviceStore(db), clock: clock, reader: reader, roles: roles{}}
	dir := persistence.NewDirectoryStore(db)
	users := persistence.NewUserStore(db)
	tenant := func(slug string) string {
		tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: slug, CreatedAt: t0, UpdatedAt: t0}
		require.NoError(t, dir.CreateTenant(ctx, tn))
		return tn.ID
	}
	e.tenantA, e.tenantB = tenant("a"), tenant("b")
	mkUser := func(tenantID, email string) string {
		u := user.User{ID: core.NewID(), TenantID: tenantID, Email: email, FirstName: "A", LastName: "B",
			Status: user.StatusActive, CreatedAt: t0, UpdatedAt: t0}
		require.NoError(t, users.InsertUser(ctx, u))
		return u.ID
	}
	e.owner, e.other = mkUser(e.tenantA, "owner@example.org"), mkUser(e.tenantA, "other@example.org")
	e.adminA, e.adminB, e.super = mkUser(e.tenantA, "adm-a@example.org"), mkUser(e.tenantB, "adm-b@example.org"), core.NewID()
	e.roles[e.adminA] = map[string][]string{e.tenantA: {core.RoleTenantAdmin}}
	e.roles[e.adminB] = map[string][]string{e.tenantB: {core.RoleTenantAdmin}}
	e.roles[e.super] = map[string][]string{"platform": {core.RoleSuperAdmin}}
	e.svc = device.NewService(e.store, core.NewAuthorizer(e.roles), ks, clock, m, cfg)
	return e
}

// as returns a context for user id acting in tenant.
func as(id, tenant string) context.Context {
	return core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser, ID: id, TenantID: tenant})
}

func (e *env) ownerCtx() context.Context  { return as(e.owner, e.tenantA) }
func (e *env) adminACtx() context.Context { return as(e.adminA, e.tenantA) }
func (e *env) adminBCtx() context.Context { return as(e.adminB, e.tenantB) }

func pemOf(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func p256PEM(t testing.TB) (string, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return pemOf(t, &k.PublicKey), k
}

func p384PEM(t testing.TB) string {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	return pemOf(t, &k.PublicKey)
}

func rsaPEM(t testing.TB, bits int) string {
	//nolint:gosec // a deliberately weak key for the rejection test
	k, err := rsa.GenerateKey(rand.Reader, bits)
	require.NoError(t, err)
	return pemOf(t, &k.PublicKey)
}

func ed25519PEM(t testing.TB) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pemOf(t, pub)
}

// register registers a P-256 device of the owner.
func (e *env) register(t *testing.T, fp string) device.Device {
	t.Helper()
	p, _ := p256PEM(t)
	d, err := e.svc.Register(e.ownerCtx(), device.RegisterInput{Fingerprint: fp, PublicKeyPEM: p, Name: "phone", Platform: "android"})
	require.NoError(t, err)
	return d
}

// inState registers a device and drives it to st.
func (e *env) inState(t *testing.T, fp string, st device.Status) device.Device {
	t.Helper()
	d := e.register(t, fp)
	steps := map[device.Status][]string{
		device.StatusUntrusted:    nil,
		device.StatusTrusted:      {"trust"},
		device.StatusOfflineBound: {"trust", "bind"},
		device.StatusRevoked:      {"trust", "bind", "revoke"},
	}[st]
	for _, s := range steps {
		require.NoError(t, e.do(s, d.ID), s)
	}
	got, err := e.store.DeviceByID(context.Background(), d.ID)
	require.NoError(t, err)
	require.Equal(t, st, got.Status)
	return got
}

// do runs one state-machine operation as the party allowed to run it.
func (e *env) do(op, id string) error {
	var err error
	switch op {
	case "trust":
		_, err = e.svc.Trust(e.adminACtx(), id)
	case "bind":
		_, err = e.svc.BindOffline(e.ownerCtx(), id)
	case "revoke":
		_, err = e.svc.Revoke(e.ownerCtx(), id)
	}
	return err
}

func (e *env) countEvents(t testing.TB, typ string) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.Bun().NewRaw(`SELECT COUNT(*) FROM events WHERE type = ?`, typ).Scan(context.Background(), &n))
	return n
}

func (e *env) binds(t testing.TB) int64 {
	t.Helper()
	return telemetrytest.CounterTotal(t, e.reader, telemetry.MetricDeviceBind)
}

func forEachDialect(t *testing.T, fn func(t *testing.T, open dbtest.Opener)) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) { fn(t, open) })
	}
}

// The composition root passes *device.Service as auth.Deps.Devices.
var _ auth.DeviceRevoker = (*device.Service)(nil)
