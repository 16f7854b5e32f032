package audit_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// directory stands in for the tenant directory port (local tables or
// tenant-service): user id → memberships.
type directory map[string][]core.Membership

func (d directory) MembershipsOfUser(_ context.Context, userID string) ([]core.Membership, error) {
	return d[userID], nil
}

type fixture struct {
	svc                    *audit.Service
	db                     *persistence.DB
	tenantA, tenantB       string
	super, adminA, adminAB string
	member                 string
	idsA, idsB, idsGlobal  []string // newest first
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{
		db: dbtest.SQLite(t), tenantA: core.NewID(), tenantB: core.NewID(),
		super: core.NewID(), adminA: core.NewID(), adminAB: core.NewID(), member: core.NewID(),
	}
	platform := core.NewID()
	dir := directory{
		f.super:   {{UserID: f.super, TenantID: platform, Roles: []string{core.RoleSuperAdmin}}},
		f.adminA:  {{UserID: f.adminA, TenantID: f.tenantA, Roles: []string{core.RoleTenantAdmin}}},
		f.adminAB: {{UserID: f.adminAB, TenantID: f.tenantA, Roles: []string{core.RoleTenantAdmin}}, {UserID: f.adminAB, TenantID: f.tenantB, Roles: []string{"NURSE", core.RoleTenantAdmin}}},
		f.member:  {{UserID: f.member, TenantID: f.tenantA, Roles: []string{"DOCTOR"}}},
	}
	f.svc = audit.NewService(f.db, core.NewAuthorizer(dir))

	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	var events []core.Event
	for i := range 9 {
		tenant, typ := f.tenantA, "identity.user.suspended.v1"
		switch i % 3 {
		case 1:
			tenant, typ = f.tenantB, "identity.user.reactivated.v1"
		case 2:
			tenant, typ = "", "identity.license.module.updated.v1"
		}
		e := core.NewEvent(t0.Add(time.Duration(i)*time.Minute), typ, fmt.Sprintf("subject-%d", i%2), tenant, map[string]any{"i": i})
		events = append(events, e)
	}
	require.NoError(t, f.db.InTx(context.Background(), func(ctx context.Context) error {
		return f.db.AddEvents(ctx, events...)
	}))
	for i := len(events) - 1; i >= 0; i-- {
		switch events[i].TenantID {
		case f.tenantA:
			f.idsA = append(f.idsA, events[i].ID)
		case f.tenantB:
			f.idsB = append(f.idsB, events[i].ID)
		default:
			f.idsGlobal = append(f.idsGlobal, events[i].ID)
		}
	}
	return f
}

func as(userID string) context.Context {
	return core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser, ID: userID})
}

func ids(p audit.Page) []string {
	var out []string
	for _, r := range p.Items {
		out = append(out, r.ID)
	}
	return out
}

func TestListEventsAuthorization(t *testing.T) {
	f := newFixture(t)
	badToken := core.WithAuthError(context.Background(), core.Unauthenticated(nil))
	serviceAccount := core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalServiceAccount, ID: core.NewID(), TenantID: f.tenantA})
	restricted := core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser, ID: f.super, Restricted: true})

	cases := []struct {
		name     string
		ctx      context.Context
		wantCode string
		want     func() []string
	}{
		{"no credential", context.Background(), core.CodeUnauthenticated, nil},
		{"invalid credential", badToken, core.CodeUnauthenticated, nil},
		{"MFA-enrolment-only credential", restricted, core.CodeForbidden, nil},
		{"ordinary user", as(f.member), core.CodeForbidden, nil},
		{"user without memberships", as(core.NewID()), core.CodeForbidden, nil},
		{"service account", serviceAccount, core.CodeForbidden, nil},
		{"tenant admin sees its tenant only", as(f.adminA), "", func() []string { return f.idsA }},
		{"admin of two tenants sees both", as(f.adminAB), "", func() []string { return merge(f.idsA, f.idsB) }},
		{"super admin sees everything", as(f.super), "", func() []string { return merge(f.idsA, f.idsB, f.idsGlobal) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page, err := f.svc.ListEvents(tc.ctx, audit.Filter{})
			if tc.wantCode != "" {
				require.Error(t, err)
				require.Equal(t, tc.wantCode, core.CodeOf(err))
				return
			}
			require.NoError(t, err)
			require.ElementsMatch(t, tc.want(), ids(page))
			require.False(t, page.HasNextPage)
			for i := 1; i < len(page.Items); i++ {
				require.False(t, page.Items[i].Time.After(page.Items[i-1].Time), "newest first")
			}
		})
	}
}

