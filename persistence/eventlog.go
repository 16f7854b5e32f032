package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/audit"
)

// StoredEvent is one row of the outbox (which doubles as the event log).
type StoredEvent struct {
	Seq      int64
	ID       string
	Type     string
	Subject  string
	TenantID string
	Time     time.Time
	// Data is the JSON payload as stored (Postgres returns jsonb normalised).
	Data        json.RawMessage
	Traceparent string
	// PublishedAt is zero until the relay has handed the event to the bus.
	PublishedAt time.Time
}

const eventColumns = `seq, id, type, subject, tenant_id, time, data, traceparent, published_at`

var errFetchOutsideTx = errors.New("outbox: FetchUnpublished called outside a transaction")

// FetchUnpublished returns up to limit events not yet published, oldest
// first. It must run inside InTx: on Postgres the rows are locked FOR UPDATE
// SKIP LOCKED until the transaction ends, so relays on several nodes split
// the backlog instead of publishing the same rows; SQLite has one writer at
// a time anyway. Errors: IDENT_INTERNAL outside a transaction,
// IDENT_UNAVAILABLE when the database is unreachable.
func (db *DB) FetchUnpublished(ctx context.Context, limit int) ([]StoredEvent, error) {
	if !inTx(ctx) {
		return nil, core.Internal(errFetchOutsideTx)
	}
	q := `SELECT ` + eventColumns + ` FROM events WHERE published_at IS NULL ORDER BY seq LIMIT ?`
	if db.dialect == Postgres {
		q += ` FOR UPDATE SKIP LOCKED`
	}
	return db.queryEvents(ctx, q, limit)
}

// MarkPublished stamps the events with the given sequence numbers as
// published at `at`. Run it in the transaction that fetched them, after the
// broker acknowledged them. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (db *DB) MarkPublished(ctx context.Context, seqs []int64, at time.Time) error {
	if len(seqs) == 0 {
		return nil
	}
	args := make([]any, 0, len(seqs)+1)
	args = append(args, at.UTC())
	for _, s := range seqs {
		args = append(args, s)
	}
	_, err := db.conn(ctx).ExecContext(ctx,
		`UPDATE events SET published_at = ? WHERE seq IN (`+eventPlaceholders(len(seqs))+`)`, args...)
	return translate(err)
}

// RelayOutbox runs one relay step in its own transaction: it fetches up to
// limit unpublished events (see FetchUnpublished), hands them to publish,
// marks the first n published where n is publish's count, and commits. A
// crash after publishing but before the commit republishes those events
// later (at least once; consumers dedupe by id). publish's error is
// returned after the published prefix is committed.
//
// Unlike InTx it does not run the OnCommit hooks: the relay itself listens
// on them, and waking it for its own bookkeeping would make it spin.
// Errors: publish's error, else IDENT_UNAVAILABLE or IDENT_INTERNAL.
func (db *DB) RelayOutbox(ctx context.Context, limit int, now func() time.Time,
	publish func(ctx context.Context, events []StoredEvent) (int, error)) (int, error) {
	var published int
	var publishErr error
	err := db.bun.RunInTx(ctx, &sql.TxOptions{}, func(ctx context.Context, tx bun.Tx) error {
		ctx = context.WithValue(ctx, txKey{}, &txState{tx: tx})
		events, err := db.FetchUnpublished(ctx, limit)
		if err != nil || len(events) == 0 {
			return err
		}
		n, perr := publish(ctx, events)
		n = min(max(n, 0), len(events))
		publishErr = perr
		seqs := make([]int64, n)
		for i := range n {
			seqs[i] = events[i].Seq
		}
		if err := db.MarkPublished(ctx, seqs, now()); err != nil {
			return err
		}
		published = n
		return nil
	})
	if err != nil {
		return 0, translate(err)
	}
	return published, publishErr
}

// maxCountedBacklog caps the pending count: in a long broker outage the
// backlog can reach millions, and a scrape must stay a bounded index scan
// (the gauge then reads the cap while the lag gauge keeps growing).
const maxCountedBacklog = 1_000_000

