// Package persistence is the relational storage adapter: bun over
// database/sql, Postgres through pgx's stdlib driver and SQLite through the
// pure-Go modernc driver. It owns migrations, the unit of work (InTx), the
// outbox table and the translation of driver errors into core error kinds.
package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/uptrace/bun"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Dialect names the SQL flavour behind a DB.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// DB is the process's one database handle. bun and the outbox share it, so a
// state change and its event commit in one transaction.
type DB struct {
	bun     *bun.DB
	dialect Dialect
	// afterCommit hooks run after every successful top-level commit (the
	// outbox relay uses one to wake up without polling latency).
	afterCommit []func()
	// rebound memoises Postgres placeholder rewrites (see bound).
	rebound sync.Map
}

// ParseURL splits a database URL (CONTRACT.md §1) into dialect and driver DSN.
func ParseURL(raw string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := url.Parse(raw); err != nil {
			return "", "", fmt.Errorf("malformed postgres URL: %w", err)
		}
		return Postgres, raw, nil
	case strings.HasPrefix(raw, "sqlite://"):
		path := strings.TrimPrefix(raw, "sqlite://")
		if path == "" {
			return "", "", errors.New("sqlite URL needs a path, e.g. sqlite://./data/identity.db or sqlite://:memory:")
		}
		return SQLite, path, nil
	default:
		return "", "", errors.New("must start with postgres://, postgresql:// or sqlite://")
	}
}

// Open connects to the database named by rawURL. For SQLite files the parent
// directory is created. Migrations are not applied; call Migrate.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	dialect, dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	var sqldb *sql.DB
	var bdb *bun.DB
	switch dialect {
	case Postgres:
		sqldb, err = sql.Open("pgx", dsn)
		if err != nil {
			return nil, err
		}
		sqldb.SetMaxOpenConns(32)
		sqldb.SetMaxIdleConns(16)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		bdb = bun.NewDB(sqldb, pgdialect.New())
	case SQLite:
		sqldb, err = openSQLite(dsn)
		if err != nil {
			return nil, err
		}
		bdb = bun.NewDB(sqldb, sqlitedialect.New())
	}
	db := &DB{bun: bdb, dialect: dialect}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqldb.PingContext(pingCtx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("connect to %s: %w", dialect, err)
	}
	return db, nil
}

func openSQLite(path string) (*sql.DB, error) {
	// WAL lets readers proceed during a write; immediate transactions take
	// the write lock up front so two writers queue on busy_timeout instead
	// of deadlocking on a lock upgrade.
	const pragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate&_time_format=sqlite"
	if path == ":memory:" {
		db, err := sql.Open("sqlite", "file::memory:?"+pragmas)
		if err != nil {
			return nil, err
		}
		// Each connection to :memory: is its own database: keep exactly one.
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
		return db, nil
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(8)
	return db, nil
}

// Dialect reports which database this is.
func (db *DB) Dialect() Dialect { return db.dialect }

// Bun exposes the bun handle to adapters in this module (tests, relay).
func (db *DB) Bun() *bun.DB { return db.bun }

// Ping checks that the database answers (readiness).
func (db *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := db.bun.PingContext(ctx); err != nil {
		return core.Unavailable(err) // any ping failure means "not ready"
	}
	return nil
}

// Close releases the connection pool.
func (db *DB) Close() error { return db.bun.Close() }

// OnCommit registers hook to run after every successful top-level commit.
// Register hooks during wiring, before the DB is used concurrently.
func (db *DB) OnCommit(hook func()) { db.afterCommit = append(db.afterCommit, hook) }
