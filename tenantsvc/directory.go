package tenantsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
)

// identityResponse is GET /internal/identity/providers/{userId}/identity.
type identityResponse struct {
	UserID      string `json:"userId"`
	Memberships []struct {
		TenantID string   `json:"tenantId"`
		NodeID   *string  `json:"nodeId"`
		Roles    []string `json:"roles"`
	} `json:"memberships"`
}

// ancestorsResponse is GET /internal/hierarchy/nodes/{nodeId}/ancestors.
// TenantID is not in CONTRACT.md §7; it is read when tenant-service sends it.
type ancestorsResponse struct {
	NodeID    string  `json:"nodeId"`
	TenantID  *string `json:"tenantId"`
	Ancestors []struct {
		ID       string  `json:"id"`
		ParentID *string `json:"parentId"`
		TenantID string  `json:"tenantId"`
		Depth    int     `json:"depth"`
	} `json:"ancestors"`
}

// MembershipsOfUser returns every membership of userID (core.MembershipReader).
// A null or empty nodeId is the tenant-wide membership (NodeID ""). As the
// port requires, "none is not an error": an invalid id (no request is made)
// and a 404 for the user both return no memberships, exactly like the local
// directory.
func (c *Client) MembershipsOfUser(ctx context.Context, userID string) ([]core.Membership, error) {
	if !core.ValidID(userID) {
		return nil, nil
	}
	var out []core.Membership
	err := c.get(ctx, "MembershipsOfUser",
		"/internal/identity/providers/"+url.PathEscape(userID)+"/identity", "user",
		func(body []byte) error {
			ms, err := decodeMemberships(body, userID)
			out = ms
			return err
		})
	if core.IsKind(err, core.KindNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func decodeMemberships(body []byte, userID string) ([]core.Membership, error) {
	var r identityResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	if r.UserID != "" && !strings.EqualFold(r.UserID, userID) {
		return nil, fmt.Errorf("userId %q does not match the requested user", r.UserID)
	}
	out := make([]core.Membership, 0, len(r.Memberships))
	for i, m := range r.Memberships {
		if !core.ValidID(m.TenantID) {
			return nil, fmt.Errorf("memberships[%d]: invalid tenantId %q", i, m.TenantID)
		}
		var node string
		if m.NodeID != nil {
			node = *m.NodeID
		}
		if node != "" && !core.ValidID(node) {
			return nil, fmt.Errorf("memberships[%d]: invalid nodeId %q", i, node)
		}
		roles := make([]string, 0, len(m.Roles))
		for _, role := range m.Roles {
			if role == "" {
				return nil, fmt.Errorf("memberships[%d]: empty role", i)
			}
			roles = append(roles, role)
		}
		out = append(out, core.Membership{UserID: userID, TenantID: m.TenantID, NodeID: node, Roles: roles})
	}
	return out, nil
}

// Ancestors returns the ancestors of nodeID nearest first (tenancy.Hierarchy):
// an empty slice for a root, IDENT_NOT_FOUND for an invalid id (no request is
// made) or a node tenant-service does not know.
func (c *Client) Ancestors(ctx context.Context, nodeID string) ([]tenancy.Ancestor, error) {
	r, err := c.ancestors(ctx, nodeID, "Ancestors")
	if err != nil {
		return nil, err
	}
	return r.ancestors, nil
}

// NodeTenantID returns the tenant of nodeID, read from the ancestors
// response: its top-level tenantId when tenant-service sends one (not part
// of CONTRACT.md §7), otherwise the tenantId of the nearest ancestor, since a
// parent always belongs to the node's tenant. A root node in a response
// without a top-level tenantId has no ancestor to read it from; that is
// IDENT_INTERNAL (the contract cannot answer it), logged. Invalid or unknown
// ids are IDENT_NOT_FOUND.
func (c *Client) NodeTenantID(ctx context.Context, nodeID string) (string, error) {
	r, err := c.ancestors(ctx, nodeID, "NodeTenantID")
	if err != nil {
		return "", err
	}
	if r.tenantID != "" {
		return r.tenantID, nil
	}
	if len(r.ancestors) > 0 {
		return r.ancestors[0].TenantID, nil
	}
	c.log.ErrorContext(ctx, "tenant-service reported no tenant for a root node", "nodeId", nodeID)
	return "", core.Internal(errors.New("tenantsvc: tenant-service reported no tenant for root node " + nodeID))
}

type ancestry struct {
	tenantID  string
	ancestors []tenancy.Ancestor
}

func (c *Client) ancestors(ctx context.Context, nodeID, op string) (ancestry, error) {
	if !core.ValidID(nodeID) {
		return ancestry{}, core.NotFound("node")
	}
	var out ancestry
	err := c.get(ctx, op,
		"/internal/hierarchy/nodes/"+url.PathEscape(nodeID)+"/ancestors", "node",
		func(body []byte) error {
			a, err := decodeAncestors(body, nodeID)
			out = a
			return err
		})
	if err != nil {
		return ancestry{}, err
	}
	return out, nil
}

func decodeAncestors(body []byte, nodeID string) (ancestry, error) {
	var r ancestorsResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return ancestry{}, err
	}
	if r.NodeID != "" && !strings.EqualFold(r.NodeID, nodeID) {
		return ancestry{}, fmt.Errorf("nodeId %q does not match the requested node", r.NodeID)
	}
	if len(r.Ancestors) > tenancy.MaxDepth-1 {
		return ancestry{}, fmt.Errorf("%d ancestors exceed the maximum depth %d", len(r.Ancestors), tenancy.MaxDepth)
	}
	var out ancestry
	if r.TenantID != nil && *r.TenantID != "" {
		if !core.ValidID(*r.TenantID) {
			return ancestry{}, fmt.Errorf("invalid tenantId %q", *r.TenantID)
		}
		out.tenantID = *r.TenantID
	}
	out.ancestors = make([]tenancy.Ancestor, 0, len(r.Ancestors))
	for i, a := range r.Ancestors {
		if !core.ValidID(a.ID) || !core.ValidID(a.TenantID) || a.Depth < 1 {
			return ancestry{}, fmt.Errorf("ancestors[%d]: invalid id, tenantId or depth", i)
		}
		var parent *string
		if a.ParentID != nil && *a.ParentID != "" {
			if !core.ValidID(*a.ParentID) {
				return ancestry{}, fmt.Errorf("ancestors[%d]: invalid parentId %q", i, *a.ParentID)
			}
			p := *a.ParentID
			parent = &p
		}
		out.ancestors = append(out.ancestors, tenancy.Ancestor{ID: a.ID, ParentID: parent, TenantID: a.TenantID, Depth: a.Depth})
	}
	// The contract sends nearest first; sorting by depth keeps that promise
	// even if tenant-service's order ever drifts.
	slices.SortStableFunc(out.ancestors, func(x, y tenancy.Ancestor) int { return x.Depth - y.Depth })
	return out, nil
}
