package persistence

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

//go:embed migrations
var migrationFS embed.FS

// migrationLockID is the Postgres advisory lock that serialises migrations
// when several instances start at once.
const migrationLockID = 0x1de7_1717

// Migrate applies every embedded migration of the DB's dialect that has not
// been applied yet, each in its own transaction. It is idempotent and safe to
// run from several processes at once (Postgres waits on an advisory lock;
// SQLite serialises writers itself). It returns the versions it applied.
func (db *DB) Migrate(ctx context.Context) ([]string, error) {
	files, err := fs.Glob(migrationFS, "migrations/"+string(db.dialect)+"/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)

	conn, err := db.bun.Conn(ctx)
	if err != nil {
		return nil, translate(err)
	}
	defer conn.Close()
	if db.dialect == Postgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", migrationLockID); err != nil {
			return nil, translate(err)
		}
		defer func() {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", migrationLockID)
		}()
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version text PRIMARY KEY, applied_at TIMESTAMP NOT NULL)`); err != nil {
		return nil, translate(err)
	}
	var applied []string
	for _, file := range files {
		version := strings.TrimSuffix(file[strings.LastIndex(file, "/")+1:], ".sql")
		done, err := db.applyMigration(ctx, conn, file, version)
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", version, err)
		}
		if done {
			applied = append(applied, version)
		}
	}
	return applied, nil
}

func (db *DB) applyMigration(ctx context.Context, conn bun.Conn, file, version string) (bool, error) {
	body, err := migrationFS.ReadFile(file)
	if err != nil {
		return false, err
	}
	applied := false
	err = conn.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = ?", version).Scan(&n); err != nil || n > 0 {
			return err
		}
		for _, stmt := range splitStatements(string(body)) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", version, time.Now().UTC())
		applied = err == nil
		return err
	})
	return applied, translate(err)
}

// splitStatements splits a migration file on semicolons that end a line.
// Migrations keep to plain DDL (no function bodies), so this is enough.
func splitStatements(sql string) []string {
	var out []string
	var b strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		b.WriteString(line)
		b.WriteString("\n")
		if strings.HasSuffix(trimmed, ";") {
			if s := strings.TrimSpace(b.String()); s != ";" {
				out = append(out, s)
			}
			b.Reset()
		}
	}
	if s := strings.TrimSpace(b.String()); s != "" {
		out = append(out, s)
	}
	return out
}
