package user_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

func TestGet(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		target := e.insertUser(t, e.tenantA, "target@a.example.org", user.StatusActive)
		got, err := e.svc.Get(e.asAdminA(), target.ID)
		require.NoError(t, err)
		require.Equal(t, target.Email, got.Email)
		require.Empty(t, got.PasswordHash, "never leaves core")

		for _, id := range []string{core.NewID(), "not-a-uuid", ""} {
			_, err := e.svc.Get(e.asAdminA(), id)
			requireCode(t, core.CodeNotFound, err)
		}
		// An ordinary user reads their own record.
		own, err := e.svc.Get(e.as(e.memberA, e.tenantA), e.memberA)
		require.NoError(t, err)
		require.Equal(t, e.memberA, own.ID)
	})
}

func TestMe(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		me, err := e.svc.Me(e.as(e.memberA, e.tenantA))
		require.NoError(t, err)
		require.Equal(t, e.memberA, me.ID)
		require.Empty(t, me.PasswordHash)
		_, err = e.svc.Me(context.Background())
		requireCode(t, core.CodeUnauthenticated, err)
		_, err = e.svc.Me(core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalAPIKey, ID: core.NewID(), TenantID: e.tenantA}))
		requireCode(t, core.CodeNotFound, err)
	})
}

func TestList(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		// Tenant A already holds adminA and memberA.
		want := []string{e.adminA, e.memberA}
		for i := range 5 {
			st := user.StatusActive
			if i%2 == 1 {
				st = user.StatusSuspended
			}
			want = append(want, e.insertUser(t, e.tenantA, string(rune('a'+i))+"@list.example.org", st).ID)
		}
		e.insertUser(t, e.tenantB, "other@list.example.org", user.StatusActive)

		var seen []string
		after := ""
		pages := 0
		for {
			page, err := e.svc.List(e.asAdminA(), user.ListFilter{After: after, Limit: 3})
			require.NoError(t, err)
			pages++
			for _, u := range page.Items {
				require.Empty(t, u.PasswordHash)
				require.Equal(t, e.tenantA, u.TenantID)
				seen = append(seen, u.ID)
			}
			if page.NextCursor == "" {
				break
			}
			require.Len(t, page.Items, 3)
			require.Equal(t, user.Cursor(page.Items[2]), page.NextCursor)
			after = page.NextCursor
		}
		require.Equal(t, want, seen, "creation order, every user once")
		require.Equal(t, 3, pages)

		exact, err := e.svc.List(e.asAdminA(), user.ListFilter{Limit: len(want)})
		require.NoError(t, err)
		require.Len(t, exact.Items, len(want))
		require.Empty(t, exact.NextCursor, "no empty trailing page")

		suspended, err := e.svc.List(e.asAdminA(), user.ListFilter{Status: user.StatusSuspended})
		require.NoError(t, err)
		require.Equal(t, []string{want[3], want[5]}, idsOf(suspended.Items))

		def, err := e.svc.List(e.asSuper(), user.ListFilter{TenantID: e.tenantB})
		require.NoError(t, err)
		require.Len(t, def.Items, 2, "SUPER_ADMIN lists any tenant")

		for field, f := range map[string]user.ListFilter{
			"status":   {Status: "gone"},
			"limit":    {Limit: 201},
			"after":    {After: "!!"},
			"tenantId": {TenantID: "nope"},
		} {
			ctx := e.asAdminA()
			if field == "tenantId" {
				ctx = e.asSuper()
			}
			_, err := e.svc.List(ctx, f)
			requireCode(t, core.CodeValidation, err)
			require.Contains(t, core.AsError(err).Fields, field)
		}
		_, err = e.svc.List(e.asAdminA(), user.ListFilter{Limit: -1})
		require.Contains(t, core.AsError(err).Fields, "limit")
		_, err = e.svc.List(e.asAdminA(), user.ListFilter{After: "bm90LWEtdXVpZA"}) // base64url("not-a-uuid")
		require.Contains(t, core.AsError(err).Fields, "after")
	})
}

func idsOf(us []user.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}
