package user_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// TestAuthorization checks every admin operation against every kind of
// caller. A refused call must leave no trace: the target unchanged, no event,
// no session revocation.
func TestAuthorization(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		callers := []struct {
			name string
			ctx  func(target user.User) context.Context
		}{
			{"anonymous", func(user.User) context.Context { return context.Background() }},
			{"SUPER_ADMIN", func(user.User) context.Context { return e.asSuper() }},
			{"TENANT_ADMIN of A", func(user.User) context.Context { return e.asAdminA() }},
			{"TENANT_ADMIN of B", func(user.User) context.Context { return e.as(e.adminB, e.tenantB) }},
			{"member of A", func(user.User) context.Context { return e.as(e.memberA, e.tenantA) }},
			{"the user", func(u user.User) context.Context { return e.as(u.ID, u.TenantID) }},
			{"service account", func(user.User) context.Context {
				return core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalServiceAccount, ID: core.NewID(), TenantID: e.tenantA})
			}},
		}
		const (
			ok    = ""
			unath = core.CodeUnauthenticated
			cross = core.CodeCrossTenant
			forb  = core.CodeForbidden
			nf    = core.CodeNotFound
		)
		ops := []struct {
			name  string
			state user.Status
			call  func(ctx context.Context, target user.User) error
			// want per caller, in the order of callers above.
			want []string
		}{
			{"Create", user.StatusActive, func(ctx context.Context, _ user.User) error {
				_, err := e.svc.Create(ctx, user.CreateInput{TenantID: e.tenantA, Email: core.NewID() + "@authz.example.org", FirstName: "A", LastName: "Z"})
				return err
			}, []string{unath, ok, ok, cross, forb, forb, forb}},
			{"Get", user.StatusActive, func(ctx context.Context, u user.User) error {
				_, err := e.svc.Get(ctx, u.ID)
				return err
			}, []string{unath, ok, ok, cross, nf, ok, nf}},
			{"List", user.StatusActive, func(ctx context.Context, _ user.User) error {
				_, err := e.svc.List(ctx, user.ListFilter{TenantID: e.tenantA})
				return err
			}, []string{unath, ok, ok, cross, forb, forb, forb}},
			{"Suspend", user.StatusActive, func(ctx context.Context, u user.User) error {
				_, err := e.svc.Suspend(ctx, u.ID)
				return err
			}, []string{unath, ok, ok, cross, nf, forb, nf}},
			{"Reactivate", user.StatusSuspended, func(ctx context.Context, u user.User) error {
				_, err := e.svc.Reactivate(ctx, u.ID)
				return err
			}, []string{unath, ok, ok, cross, nf, forb, nf}},
			{"Erase", user.StatusActive, func(ctx context.Context, u user.User) error {
				_, err := e.svc.Erase(ctx, u.ID)
				return err
			}, []string{unath, ok, ok, cross, nf, forb, nf}},
		}
		for _, op := range ops {
			require.Len(t, op.want, len(callers))
			for i, c := range callers {
				t.Run(op.name+"/"+c.name, func(t *testing.T) {
					target := e.insertUser(t, e.tenantA, core.NewID()+"@target.example.org", op.state)
					events, calls := e.eventCount(t), len(e.sessions.Calls())
					err := op.call(c.ctx(target), target)
					if op.want[i] == ok {
						require.NoError(t, err)
						return
					}
					requireCode(t, op.want[i], err)
					require.Equal(t, target, e.get(t, target.ID), "no side effect")
					require.Equal(t, events, e.eventCount(t), "no event")
					require.Len(t, e.sessions.Calls(), calls, "no revocation")
				})
			}
		}

		t.Run("cross-tenant create defaulting to the caller's tenant", func(t *testing.T) {
			u, err := e.svc.Create(e.as(e.adminB, e.tenantB), user.CreateInput{Email: "own@b.example.org", FirstName: "O", LastName: "B"})
			require.NoError(t, err)
			require.Equal(t, e.tenantB, u.TenantID)
		})
		t.Run("an admin of B listing A's users", func(t *testing.T) {
			_, err := e.svc.List(e.as(e.adminB, e.tenantB), user.ListFilter{TenantID: e.tenantA})
			requireCode(t, cross, err)
		})
		t.Run("a failed credential is reported as such", func(t *testing.T) {
			ctx := core.WithAuthError(context.Background(), core.Unauthenticated(nil))
			_, err := e.svc.Get(ctx, e.adminA)
			requireCode(t, unath, err)
		})
	})
}
