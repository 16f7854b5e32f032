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
	"strings"
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

// FindEverywhere lists "table.column" for every column of every table of the
// test database whose text contains needle (case-insensitively).
func FindEverywhere(t testing.TB, db *persistence.DB, needle string) []string {
	t.Helper()
	ctx := context.Background()
	bdb := db.Bun()
	type col struct{ table, column string }
	var cols []col
	if db.Dialect() == persistence.Postgres {
		rows, err := bdb.QueryContext(ctx,
			`SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()`)
		require.NoError(t, err)
		for rows.Next() {
			var c col
			require.NoError(t, rows.Scan(&c.table, &c.column))
			cols = append(cols, c)
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
	} else {
		var tables []string
		rows, err := bdb.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'`)
		require.NoError(t, err)
		for rows.Next() {
			var name string
			require.NoError(t, rows.Scan(&name))
			tables = append(tables, name)
		}
		require.NoError(t, rows.Close())
		for _, table := range tables {
			rows, err := bdb.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
			require.NoError(t, err)
			for rows.Next() {
				c := col{table: table}
				require.NoError(t, rows.Scan(&c.column))
				cols = append(cols, c)
			}
			require.NoError(t, rows.Close())
		}
	}
	require.NotEmpty(t, cols)
	tables := map[string]bool{}
	var hits []string
	for _, c := range cols {
		tables[c.table] = true
		q := `SELECT count(*) FROM "` + c.table + `" WHERE instr(lower(CAST("` + c.column + `" AS TEXT)), ?) > 0`
		if db.Dialect() == persistence.Postgres {
			q = `SELECT count(*) FROM "` + c.table + `" WHERE position(? in lower(CAST("` + c.column + `" AS text))) > 0`
		}
		var n int
		require.NoError(t, bdb.QueryRowContext(ctx, q, strings.ToLower(needle)).Scan(&n), "%s.%s", c.table, c.column)
		if n > 0 {
			hits = append(hits, c.table+"."+c.column)
		}
	}
	require.True(t, tables["users"] && tables["events"], "scanned %v", tables)
	return hits
}
