package tenancy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
)

// TestAuthorization runs every method as every kind of caller. A refused
// call must leave tenants, nodes, memberships and the outbox untouched.
func TestAuthorization(t *testing.T) {
	const (
		ok        = ""
		forbidden = core.CodeForbidden
		cross     = core.CodeCrossTenant
		notFound  = core.CodeNotFound
		unauth    = core.CodeUnauthenticated
	)
	// adminOnly is the expectation of an operation on tenant A that needs
	// SUPER_ADMIN or TENANT_ADMIN of A.
	adminOnly := map[actor]string{super: ok, adminA: ok, adminB: cross, memberA: forbidden, memberB: forbidden, anon: unauth}
	// membersRead is the expectation of a read of tenant A's data.
	membersRead := map[actor]string{super: ok, adminA: ok, adminB: cross, memberA: ok, memberB: notFound, anon: unauth}

	eachDialect(t, func(t *testing.T, f *fixture) {
		methods := []struct {
			name string
			// prepare sets up what the call needs (before the row counts are
			// taken) and returns the call.
			prepare func(t *testing.T) func(ctx context.Context) error
			want    map[actor]string
		}{
			{"CreateTenant", func(t *testing.T) func(ctx context.Context) error {
				slug := "t-" + core.NewID()[24:]
				return func(ctx context.Context) error {
					_, err := f.svc.CreateTenant(ctx, tenancy.CreateTenantInput{Name: "New", Slug: slug})
					return err
				}
			}, map[actor]string{super: ok, adminA: forbidden, adminB: forbidden, memberA: forbidden, memberB: forbidden, anon: unauth}},

			{"UpdateTenant", func(t *testing.T) func(ctx context.Context) error {
				return func(ctx context.Context) error {
					_, err := f.svc.UpdateTenant(ctx, f.a.ID, tenancy.UpdateTenantInput{MFARequired: ptr(true)})
					return err
				}
			}, adminOnly},

			{"UpdateTenant of an unknown id", func(t *testing.T) func(ctx context.Context) error {
				return func(ctx context.Context) error {
					_, err := f.svc.UpdateTenant(ctx, core.NewID(), tenancy.UpdateTenantInput{MFARequired: ptr(true)})
					return err
				}
			}, map[actor]string{super: notFound, adminA: cross, adminB: cross, memberA: forbidden, memberB: forbidden, anon: unauth}},

			{"GetTenant", func(t *testing.T) func(ctx context.Context) error {
				return func(ctx context.Context) error {
					_, err := f.svc.GetTenant(ctx, f.a.ID)
					return err
				}
			}, membersRead},

			{"ListTenants", func(t *testing.T) func(ctx context.Context) error {
				return func(ctx context.Context) error {
					_, err := f.svc.ListTenants(ctx)
					return err
				}
			}, map[actor]string{super: ok, adminA: ok, adminB: ok, memberA: ok, memberB: ok, anon: unauth}},

			{"CreateNode", func(t *testing.T) func(ctx context.Context) error {
				return func(ctx context.Context) error {
					_, err := f.svc.CreateNode(ctx, tenancy.CreateNodeInput{TenantID: f.a.ID, Name: "Kabul", Kind: "province"})
					return err
				}
			}, adminOnly},

			{"ListNodes", func(t *testing.T) func(ctx context.Context) error {
				return func(ctx context.Context) error {
					_, err := f.svc.ListNodes(ctx, f.a.ID)
					return err
				}
			}, membersRead},

			{"AddMembership", func(t *testing.T) func(ctx context.Context) error {
				target := f.user(t, f.a.ID)
				return func(ctx context.Context) error {
					_, err := f.svc.AddMembership(ctx, tenancy.MembershipInput{UserID: target, TenantID: f.a.ID, Roles: []string{"doctor"}})
					return err
				}
			}, adminOnly},

			{"RemoveMembership", func(t *testing.T) func(ctx context.Context) error {
				target := f.user(t, f.a.ID, "doctor")
				return func(ctx context.Context) error {
					removed, err := f.svc.RemoveMembership(ctx, target, f.a.ID, nil)
					if err == nil && !removed {
						t.Error("the membership existed, so it must be reported removed")
					}
					return err
				}
			}, adminOnly},

			{"Ancestors (internal port, no authorization)", func(t *testing.T) func(ctx context.Context) error {
				n := tenancy.Node{ID: core.NewID(), TenantID: f.a.ID, Name: "root", Kind: "province", CreatedAt: f.clock.Now()}
				require.NoError(t, f.store.CreateNode(context.Background(), n))
				return func(ctx context.Context) error {
					_, err := f.svc.Ancestors(ctx, n.ID)
					return err
				}
			}, map[actor]string{super: ok, adminA: ok, adminB: ok, memberA: ok, memberB: ok, anon: ok}},
		}
		for _, m := range methods {
			t.Run(m.name, func(t *testing.T) {
				for _, a := range actors {
					t.Run(string(a), func(t *testing.T) {
						want, listed := m.want[a]
						require.True(t, listed, "the table lists every actor")
						call := m.prepare(t)
						before := f.counts(t)
						err := call(f.as(a))
						requireCode(t, want, err)
						if err != nil {
							require.Equal(t, before, f.counts(t), "a refused call changes nothing and emits nothing")
						}
					})
				}
			})
		}

		t.Run("a restricted credential is refused", func(t *testing.T) {
			ctx := core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser, ID: f.users[super], Restricted: true})
			_, err := f.svc.ListTenants(ctx)
			requireCode(t, forbidden, err)
		})
		t.Run("a failed credential is unauthenticated", func(t *testing.T) {
			ctx := core.WithAuthError(f.as(super), core.Unauthenticated(nil))
			_, err := f.svc.CreateNode(ctx, tenancy.CreateNodeInput{TenantID: f.a.ID, Name: "x", Kind: "y"})
			requireCode(t, unauth, err)
		})
	})
}
