package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testEvents(t *testing.T, open dbtest.Opener) {
	t.Run("outbox is transactional", func(t *testing.T) { testOutboxTransactional(t, open(t)) })
	t.Run("round trip", func(t *testing.T) { testEventRoundTrip(t, open(t)) })
	t.Run("list filters and pagination", func(t *testing.T) { testEventListing(t, open(t)) })
	t.Run("fetch and mark published", func(t *testing.T) { testFetchAndMark(t, open(t)) })
	t.Run("relay step", func(t *testing.T) { testRelayOutbox(t, open(t)) })
	t.Run("outbox backlog", func(t *testing.T) { testOutboxBacklog(t, open(t)) })
	t.Run("inbox", func(t *testing.T) { testInbox(t, open(t)) })
}

var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

func event(typ, subject, tenant string, i int) core.Event {
	return core.NewEvent(t0.Add(time.Duration(i)*time.Second), typ, subject, tenant, map[string]any{"n": i, "tenantId": tenant})
}

func addEvents(t *testing.T, db *persistence.DB, events ...core.Event) {
	t.Helper()
	require.NoError(t, db.InTx(context.Background(), func(ctx context.Context) error {
		return db.AddEvents(ctx, events...)
	}))
}

func allEvents(t *testing.T, db *persistence.DB) []persistence.StoredEvent {
	t.Helper()
	evs, err := db.ListStoredEvents(context.Background(), audit.Query{AllTenants: true})
	require.NoError(t, err)
	return evs
}

func testOutboxTransactional(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	tenant := core.NewID()

	err := db.AddEvents(ctx, event("identity.test.v1", "s", tenant, 1))
	require.Error(t, err, "AddEvents outside a transaction must fail")
	require.Equal(t, core.KindInternal, core.KindOf(err))

	boom := errors.New("boom")
	err = db.InTx(ctx, func(ctx context.Context) error {
		require.NoError(t, db.AddEvents(ctx, event("identity.test.v1", "rolled-back", tenant, 2)))
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Empty(t, allEvents(t, db), "a rolled-back transaction leaves no event")

	committed := event("identity.test.v1", "committed", tenant, 3)
	addEvents(t, db, committed)
	evs := allEvents(t, db)
	require.Len(t, evs, 1)
	require.Equal(t, committed.ID, evs[0].ID)

	err = db.InTx(ctx, func(ctx context.Context) error {
		return db.AddEvents(ctx, core.Event{ID: core.NewID(), Type: "identity.test.v1", Subject: "s", Time: t0, Data: []string{"not", "an", "object"}})
	})
	require.Error(t, err, "data must be a JSON object")
	err = db.InTx(ctx, func(ctx context.Context) error {
		return db.AddEvents(ctx, core.Event{Type: "identity.test.v1", Subject: "s", Time: t0, Data: map[string]any{}})
	})
	require.Error(t, err, "an event needs an id")
	err = db.InTx(ctx, func(ctx context.Context) error {
		return db.AddEvents(ctx, core.NewEvent(t0, "tenant.role.changed.v1", "s", tenant, map[string]any{}))
	})
	require.Error(t, err, "only identity.* types go to the outbox (the relay's stream holds identity.>)")
	require.Len(t, allEvents(t, db), 1)
}

func testEventRoundTrip(t *testing.T, db *persistence.DB) {
	tenant := core.NewID()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	when := time.Date(2025, 3, 1, 10, 0, 0, 123456000, time.FixedZone("AFT", 4*3600+1800))
	evt := core.NewEvent(when, "identity.user.suspended.v1", "subject-1", tenant,
		map[string]any{"userId": "u", "nested": map[string]any{"list": []int{1, 2}}, "unicode": "کابل"})
	require.NoError(t, db.InTx(ctx, func(ctx context.Context) error { return db.AddEvents(ctx, evt) }))

	evs := allEvents(t, db)
	require.Len(t, evs, 1)
	got := evs[0]
	require.Positive(t, got.Seq)
	require.Equal(t, evt.ID, got.ID)
	require.Equal(t, evt.Type, got.Type)
	require.Equal(t, evt.Subject, got.Subject)
	require.Equal(t, tenant, got.TenantID)
	require.True(t, when.Equal(got.Time), "time %s != %s", got.Time, when)
	require.Equal(t, time.UTC, got.Time.Location())
	want, err := json.Marshal(evt.Data)
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(got.Data))
	require.Equal(t, "00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01", got.Traceparent)
	require.True(t, got.PublishedAt.IsZero())
}

func testEventListing(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	tenantA, tenantB := core.NewID(), core.NewID()
	var ids []string // in insertion (seq) order
	for i := range 12 {
		tenant, typ := tenantA, "identity.a.v1"
		if i%3 == 0 {
			tenant = tenantB
		}
		if i%2 == 0 {
			typ = "identity.b.v1"
		}
		e := event(typ, fmt.Sprintf("subject-%d", i%4), tenant, i)
		addEvents(t, db, e)
		ids = append(ids, e.ID)
	}
	platformWide := event("identity.license.module.created.v1", "ehr.core", "", 99)
	addEvents(t, db, platformWide)
	ids = append(ids, platformWide.ID)

	list := func(q audit.Query) []string {
		t.Helper()
		entries, err := db.ListEvents(ctx, q)
		require.NoError(t, err)
		var out []string
		for i, e := range entries {
			out = append(out, e.ID)
			if i > 0 {
				require.Less(t, e.Seq, entries[i-1].Seq, "newest first")
			}
		}
		return out
	}
	pick := func(keep func(i int) bool) []string {
		var out []string
		for i := len(ids) - 1; i >= 0; i-- {
			if keep(i) {
				out = append(out, ids[i])
			}
		}
		return out
	}
	isA := func(i int) bool { return i < 12 && i%3 != 0 }
	isB := func(i int) bool { return i < 12 && i%3 == 0 }

	cases := []struct {
		name string
		q    audit.Query
		want []string
	}{
		{"all tenants", audit.Query{AllTenants: true}, pick(func(int) bool { return true })},
		{"no tenant in reach", audit.Query{}, nil},
		{"one tenant", audit.Query{TenantIDs: []string{tenantA}}, pick(isA)},
		{"two tenants", audit.Query{TenantIDs: []string{tenantA, tenantB}}, pick(func(i int) bool { return i < 12 })},
		{"by type", audit.Query{AllTenants: true, Type: "identity.b.v1"}, pick(func(i int) bool { return i < 12 && i%2 == 0 })},
		{"by subject", audit.Query{AllTenants: true, Subject: "subject-1"}, pick(func(i int) bool { return i < 12 && i%4 == 1 })},
		{"type, subject and tenant", audit.Query{TenantIDs: []string{tenantB}, Type: "identity.b.v1", Subject: "subject-2"},
			pick(func(i int) bool { return isB(i) && i%2 == 0 && i%4 == 2 })},
		{"platform-wide type", audit.Query{AllTenants: true, Type: "identity.license.module.created.v1"}, []string{platformWide.ID}},
		{"no match", audit.Query{AllTenants: true, Type: "identity.none.v1"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, list(tc.q))
		})
	}

	t.Run("keyset pagination", func(t *testing.T) {
		want := pick(isA)
		var got []string
		q := audit.Query{TenantIDs: []string{tenantA}, Limit: 3}
		for pages := 0; ; pages++ {
			require.Less(t, pages, 10)
			entries, err := db.ListEvents(ctx, q)
			require.NoError(t, err)
			require.LessOrEqual(t, len(entries), 3)
			for _, e := range entries {
				got = append(got, e.ID)
			}
			if len(entries) < 3 {
				break
			}
			q.BeforeSeq = entries[len(entries)-1].Seq
		}
		require.Equal(t, want, got)
	})
}