// OutboxBacklog counts the events not yet published (up to
// maxCountedBacklog) and returns the time of the oldest of them, the head of
// the relays' queue (zero when none). Both queries read only the partial
// index events_unpublished_idx and take no locks, so they are cheap at any
// event-log size and count rows a relay is publishing right now.
// Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (db *DB) OutboxBacklog(ctx context.Context) (pending int64, oldest time.Time, err error) {
	// Ordered by seq, as the relay publishes: a poison event at the head
	// holds back everything behind it, and this is the age that grows.
	err = db.conn(ctx).QueryRowContext(ctx,
		`SELECT time FROM events WHERE published_at IS NULL ORDER BY seq LIMIT 1`).Scan(&oldest)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, translate(err)
	}
	if err := db.conn(ctx).QueryRowContext(ctx,
		`SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE published_at IS NULL LIMIT ?) AS pending`,
		maxCountedBacklog).Scan(&pending); err != nil {
		return 0, time.Time{}, translate(err)
	}
	if pending == 0 {
		// Published between the two queries.
		return 0, time.Time{}, nil
	}
	return pending, oldest.UTC(), nil
}

// InsertInbox records that consumer processed eventID and reports whether
// this is the first time. Call it inside the InTx that runs the consumer's
// handler, so the record commits exactly when the handler's effects do.
//
// Duplicates are detected with ON CONFLICT DO NOTHING and the affected row
// count rather than by catching the unique violation: on Postgres a failed
// statement aborts the whole transaction, which would then fail to commit.
// A concurrent duplicate waits on the first insert's key lock and then
// reports false. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (db *DB) InsertInbox(ctx context.Context, consumer, eventID string, now time.Time) (bool, error) {
	res, err := db.conn(ctx).ExecContext(ctx,
		`INSERT INTO inbox (consumer, event_id, processed_at) VALUES (?, ?, ?)
		 ON CONFLICT (consumer, event_id) DO NOTHING`, consumer, eventID, now.UTC())
	if err != nil {
		return false, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, translate(err)
	}
	return n == 1, nil
}

// ListStoredEvents returns whole outbox rows matching q, newest first (for
// tests and tools that need the traceparent and publication state).
// Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (db *DB) ListStoredEvents(ctx context.Context, q audit.Query) ([]StoredEvent, error) {
	var where []string
	var args []any
	if q.Type != "" {
		where = append(where, `type = ?`)
		args = append(args, q.Type)
	}
	if q.Subject != "" {
		where = append(where, `subject = ?`)
		args = append(args, q.Subject)
	}
	if !q.AllTenants {
		if len(q.TenantIDs) == 0 {
			return nil, nil // no tenant in reach: nothing to show
		}
		where = append(where, `tenant_id IN (`+eventPlaceholders(len(q.TenantIDs))+`)`)
		for _, id := range q.TenantIDs {
			args = append(args, id)
		}
	}
	if q.BeforeSeq > 0 {
		where = append(where, `seq < ?`)
		args = append(args, q.BeforeSeq)
	}
	query := `SELECT ` + eventColumns + ` FROM events`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY seq DESC`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	return db.queryEvents(ctx, query, args...)
}

// ListEvents implements audit.Store. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (db *DB) ListEvents(ctx context.Context, q audit.Query) ([]audit.Entry, error) {
	events, err := db.ListStoredEvents(ctx, q)
	if err != nil {
		return nil, err
	}
	entries := make([]audit.Entry, len(events))
	for i, e := range events {
		entries[i] = audit.Entry{Seq: e.Seq, Record: audit.Record{
			ID: e.ID, Type: e.Type, Subject: e.Subject, TenantID: e.TenantID, Time: e.Time, Data: e.Data,
		}}
	}
	return entries, nil
}

func (db *DB) queryEvents(ctx context.Context, query string, args ...any) ([]StoredEvent, error) {
	rows, err := db.conn(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []StoredEvent
	for rows.Next() {
		var e StoredEvent
		var data []byte
		var published sql.NullTime
		if err := rows.Scan(&e.Seq, &e.ID, &e.Type, &e.Subject, &e.TenantID, &e.Time, &data, &e.Traceparent, &published); err != nil {
			return nil, translate(err)
		}
		e.Time = e.Time.UTC()
		e.Data = json.RawMessage(data)
		if published.Valid {
			e.PublishedAt = published.Time.UTC()
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	return out, nil
}

// eventPlaceholders returns "?, ?, …" with n marks.
func eventPlaceholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}
