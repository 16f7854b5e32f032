package tenancy_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
)

func TestCreateTenant(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		ctx := f.as(super)
		got, err := f.svc.CreateTenant(ctx, tenancy.CreateTenantInput{Name: "  Herat Hospital ", Slug: "herat", MFARequired: true})
		require.NoError(t, err)
		require.True(t, core.ValidID(got.ID))
		require.Equal(t, "Herat Hospital", got.Name, "trimmed")
		require.Equal(t, "herat", got.Slug)
		require.True(t, got.MFARequired)
		require.False(t, got.SelfRegistration)
		require.Equal(t, f.clock.Now(), got.CreatedAt)
		stored, err := f.svc.GetTenant(ctx, got.ID)
		require.NoError(t, err)
		require.Equal(t, got, stored)

		envs := eventtest.RequireValidStored(t, f.db, tenancy.EventTenantCreated)
		require.Len(t, envs, 1)
		require.Equal(t, got.ID, envs[0].Subject)
		require.Equal(t, got.ID, envs[0].TenantID)
		var data tenancy.TenantData
		require.NoError(t, json.Unmarshal(envs[0].Data, &data))
		require.Equal(t, tenancy.TenantData{TenantID: got.ID, Name: "Herat Hospital", Slug: "herat", MFARequired: true}, data)

		before := f.counts(t)
		_, err = f.svc.CreateTenant(ctx, tenancy.CreateTenantInput{Name: "Other", Slug: "herat"})
		requireCode(t, core.CodeConflict, err)
		require.Equal(t, core.KindConflict, core.KindOf(err))
		require.Contains(t, core.AsError(err).Msg, "taken")
		require.Contains(t, core.AsError(err).Fields, "slug")
		require.Equal(t, before, f.counts(t))

		tests := []struct {
			name   string
			in     tenancy.CreateTenantInput
			fields []string
		}{
			{"empty", tenancy.CreateTenantInput{}, []string{"name", "slug"}},
			{"blank name", tenancy.CreateTenantInput{Name: "   ", Slug: "ok"}, []string{"name"}},
			{"long name", tenancy.CreateTenantInput{Name: strings.Repeat("n", 201), Slug: "ok"}, []string{"name"}},
			{"control character", tenancy.CreateTenantInput{Name: "a\nb", Slug: "ok"}, []string{"name"}},
			{"upper-case slug", tenancy.CreateTenantInput{Name: "ok", Slug: "Herat"}, []string{"slug"}},
			{"slug with a space", tenancy.CreateTenantInput{Name: "ok", Slug: "a b"}, []string{"slug"}},
			{"slug ending in a hyphen", tenancy.CreateTenantInput{Name: "ok", Slug: "a-"}, []string{"slug"}},
			{"slug too long", tenancy.CreateTenantInput{Name: "ok", Slug: strings.Repeat("a", 64)}, []string{"slug"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := f.svc.CreateTenant(ctx, tc.in)
				requireCode(t, core.CodeValidation, err)
				fields := core.AsError(err).Fields
				require.Len(t, fields, len(tc.fields))
				for _, name := range tc.fields {
					require.Contains(t, fields, name)
				}
				require.Equal(t, before, f.counts(t))
			})
		}
		_, err = f.svc.CreateTenant(ctx, tenancy.CreateTenantInput{Name: strings.Repeat("é", 200), Slug: strings.Repeat("a", 63)})
		require.NoError(t, err, "200 characters and 63-character slugs are fine")
	})
}

func TestUpdateTenant(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		f.clock.Advance(time.Hour)
		got, err := f.svc.UpdateTenant(f.as(adminA), f.a.ID, tenancy.UpdateTenantInput{SelfRegistration: ptr(true)})
		require.NoError(t, err)
		require.True(t, got.SelfRegistration)
		require.False(t, got.MFARequired, "unset settings are kept")
		require.Equal(t, f.a.CreatedAt, got.CreatedAt)
		require.Equal(t, f.clock.Now(), got.UpdatedAt)

		got, err = f.svc.UpdateTenant(f.as(super), f.a.ID, tenancy.UpdateTenantInput{SelfRegistration: ptr(false), MFARequired: ptr(true)})
		require.NoError(t, err)
		require.False(t, got.SelfRegistration)
		require.True(t, got.MFARequired)

		envs := eventtest.RequireValidStored(t, f.db, tenancy.EventTenantUpdated)
		require.Len(t, envs, 2)
		var data tenancy.TenantData
		require.NoError(t, json.Unmarshal(envs[1].Data, &data))
		require.Equal(t, tenancy.TenantData{TenantID: f.a.ID, Name: f.a.Name, Slug: f.a.Slug, MFARequired: true}, data)
		require.Equal(t, f.a.ID, envs[1].Subject)
		require.Equal(t, f.a.ID, envs[1].TenantID)

		before := f.counts(t)
		same, err := f.svc.UpdateTenant(f.as(adminA), f.a.ID, tenancy.UpdateTenantInput{})
		require.NoError(t, err)
		require.Equal(t, got, same, "an empty update returns the tenant")
		require.Equal(t, before, f.counts(t), "an empty update writes and emits nothing")

		for _, id := range []string{"not-a-uuid", core.NewID()} {
			_, err = f.svc.UpdateTenant(f.as(super), id, tenancy.UpdateTenantInput{MFARequired: ptr(true)})
			requireCode(t, core.CodeNotFound, err)
		}
		require.Equal(t, before, f.counts(t))
	})
}

func TestGetAndListTenants(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		slugs := func(ts []tenancy.Tenant) []string {
			out := []string{}
			for _, tn := range ts {
				out = append(out, tn.Slug)
			}
			return out
		}
		// A user of B who also holds a node membership in A sees both.
		both := f.user(t, f.b.ID, "nurse")
		require.NoError(t, f.dir.AddMembership(context.Background(), core.Membership{UserID: both, TenantID: f.a.ID, NodeID: core.NewID(), Roles: []string{"x"}}))
		nobody := f.user(t, f.b.ID)

		tests := []struct {
			name string
			user string
			want []string
		}{
			{"SUPER_ADMIN sees all", f.users[super], []string{"platform", "tenant-a", "tenant-b"}},
			{"TENANT_ADMIN sees its tenant", f.users[adminA], []string{"tenant-a"}},
			{"member sees its tenant", f.users[memberB], []string{"tenant-b"}},
			{"memberships in two tenants", both, []string{"tenant-a", "tenant-b"}},
			{"no membership", nobody, []string{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := f.svc.ListTenants(asUser(tc.user))
				require.NoError(t, err)
				require.NotNil(t, got)
				require.Equal(t, tc.want, slugs(got))
			})
		}

		got, err := f.svc.GetTenant(asUser(both), f.a.ID)
		require.NoError(t, err)
		require.Equal(t, f.a, got)
		_, err = f.svc.GetTenant(asUser(nobody), f.b.ID)
		requireCode(t, core.CodeNotFound, err)
		for _, id := range []string{"", "nope", core.NewID()} {
			_, err = f.svc.GetTenant(f.as(super), id)
			requireCode(t, core.CodeNotFound, err)
		}
	})
}
