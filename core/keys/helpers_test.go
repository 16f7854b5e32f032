package keys_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// t0 is the default test time: well before the first quarterly cron firing.
var t0 = time.Date(2025, 11, 1, 9, 0, 0, 0, time.UTC)

const adminID = "0190a000-0000-7000-8000-000000000001"

// memberships is the tenant-directory port for the Authorizer: adminID is a
// SUPER_ADMIN of the platform tenant, everyone else has no role.
type memberships struct{}

func (memberships) MembershipsOfUser(_ context.Context, userID string) ([]core.Membership, error) {
	if userID == adminID {
		return []core.Membership{{UserID: userID, TenantID: "platform", Roles: []string{core.RoleSuperAdmin}}}, nil
	}
	return nil, nil
}

func adminCtx() context.Context {
	return core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser, ID: adminID, TenantID: "platform"})
}

func newMaster(t testing.TB) *keys.MasterKey {
	t.Helper()
	b := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(b)
	m, err := keys.NewMasterKey(b)
	require.NoError(t, err)
	return m
}

// newService builds a Service over store (usually a *persistence.KeyStore).
func newService(t testing.TB, store keys.Store, master keys.Wrapper, clock core.Clock, cfg keys.Config) *keys.Service {
	t.Helper()
	svc, err := keys.NewService(store, master, clock, core.NewAuthorizer(memberships{}), nil, cfg)
	require.NoError(t, err)
	return svc
}

// initService is newService followed by Init.
func initService(t testing.TB, db *persistence.DB, master keys.Wrapper, clock core.Clock) *keys.Service {
	t.Helper()
	svc := newService(t, persistence.NewKeyStore(db), master, clock, keys.Config{})
	require.NoError(t, svc.Init(context.Background()))
	return svc
}

// sharedDBs opens two handles on one fresh, migrated database, as two
// service instances would.
func sharedDBs(t testing.TB, dialect string) (*persistence.DB, *persistence.DB) {
	t.Helper()
	var url string
	if dialect == "postgres" {
		url = dbtest.PostgresSchemaURL(t)
	} else {
		url = "sqlite://" + filepath.Join(t.TempDir(), "shared.db")
	}
	open := func() *persistence.DB {
		db, err := persistence.Open(context.Background(), url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	a := open()
	_, err := a.Migrate(context.Background())
	require.NoError(t, err)
	return a, open()
}

func listKeys(t testing.TB, db *persistence.DB) map[keys.State][]keys.StoredKey {
	t.Helper()
	ks, err := persistence.NewKeyStore(db).ListKeys(context.Background(), keys.PurposeJWT)
	require.NoError(t, err)
	m := map[keys.State][]keys.StoredKey{}
	for _, k := range ks {
		m[k.State] = append(m[k.State], k)
	}
	return m
}

type eventRow struct {
	Type     string `bun:"type"`
	Subject  string `bun:"subject"`
	TenantID string `bun:"tenant_id"`
	Data     string `bun:"data"`
}

func rotatedEvents(t testing.TB, db *persistence.DB) []eventRow {
	t.Helper()
	var rows []eventRow
	err := db.Bun().NewRaw(`SELECT type, subject, tenant_id, data FROM events WHERE type = ? ORDER BY seq`, keys.EventJWKSRotated).
		Scan(context.Background(), &rows)
	require.NoError(t, err)
	return rows
}

func countEvents(t testing.TB, db *persistence.DB) int {
	t.Helper()
	var n int
	require.NoError(t, db.Bun().NewRaw(`SELECT COUNT(*) FROM events`).Scan(context.Background(), &n))
	return n
}

// jwksKids returns the kids of a JWKS document in order.
func jwksKids(t testing.TB, doc []byte) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(doc, &set))
	kids := make([]string, len(set.Keys))
	for i, k := range set.Keys {
		kids[i] = k.Kid
	}
	return kids
}

func forEachDialect(t *testing.T, fn func(t *testing.T, open dbtest.Opener)) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) { fn(t, open) })
	}
}
