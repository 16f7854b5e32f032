package persistence

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// sqlConn is database/sql's query surface, shared by *sql.DB and *sql.Tx.
type sqlConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// bound returns the transaction (or pool) of ctx with statements bound by
// the driver rather than formatted into the SQL text by bun. Hot paths
// (login, refresh, token verification fallbacks) use it: identical SQL text
// lets pgx cache the prepared statement per connection, so Postgres parses
// and plans each statement once instead of on every call. Statements use
// `?` placeholders, rewritten to `$n` for Postgres.
func (db *DB) bound(ctx context.Context) boundConn {
	var c sqlConn = db.bun.DB
	if st, ok := ctx.Value(txKey{}).(*txState); ok {
		c = st.tx.Tx
	}
	return boundConn{c: c, db: db}
}

type boundConn struct {
	c  sqlConn
	db *DB
}

func (b boundConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return b.c.ExecContext(ctx, b.db.rebind(query), args...)
}

func (b boundConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return b.c.QueryContext(ctx, b.db.rebind(query), args...)
}

func (b boundConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return b.c.QueryRowContext(ctx, b.db.rebind(query), args...)
}

// rebind rewrites `?` placeholders to `$1…$n` on Postgres (memoised; the
// statements are constants). Queries must not contain a literal '?'.
func (db *DB) rebind(query string) string {
	if db.dialect != Postgres {
		return query
	}
	if q, ok := db.rebound.Load(query); ok {
		return q.(string)
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	out := b.String()
	db.rebound.Store(query, out)
	return out
}
