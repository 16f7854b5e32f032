package tenantsvc

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
)

func TestMembershipsOfUser(t *testing.T) {
	tenant, node := core.NewID(), core.NewID()
	tests := []struct {
		name     string
		userID   string
		body     *string // nil: tenant-service does not know the user (404)
		want     []core.Membership
		requests int32
	}{
		{
			name: "tenant-wide (null nodeId) and node membership",
			body: ptr(fmt.Sprintf(`{"userId":"%%[1]s","memberships":[
				{"tenantId":%q,"nodeId":null,"roles":["TENANT_ADMIN"]},
				{"tenantId":%q,"nodeId":%q,"roles":["nurse","doctor"]}]}`, tenant, tenant, node)),
			want: []core.Membership{
				{TenantID: tenant, Roles: []string{"TENANT_ADMIN"}},
				{TenantID: tenant, NodeID: node, Roles: []string{"nurse", "doctor"}},
			},
			requests: 1,
		},
		{
			name:     "empty nodeId is tenant-wide",
			body:     ptr(fmt.Sprintf(`{"userId":"%%[1]s","memberships":[{"tenantId":%q,"nodeId":"","roles":["nurse"]}]}`, tenant)),
			want:     []core.Membership{{TenantID: tenant, Roles: []string{"nurse"}}},
			requests: 1,
		},
		{
			name:     "absent nodeId and null roles",
			body:     ptr(fmt.Sprintf(`{"userId":"%%[1]s","memberships":[{"tenantId":%q,"roles":null}]}`, tenant)),
			want:     []core.Membership{{TenantID: tenant, Roles: []string{}}},
			requests: 1,
		},
		{
			name:     "no memberships",
			body:     ptr(`{"userId":"%[1]s","memberships":[]}`),
			want:     []core.Membership{},
			requests: 1,
		},
		{
			name:     "unknown user (404) is no memberships",
			requests: 1,
		},
		{
			name:     "invalid id makes no request",
			userID:   "not-a-uuid",
			requests: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFake(t)
			c, _ := newClient(t, srv, nil)
			user := tt.userID
			if user == "" {
				user = core.NewID()
			}
			if tt.body != nil {
				fake.setIdentity(user, fmt.Sprintf(*tt.body, user))
			}
			got, err := c.MembershipsOfUser(context.Background(), user)
			require.NoError(t, err)
			for i := range tt.want {
				tt.want[i].UserID = user
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.requests, fake.requests.Load())
		})
	}
}

