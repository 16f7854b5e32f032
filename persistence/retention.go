package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/retention"
)

// RetentionStore deletes records whose life has ended (retention.Store).
// The indexes its statements need are in migration 0012_retention.
type RetentionStore struct{ *DB }

var _ retention.Store = (*RetentionStore)(nil)

// NewRetentionStore returns the retention store on db.
func NewRetentionStore(db *DB) *RetentionStore { return &RetentionStore{DB: db} }

// retentionDelete describes the batched DELETE of one kind. On Postgres:
//
//	DELETE FROM <table> WHERE <key> = ANY(ARRAY(SELECT <pick> FROM <from> WHERE <due> LIMIT ? FOR UPDATE SKIP LOCKED))
//
// The ARRAY subquery runs once and the outer DELETE then probes the key's
// index (or, for ctid, fetches the rows directly); the plainer
// "<key> IN (SELECT …)" lets the planner hash-join the batch against a
// sequential scan of the whole table, which costs a full scan per batch
// while a backlog is cleared. SKIP LOCKED lets instances sweeping at once
// split the rows instead of queueing behind each other, and leaves a row a
// request is updating for the next sweep. SQLite has no row locks (it
// serialises writers) and plans "IN (SELECT …)" as key lookups:
//
//	DELETE FROM <table> WHERE <key> IN (SELECT <pick> FROM <from> WHERE <due> LIMIT ?)
//
// due holds cutoffs placeholders, each bound to the same cutoff.
type retentionDelete struct {
	table, key, pick, from, due string
	cutoffs                     int
	// physical: the table has no single-column key (the inbox); rows are
	// picked by their physical id, ctid on Postgres and rowid on SQLite.
	physical bool
}

var retentionDeletes = map[retention.Kind]retentionDelete{
	// The tokens of sessions past their grace, before the sessions: the
	// foreign key has no ON DELETE, and deleting tokens separately keeps
	// every statement within the batch size however many tokens a session
	// collected.
	retention.KindRefreshTokens: {
		table: "refresh_tokens", key: "hash", pick: "hash", from: "refresh_tokens",
		due:     "session_id IN (SELECT id FROM sessions WHERE expires_at < ? OR revoked_at < ?)",
		cutoffs: 2,
	},
	// A session ended at its expiry or its revocation, whichever came first
	// (a session may be revoked after it expired, e.g. by a suspension).
	// One with a token left is skipped; the next sweep takes it.
	retention.KindSessions: {
		table: "sessions", key: "id", pick: "s.id", from: "sessions s",
		due: "(s.expires_at < ? OR s.revoked_at < ?)" +
			" AND NOT EXISTS (SELECT 1 FROM refresh_tokens rt WHERE rt.session_id = s.id)",
		cutoffs: 2,
	},
	retention.KindVerificationTokens: {
		table: "verification_tokens", key: "id", pick: "id", from: "verification_tokens",
		due: "(expires_at < ? OR used_at < ?)", cutoffs: 2,
	},
	retention.KindMFAChallenges: {
		table: "mfa_challenges", key: "id", pick: "id", from: "mfa_challenges",
		due: "expires_at < ?", cutoffs: 1,
	},
	retention.KindWebAuthnCeremonies: {
		table: "webauthn_ceremonies", key: "id", pick: "id", from: "webauthn_ceremonies",
		due: "expires_at < ?", cutoffs: 1,
	},
	retention.KindInbox: {
		table: "inbox", from: "inbox", due: "processed_at < ?", cutoffs: 1, physical: true,
	},
}

// statement renders d for dialect.
func (d retentionDelete) statement(dialect Dialect) string {
	key, pick := d.key, d.pick
	if dialect == SQLite {
		if d.physical {
			key, pick = "rowid", "rowid"
		}
		return "DELETE FROM " + d.table + " WHERE " + key + " IN (SELECT " + pick + " FROM " + d.from +
			" WHERE " + d.due + " LIMIT ?)"
	}
	if d.physical {
		key, pick = "ctid", "ctid"
	}
	return "DELETE FROM " + d.table + " WHERE " + key + " = ANY(ARRAY(SELECT " + pick + " FROM " + d.from +
		" WHERE " + d.due + " LIMIT ? FOR UPDATE SKIP LOCKED))"
}

// DeleteExpired deletes at most limit rows of kind that ended before
// `before`, in one statement (retention.Store). It joins the transaction
// ctx carries, if any; the sweeper calls it outside one, so each batch
// commits on its own and holds its locks only while it runs. Errors:
// IDENT_UNAVAILABLE when the database cannot be reached; IDENT_INTERNAL for
// an unknown kind, a limit below 1 or another database failure.
func (s *RetentionStore) DeleteExpired(ctx context.Context, kind retention.Kind, before time.Time, limit int) (int, error) {
	d, ok := retentionDeletes[kind]
	if !ok {
		return 0, core.Internal(fmt.Errorf("retention: unknown kind %q", kind))
	}
	if limit < 1 {
		return 0, core.Internal(fmt.Errorf("retention: batch limit %d is below 1", limit))
	}
	args := make([]any, 0, d.cutoffs+1)
	for range d.cutoffs {
		args = append(args, before.UTC())
	}
	args = append(args, limit)
	res, err := s.bound(ctx).ExecContext(ctx, d.statement(s.dialect), args...)
	if err != nil {
		return 0, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, translate(err)
	}
	return int(n), nil
}
