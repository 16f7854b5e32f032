// Package audit serves the event log: every event the service emitted (the
// outbox keeps rows after publication) read back for the GraphQL `events`
// query (CONTRACT.md §5). SUPER_ADMIN sees every event, a TENANT_ADMIN only
// its own tenants' events.
package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Page sizes for ListEvents (CONTRACT.md §5: `first: Int = 50`).
const (
	DefaultFirst = 50
	MaxFirst     = 200
	// maxFilterLen bounds type and subject filters; both are short ids or
	// type names, so anything longer is a client bug.
	maxFilterLen = 200
)

// Record is one emitted event as the event log shows it.
type Record struct {
	ID       string
	Type     string
	Subject  string
	TenantID string
	Time     time.Time
	// Data is the event payload, a JSON object.
	Data json.RawMessage
}

// Entry is a Record with its position in the log (the outbox sequence).
type Entry struct {
	Seq int64
	Record
}

// Query selects events from the Store, newest first.
type Query struct {
	// Type and Subject filter exactly when not empty.
	Type    string
	Subject string
	// AllTenants lifts the tenant filter; otherwise only events whose tenant
	// id is in TenantIDs match (none when it is empty), so forgetting to set
	// a tenant can never widen a result.
	AllTenants bool
	TenantIDs  []string
	// BeforeSeq, when positive, keeps only events with a smaller sequence
	// (keyset pagination).
	BeforeSeq int64
	// Limit is the maximum number of entries returned.
	Limit int
}

// Store reads the event log.
type Store interface {
	// ListEvents returns the entries matching q ordered by Seq descending.
	ListEvents(ctx context.Context, q Query) ([]Entry, error)
}

// Filter is the caller's request (GraphQL `events` arguments).
type Filter struct {
	Type    string
	Subject string
	// First is the page size: 0 means DefaultFirst, else 1..MaxFirst.
	First int
	// After is the opaque EndCursor of the previous page ("" for the first).
	After string
}

// Page is one page of the event log, newest event first.
type Page struct {
	Items       []Record
	EndCursor   string
	HasNextPage bool
	// Cursors holds each item's cursor (Relay edges), parallel to Items.
	Cursors []string
}

// Service serves the event log.
type Service struct {
	store Store
	authz *core.Authorizer
}

// NewService returns a Service reading from store and deciding access with authz.
func NewService(store Store, authz *core.Authorizer) *Service {
	return &Service{store: store, authz: authz}
}

// ListEvents returns one page of events visible to the caller, newest first.
// Errors: IDENT_UNAUTHENTICATED without a valid credential, IDENT_FORBIDDEN
// unless the caller is SUPER_ADMIN or TENANT_ADMIN, IDENT_VALIDATION for a
// bad `first`, `after`, `type` or `subject` (named in Fields; type and
// subject must be valid UTF-8 without control characters), IDENT_UNAVAILABLE or
// IDENT_INTERNAL from the store.
func (s *Service) ListEvents(ctx context.Context, f Filter) (Page, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return Page{}, err
	}
	q := Query{Type: f.Type, Subject: f.Subject}
	switch {
	case acc.SuperAdmin:
		q.AllTenants = true
	case len(acc.AdminOf) > 0:
		q.TenantIDs = append([]string(nil), acc.AdminOf...)
	default:
		return Page{}, core.Forbidden("requires SUPER_ADMIN or TENANT_ADMIN")
	}
	if err := validateFilter(f); err != nil {
		return Page{}, err
	}
	first := f.First
	if first == 0 {
		first = DefaultFirst
	}
	if f.After != "" {
		seq, err := DecodeCursor(f.After)
		if err != nil {
			return Page{}, err
		}
		q.BeforeSeq = seq
	}
	// One extra row tells whether another page follows without a COUNT.
	q.Limit = first + 1
	entries, err := s.store.ListEvents(ctx, q)
	if err != nil {
		return Page{}, err
	}
	page := Page{HasNextPage: len(entries) > first}
	if page.HasNextPage {
		entries = entries[:first]
	}
	page.Items = make([]Record, 0, len(entries))
	page.Cursors = make([]string, 0, len(entries))
	for _, e := range entries {
		page.Items = append(page.Items, e.Record)
		page.Cursors = append(page.Cursors, EncodeCursor(e.Seq))
	}
	if n := len(page.Cursors); n > 0 {
		page.EndCursor = page.Cursors[n-1]
	}
	return page, nil
}

func validateFilter(f Filter) error {
	fields := map[string]string{}
	if f.First < 0 || f.First > MaxFirst {
		fields["first"] = "must be between 1 and " + strconv.Itoa(MaxFirst)
	}
	for name, v := range map[string]string{"type": f.Type, "subject": f.Subject} {
		if len(v) > maxFilterLen {
			fields[name] = "too long"
		} else if why := core.TextProblem(v, false); why != "" {
			fields[name] = why
		}
	}
	if len(fields) > 0 {
		return core.Invalid("invalid events query", fields)
	}
	return nil
}

// EncodeCursor returns the opaque cursor of the entry at seq: base64url of
// its decimal sequence number.
func EncodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(seq, 10)))
}

// DecodeCursor parses a cursor made by EncodeCursor; anything else is
// IDENT_VALIDATION on field "after".
func DecodeCursor(cursor string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, core.InvalidField("after", "malformed cursor")
	}
	seq, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || seq <= 0 || EncodeCursor(seq) != cursor {
		return 0, core.InvalidField("after", "malformed cursor")
	}
	return seq, nil
}