func TestAncestorsAndNodeTenantID(t *testing.T) {
	tenant, other := core.NewID(), core.NewID()
	parent, grand, root := core.NewID(), core.NewID(), core.NewID()
	chain := fmt.Sprintf(`[
		{"id":%q,"parentId":%q,"tenantId":%q,"depth":1},
		{"id":%q,"parentId":%q,"tenantId":%q,"depth":2},
		{"id":%q,"parentId":null,"tenantId":%q,"depth":3}]`,
		parent, grand, tenant, grand, root, tenant, root, tenant)
	reversed := fmt.Sprintf(`[
		{"id":%q,"parentId":null,"tenantId":%q,"depth":3},
		{"id":%q,"parentId":%q,"tenantId":%q,"depth":2},
		{"id":%q,"parentId":%q,"tenantId":%q,"depth":1}]`,
		root, tenant, grand, root, tenant, parent, grand, tenant)
	wantChain := []tenancy.Ancestor{
		{ID: parent, ParentID: &grand, TenantID: tenant, Depth: 1},
		{ID: grand, ParentID: &root, TenantID: tenant, Depth: 2},
		{ID: root, TenantID: tenant, Depth: 3},
	}
	tests := []struct {
		name       string
		nodeID     string
		body       *string // nil: 404
		want       []tenancy.Ancestor
		wantTenant string
		wantKind   *core.Kind // error of both calls
		tenantKind *core.Kind // error of NodeTenantID only
		requests   int32      // per call
	}{
		{
			name:       "nearest first; tenant from the first ancestor",
			body:       ptr(`{"nodeId":"%[1]s","ancestors":` + chain + `}`),
			want:       wantChain,
			wantTenant: tenant,
			requests:   1,
		},
		{
			name:       "out-of-order response is sorted nearest first",
			body:       ptr(`{"nodeId":"%[1]s","ancestors":` + reversed + `}`),
			want:       wantChain,
			wantTenant: tenant,
			requests:   1,
		},
		{
			name:       "top-level tenantId wins",
			body:       ptr(`{"nodeId":"%[1]s","tenantId":"` + other + `","ancestors":` + chain + `}`),
			want:       wantChain,
			wantTenant: other,
			requests:   1,
		},
		{
			name:       "root with tenantId",
			body:       ptr(`{"nodeId":"%[1]s","tenantId":"` + tenant + `","ancestors":[]}`),
			want:       []tenancy.Ancestor{},
			wantTenant: tenant,
			requests:   1,
		},
		{
			name:       "root without tenantId: NodeTenantID cannot answer",
			body:       ptr(`{"nodeId":"%[1]s","ancestors":[]}`),
			want:       []tenancy.Ancestor{},
			tenantKind: ptr(core.KindInternal),
			requests:   1,
		},
		{
			name:     "unknown node (404)",
			wantKind: ptr(core.KindNotFound),
			requests: 1,
		},
		{
			name:     "invalid id makes no request",
			nodeID:   "../../admin",
			wantKind: ptr(core.KindNotFound),
			requests: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFake(t)
			c, _ := newClient(t, srv, nil)
			node := tt.nodeID
			if node == "" {
				node = core.NewID()
			}
			if tt.body != nil {
				fake.setAncestors(node, fmt.Sprintf(*tt.body, node))
			}
			ctx := context.Background()

			got, err := c.Ancestors(ctx, node)
			if tt.wantKind != nil {
				requireKind(t, err, *tt.wantKind)
			} else {
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
			}
			require.Equal(t, tt.requests, fake.requests.Load())

			tid, err := c.NodeTenantID(ctx, node)
			switch {
			case tt.wantKind != nil:
				requireKind(t, err, *tt.wantKind)
			case tt.tenantKind != nil:
				requireKind(t, err, *tt.tenantKind)
			default:
				require.NoError(t, err)
				require.Equal(t, tt.wantTenant, tid)
			}
			require.Equal(t, 2*tt.requests, fake.requests.Load())
		})
	}
}

func TestMalformedResponses(t *testing.T) {
	node := core.NewID()
	tests := []struct {
		name string
		body string
	}{
		{"not JSON", `{"nodeId":`},
		{"wrong type", `{"nodeId":"x","ancestors":{}}`},
		{"other node", fmt.Sprintf(`{"nodeId":%q,"ancestors":[]}`, core.NewID())},
		{"invalid ancestor id", fmt.Sprintf(`{"nodeId":%q,"ancestors":[{"id":"x","tenantId":%q,"depth":1}]}`, node, core.NewID())},
		{"zero depth", fmt.Sprintf(`{"nodeId":%q,"ancestors":[{"id":%q,"tenantId":%q,"depth":0}]}`, node, core.NewID(), core.NewID())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFake(t)
			c, logs := newClient(t, srv, nil)
			fake.setAncestors(node, tt.body)
			requireKind(t, callAncestors(c, node), core.KindUnavailable)
			require.Equal(t, core.CodeUnavailable, core.CodeOf(callAncestors(c, node)))
			require.Equal(t, int32(2), fake.requests.Load(), "a malformed body is not retried")
			require.Contains(t, logs.String(), "malformed tenant-service response")
		})
	}

	t.Run("memberships with invalid tenantId", func(t *testing.T) {
		fake, srv := newFake(t)
		c, logs := newClient(t, srv, nil)
		user := core.NewID()
		fake.setIdentity(user, `{"memberships":[{"tenantId":"nope","roles":["x"]}]}`)
		_, err := c.MembershipsOfUser(context.Background(), user)
		requireKind(t, err, core.KindUnavailable)
		require.Contains(t, logs.String(), "malformed tenant-service response")
	})
}
