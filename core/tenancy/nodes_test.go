package tenancy_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
)

func TestCreateNodeAndAncestors(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		ctx := f.as(adminA)
		province, err := f.svc.CreateNode(ctx, tenancy.CreateNodeInput{TenantID: f.a.ID, Name: " Kabul ", Kind: "province"})
		require.NoError(t, err)
		require.Nil(t, province.ParentID)
		require.Equal(t, "Kabul", province.Name)
		require.Equal(t, f.clock.Now(), province.CreatedAt)
		district, err := f.svc.CreateNode(ctx, tenancy.CreateNodeInput{TenantID: f.a.ID, ParentID: &province.ID, Name: "Paghman", Kind: "district"})
		require.NoError(t, err)
		facility, err := f.svc.CreateNode(f.as(super), tenancy.CreateNodeInput{TenantID: f.a.ID, ParentID: &district.ID, Name: "Clinic 7", Kind: "facility"})
		require.NoError(t, err)
		require.Equal(t, district.ID, *facility.ParentID)
		// An empty parent id is a root, like nil.
		other, err := f.svc.CreateNode(ctx, tenancy.CreateNodeInput{TenantID: f.a.ID, ParentID: ptr(""), Name: "Herat", Kind: "province"})
		require.NoError(t, err)
		require.Nil(t, other.ParentID)

		anc, err := f.svc.Ancestors(context.Background(), facility.ID)
		require.NoError(t, err)
		require.Equal(t, []tenancy.Ancestor{
			{ID: district.ID, ParentID: &province.ID, TenantID: f.a.ID, Depth: 1},
			{ID: province.ID, TenantID: f.a.ID, Depth: 2},
		}, anc)
		anc, err = f.svc.Ancestors(context.Background(), province.ID)
		require.NoError(t, err)
		require.Empty(t, anc)
		for _, id := range []string{"", "x", core.NewID()} {
			_, err = f.svc.Ancestors(context.Background(), id)
			requireCode(t, core.CodeNotFound, err)
		}

		nodes, err := f.svc.ListNodes(f.as(memberA), f.a.ID)
		require.NoError(t, err)
		require.Equal(t, []tenancy.Node{province, district, facility, other}, nodes)
		nodes, err = f.svc.ListNodes(f.as(super), f.b.ID)
		require.NoError(t, err)
		require.NotNil(t, nodes)
		require.Empty(t, nodes)
		for _, id := range []string{"x", core.NewID()} {
			_, err = f.svc.ListNodes(f.as(super), id)
			requireCode(t, core.CodeNotFound, err)
		}

		envs := eventtest.RequireValidStored(t, f.db, tenancy.EventNodeCreated)
		require.Len(t, envs, 4)
		var data tenancy.NodeCreatedData
		require.NoError(t, json.Unmarshal(envs[2].Data, &data))
		require.Equal(t, tenancy.NodeCreatedData{NodeID: facility.ID, TenantID: f.a.ID, ParentID: &district.ID, Name: "Clinic 7", Kind: "facility"}, data)
		require.Equal(t, facility.ID, envs[2].Subject)
		require.Equal(t, f.a.ID, envs[2].TenantID)
		var root map[string]any
		require.NoError(t, json.Unmarshal(envs[0].Data, &root))
		require.Contains(t, root, "parentId")
		require.Nil(t, root["parentId"], "a root's parentId is null")

		nodeB, err := f.svc.CreateNode(f.as(adminB), tenancy.CreateNodeInput{TenantID: f.b.ID, Name: "Balkh", Kind: "province"})
		require.NoError(t, err)

		before := f.counts(t)
		tests := []struct {
			name  string
			in    tenancy.CreateNodeInput
			code  string
			field string
		}{
			{"no name", tenancy.CreateNodeInput{TenantID: f.a.ID, Kind: "x"}, core.CodeValidation, "name"},
			{"long name", tenancy.CreateNodeInput{TenantID: f.a.ID, Name: strings.Repeat("n", 201), Kind: "x"}, core.CodeValidation, "name"},
			{"no kind", tenancy.CreateNodeInput{TenantID: f.a.ID, Name: "x", Kind: " "}, core.CodeValidation, "kind"},
			{"long kind", tenancy.CreateNodeInput{TenantID: f.a.ID, Name: "x", Kind: strings.Repeat("k", 65)}, core.CodeValidation, "kind"},
			{"malformed parent", tenancy.CreateNodeInput{TenantID: f.a.ID, ParentID: ptr("p"), Name: "x", Kind: "x"}, core.CodeValidation, "parentId"},
			{"unknown parent", tenancy.CreateNodeInput{TenantID: f.a.ID, ParentID: ptr(core.NewID()), Name: "x", Kind: "x"}, core.CodeValidation, "parentId"},
			{"parent of another tenant", tenancy.CreateNodeInput{TenantID: f.a.ID, ParentID: &nodeB.ID, Name: "x", Kind: "x"}, core.CodeValidation, "parentId"},
			{"unknown tenant", tenancy.CreateNodeInput{TenantID: core.NewID(), Name: "x", Kind: "x"}, core.CodeNotFound, ""},
			{"malformed tenant", tenancy.CreateNodeInput{TenantID: "t", Name: "x", Kind: "x"}, core.CodeNotFound, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := f.svc.CreateNode(f.as(super), tc.in)
				requireCode(t, tc.code, err)
				if tc.field != "" {
					require.Contains(t, core.AsError(err).Fields, tc.field)
				}
				require.Equal(t, before, f.counts(t))
			})
		}
	})
}

func TestHierarchyDepthLimit(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		// Levels 1..MaxDepth-1 straight through the store, then the last
		// allowed level through the service.
		var parent *string
		for range tenancy.MaxDepth - 1 {
			n := tenancy.Node{ID: core.NewID(), TenantID: f.a.ID, ParentID: parent, Name: "n", Kind: "level", CreatedAt: f.clock.Now()}
			require.NoError(t, f.store.CreateNode(ctx, n))
			parent = &n.ID
		}
		deepest, err := f.svc.CreateNode(f.as(adminA), tenancy.CreateNodeInput{TenantID: f.a.ID, ParentID: parent, Name: "n", Kind: "level"})
		require.NoError(t, err, "level %d is allowed", tenancy.MaxDepth)
		anc, err := f.svc.Ancestors(ctx, deepest.ID)
		require.NoError(t, err)
		require.Len(t, anc, tenancy.MaxDepth-1)
		require.Equal(t, tenancy.MaxDepth-1, anc[len(anc)-1].Depth)
		require.Nil(t, anc[len(anc)-1].ParentID)

		before := f.counts(t)
		_, err = f.svc.CreateNode(f.as(adminA), tenancy.CreateNodeInput{TenantID: f.a.ID, ParentID: &deepest.ID, Name: "n", Kind: "level"})
		requireCode(t, core.CodeValidation, err)
		require.Contains(t, core.AsError(err).Fields, "parentId")
		require.Equal(t, before, f.counts(t))
	})
}