func testFetchAndMark(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	tenant := core.NewID()
	var ids []string
	for i := range 5 {
		e := event("identity.test.v1", "s", tenant, i)
		addEvents(t, db, e)
		ids = append(ids, e.ID)
	}

	_, err := db.FetchUnpublished(ctx, 10)
	require.Error(t, err, "fetching unpublished rows needs a transaction (row locks)")

	require.NoError(t, db.InTx(ctx, func(ctx context.Context) error {
		evs, err := db.FetchUnpublished(ctx, 3)
		require.NoError(t, err)
		require.Len(t, evs, 3)
		for i, e := range evs {
			require.Equal(t, ids[i], e.ID, "oldest first")
		}
		return db.MarkPublished(ctx, []int64{evs[0].Seq, evs[1].Seq}, t0)
	}))
	require.NoError(t, db.InTx(ctx, func(ctx context.Context) error {
		evs, err := db.FetchUnpublished(ctx, 10)
		require.NoError(t, err)
		require.Len(t, evs, 3)
		require.Equal(t, ids[2:], []string{evs[0].ID, evs[1].ID, evs[2].ID})
		return nil
	}))
	published := 0
	for _, e := range allEvents(t, db) {
		if !e.PublishedAt.IsZero() {
			published++
			require.True(t, t0.Equal(e.PublishedAt))
		}
	}
	require.Equal(t, 2, published)
	require.NoError(t, db.MarkPublished(ctx, nil, t0), "marking nothing is a no-op")
}