// merge concatenates id lists (compared as sets; order is checked by time).
func merge(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func TestListEventsRecordShape(t *testing.T) {
	f := newFixture(t)
	page, err := f.svc.ListEvents(as(f.adminA), audit.Filter{First: 1})
	require.NoError(t, err)
	require.Len(t, page.Items, 1)
	r := page.Items[0]
	require.Equal(t, f.idsA[0], r.ID)
	require.Equal(t, "identity.user.suspended.v1", r.Type)
	require.Equal(t, f.tenantA, r.TenantID)
	require.NotEmpty(t, r.Subject)
	require.Equal(t, time.UTC, r.Time.Location())
	require.JSONEq(t, `{"i": 6}`, string(r.Data))
	require.True(t, page.HasNextPage)
	require.Equal(t, []string{page.EndCursor}, page.Cursors)
}

func TestListEventsFiltersAndPages(t *testing.T) {
	f := newFixture(t)
	ctx := as(f.super)

	page, err := f.svc.ListEvents(ctx, audit.Filter{Type: "identity.user.reactivated.v1"})
	require.NoError(t, err)
	require.Equal(t, f.idsB, ids(page))

	page, err = f.svc.ListEvents(ctx, audit.Filter{Type: "identity.user.suspended.v1", Subject: "subject-0"})
	require.NoError(t, err)
	for _, r := range page.Items {
		require.Equal(t, "subject-0", r.Subject)
		require.Equal(t, "identity.user.suspended.v1", r.Type)
	}
	require.Len(t, page.Items, 2) // events 0 and 6

	var all []string
	filter := audit.Filter{First: 2}
	for pages := 1; ; pages++ {
		require.LessOrEqual(t, pages, 5)
		page, err := f.svc.ListEvents(ctx, filter)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Items), 2)
		all = append(all, ids(page)...)
		if !page.HasNextPage {
			require.Equal(t, 5, pages, "9 events in pages of 2")
			break
		}
		filter.After = page.EndCursor
	}
	want, err := f.svc.ListEvents(ctx, audit.Filter{First: audit.MaxFirst})
	require.NoError(t, err)
	require.Equal(t, ids(want), all, "pages concatenate to the full list")

	// A tenant admin paging cannot step outside its tenant.
	page, err = f.svc.ListEvents(as(f.adminA), audit.Filter{First: 1, After: filter.After})
	require.NoError(t, err)
	for _, r := range page.Items {
		require.Equal(t, f.tenantA, r.TenantID)
	}
}

func TestListEventsDefaultPageSize(t *testing.T) {
	f := newFixture(t)
	var more []core.Event
	for range 60 {
		more = append(more, core.NewEvent(time.Now(), "identity.user.suspended.v1", "s", f.tenantA, map[string]any{}))
	}
	require.NoError(t, f.db.InTx(context.Background(), func(ctx context.Context) error { return f.db.AddEvents(ctx, more...) }))
	page, err := f.svc.ListEvents(as(f.super), audit.Filter{})
	require.NoError(t, err)
	require.Len(t, page.Items, audit.DefaultFirst)
	require.True(t, page.HasNextPage)
}

func TestListEventsValidation(t *testing.T) {
	f := newFixture(t)
	b64 := base64.RawURLEncoding.EncodeToString
	cases := []struct {
		name   string
		filter audit.Filter
		field  string
	}{
		{"first negative", audit.Filter{First: -1}, "first"},
		{"first too large", audit.Filter{First: audit.MaxFirst + 1}, "first"},
		{"cursor not base64", audit.Filter{After: "!!!"}, "after"},
		{"cursor not a number", audit.Filter{After: b64([]byte("abc"))}, "after"},
		{"cursor negative", audit.Filter{After: b64([]byte("-5"))}, "after"},
		{"cursor zero", audit.Filter{After: b64([]byte("0"))}, "after"},
		{"cursor padded", audit.Filter{After: base64.URLEncoding.EncodeToString([]byte("5"))}, "after"},
		{"type too long", audit.Filter{Type: string(make([]byte, 201))}, "type"},
		{"NUL in type", audit.Filter{Type: "identity.user\x00"}, "type"},
		{"invalid UTF-8 in type", audit.Filter{Type: "identity.\xff"}, "type"},
		{"NUL in subject", audit.Filter{Subject: "0190b6e4\x00"}, "subject"},
		{"line break in subject", audit.Filter{Subject: "a\r\nb"}, "subject"},
		{"invalid UTF-8 in subject", audit.Filter{Subject: "\xff\xfe"}, "subject"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.ListEvents(as(f.super), tc.filter)
			require.Error(t, err)
			require.Equal(t, core.CodeValidation, core.CodeOf(err))
			require.Contains(t, core.AsError(err).Fields, tc.field)
		})
	}
	t.Run("authentication comes first", func(t *testing.T) {
		_, err := f.svc.ListEvents(context.Background(), audit.Filter{First: -1})
		require.Equal(t, core.CodeUnauthenticated, core.CodeOf(err))
	})
	t.Run("bounds are inclusive", func(t *testing.T) {
		for _, first := range []int{1, audit.MaxFirst} {
			_, err := f.svc.ListEvents(as(f.super), audit.Filter{First: first})
			require.NoError(t, err)
		}
	})
}

func TestCursorRoundTrip(t *testing.T) {
	for _, seq := range []int64{1, 42, 1 << 53} {
		got, err := audit.DecodeCursor(audit.EncodeCursor(seq))
		require.NoError(t, err)
		require.Equal(t, seq, got)
	}
}
