// Package dbtest opens migrated, isolated databases for tests: a temporary
// SQLite file, or a fresh schema on a real Postgres server.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/persistence"
)

// DefaultPostgresURL is the local test server (trust auth, database test).
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Opener opens a fresh, migrated database for one test.
type Opener func(t testing.TB) *persistence.DB

// Dialects lists every backend a storage test must pass on.
func Dialects() map[string]Opener {
	return map[string]Opener{"sqlite": SQLite, "postgres": Postgres}
}

// SQLite returns a migrated database in a temporary file.
func SQLite(t testing.TB) *persistence.DB {
	t.Helper()
	return open(t, "sqlite://"+filepath.Join(t.TempDir(), "identity.db"))
}

// PostgresURL returns IDENTITY_TEST_POSTGRES_URL or the local default.
func PostgresURL() string {
	if u := os.Getenv("IDENTITY_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// NeedServer skips a test whose server is unreachable, except under CI=true,
// where a missing server fails the run.
func NeedServer(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %v", what, err)
	}
	t.Skipf("%s unavailable: %v", what, err)
}

// Postgres returns a migrated database in a fresh schema of the test server,
// dropped when the test ends.
func Postgres(t testing.TB) *persistence.DB {
	t.Helper()
	return open(t, PostgresSchemaURL(t))
}

// PostgresSchemaURL returns a database URL bound to a fresh schema (for
// tests that start whole service instances), dropped when the test ends.
func PostgresSchemaURL(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	base := PostgresURL()
	admin, err := persistence.Open(ctx, base)
	NeedServer(t, "PostgreSQL", err)
	schema := "t_" + randomHex(8)
	_, err = admin.Bun().ExecContext(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Bun().ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		_ = admin.Close()
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func open(t testing.TB, rawURL string) *persistence.DB {
	t.Helper()
	db, err := persistence.Open(context.Background(), rawURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Migrate(context.Background())
	require.NoError(t, err)
	return db
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NATSURL returns IDENTITY_TEST_NATS_URL or the local JetStream server.
func NATSURL() string {
	if u := os.Getenv("IDENTITY_TEST_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}