func testRelayOutbox(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	hooks := 0
	db.OnCommit(func() { hooks++ })
	tenant := core.NewID()
	for i := range 4 {
		addEvents(t, db, event("identity.test.v1", "s", tenant, i))
	}
	hooks = 0
	now := func() time.Time { return t0 }

	n, err := db.RelayOutbox(ctx, 10, now, func(ctx context.Context, evs []persistence.StoredEvent) (int, error) {
		require.Len(t, evs, 4)
		return 0, nil
	})
	require.NoError(t, err)
	require.Zero(t, n)

	boom := errors.New("broker down")
	n, err = db.RelayOutbox(ctx, 10, now, func(ctx context.Context, evs []persistence.StoredEvent) (int, error) {
		return 1, boom // the first event went out, then the broker failed
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, 1, n)

	n, err = db.RelayOutbox(ctx, 2, now, func(ctx context.Context, evs []persistence.StoredEvent) (int, error) {
		require.Len(t, evs, 2, "limit applies")
		return len(evs), nil
	})
	require.NoError(t, err)
	require.Equal(t, 2, n)

	n, err = db.RelayOutbox(ctx, 10, now, func(ctx context.Context, evs []persistence.StoredEvent) (int, error) {
		require.Len(t, evs, 1)
		return len(evs), nil
	})
	require.NoError(t, err)
	require.Equal(t, 1, n)

	n, err = db.RelayOutbox(ctx, 10, now, func(ctx context.Context, evs []persistence.StoredEvent) (int, error) {
		t.Fatal("nothing left to publish")
		return 0, nil
	})
	require.NoError(t, err)
	require.Zero(t, n)
	for _, e := range allEvents(t, db) {
		require.False(t, e.PublishedAt.IsZero())
	}
	require.Zero(t, hooks, "the relay's own commits must not wake it")
}

func testOutboxBacklog(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	pending, oldest, err := db.OutboxBacklog(ctx)
	require.NoError(t, err)
	require.Zero(t, pending)
	require.True(t, oldest.IsZero())

	tenant := core.NewID()
	for i := range 3 {
		addEvents(t, db, event("identity.test.v1", "s", tenant, i))
	}
	pending, oldest, err = db.OutboxBacklog(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), pending)
	require.True(t, t0.Equal(oldest), "the head of the queue: %v", oldest)
	require.Equal(t, time.UTC, oldest.Location())

	n, err := db.RelayOutbox(ctx, 10, func() time.Time { return t0 }, func(ctx context.Context, evs []persistence.StoredEvent) (int, error) {
		// Another connection is not blocked by the relay's row locks
		// and still counts the rows being published.
		p, o, err := db.OutboxBacklog(context.Background())
		require.NoError(t, err)
		require.Equal(t, int64(3), p)
		require.True(t, t0.Equal(o))
		return 2, nil
	})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	pending, oldest, err = db.OutboxBacklog(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), pending)
	require.True(t, t0.Add(2*time.Second).Equal(oldest))

	_, err = db.RelayOutbox(ctx, 10, func() time.Time { return t0 }, func(ctx context.Context, evs []persistence.StoredEvent) (int, error) {
		return len(evs), nil
	})
	require.NoError(t, err)
	pending, oldest, err = db.OutboxBacklog(ctx)
	require.NoError(t, err)
	require.Zero(t, pending)
	require.True(t, oldest.IsZero())
}

func testInbox(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	id := core.NewID()
	insert := func(ctx context.Context, consumer, id string) bool {
		t.Helper()
		var fresh bool
		require.NoError(t, db.InTx(ctx, func(ctx context.Context) error {
			var err error
			fresh, err = db.InsertInbox(ctx, consumer, id, t0)
			return err
		}))
		return fresh
	}
	require.True(t, insert(ctx, "cache", id))
	require.False(t, insert(ctx, "cache", id), "the same consumer sees a duplicate")
	require.True(t, insert(ctx, "mailer", id), "another consumer is independent")

	// A duplicate inside a transaction leaves it usable (no aborted Postgres tx).
	other := core.NewID()
	require.NoError(t, db.InTx(ctx, func(ctx context.Context) error {
		fresh, err := db.InsertInbox(ctx, "cache", id, t0)
		require.NoError(t, err)
		require.False(t, fresh)
		fresh, err = db.InsertInbox(ctx, "cache", other, t0)
		require.NoError(t, err)
		require.True(t, fresh)
		return nil
	}))
	require.False(t, insert(ctx, "cache", other))

	// A rolled-back transaction does not record the event as processed.
	rolled := core.NewID()
	boom := errors.New("handler failed")
	err := db.InTx(ctx, func(ctx context.Context) error {
		fresh, err := db.InsertInbox(ctx, "cache", rolled, t0)
		require.NoError(t, err)
		require.True(t, fresh)
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.True(t, insert(ctx, "cache", rolled))
}
