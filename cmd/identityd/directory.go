package main

import (
	"context"
	"slices"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/access"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/messaging"
)

// localDirectory is the embedded tenant directory
// (*persistence.TenancyStore implements it).
type localDirectory interface {
	core.MembershipReader
	tenancy.Hierarchy
	NodeByID(ctx context.Context, id string) (tenancy.Node, error)
}

// remoteDirectory is tenant-service (*tenantsvc.Client implements it).
type remoteDirectory interface {
	core.MembershipReader
	tenancy.Hierarchy
	NodeTenantID(ctx context.Context, nodeID string) (string, error)
}

// mergedDirectory is the tenant directory used when
// IDENTITY_TENANT_SERVICE_URL is set: tenant-service is the source of truth
// for tenants, nodes and memberships, while the local directory still holds
// what this service created itself (the bootstrap platform tenant and its
// SUPER_ADMIN, and anything made through the local tenancy API), so both
// are read:
//
//   - MembershipsOfUser is the union of both, one membership per
//     (tenant, node) with the roles of both merged. A remote failure is
//     returned (fail closed: no decision is made on a partial view).
//   - Ancestors and NodeTenantID ask tenant-service first and fall back to
//     the local store only when it does not know the node (IDENT_NOT_FOUND).
//   - NodeByID (what login uses to place a root node in its tenant) reads
//     the local store first and, for a node only tenant-service knows,
//     builds a node carrying the tenant tenant-service reports.
type mergedDirectory struct {
	local  localDirectory
	remote remoteDirectory
}

var (
	_ auth.Directory   = mergedDirectory{}
	_ auth.NodeReader  = mergedDirectory{}
	_ access.Directory = mergedDirectory{}
)

func newMergedDirectory(local localDirectory, remote remoteDirectory) mergedDirectory {
	return mergedDirectory{local: local, remote: remote}
}

// MembershipsOfUser returns the local memberships followed by the remote
// ones not already present; a membership on both sides gets the sorted
// union of its roles.
func (d mergedDirectory) MembershipsOfUser(ctx context.Context, userID string) ([]core.Membership, error) {
	local, err := d.local.MembershipsOfUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	remote, err := d.remote.MembershipsOfUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	return mergeMemberships(local, remote), nil
}

func mergeMemberships(lists ...[]core.Membership) []core.Membership {
	type key struct{ tenant, node string }
	var out []core.Membership
	index := map[key]int{}
	for _, list := range lists {
		for _, m := range list {
			k := key{m.TenantID, m.NodeID}
			i, ok := index[k]
			if !ok {
				m.Roles = slices.Clone(m.Roles)
				index[k] = len(out)
				out = append(out, m)
				continue
			}
			roles := append(slices.Clone(out[i].Roles), m.Roles...)
			slices.Sort(roles)
			out[i].Roles = slices.Compact(roles)
		}
	}
	return out
}

// Ancestors asks tenant-service, then the local store for a node it does
// not know.
func (d mergedDirectory) Ancestors(ctx context.Context, nodeID string) ([]tenancy.Ancestor, error) {
	a, err := d.remote.Ancestors(ctx, nodeID)
	if core.IsKind(err, core.KindNotFound) {
		return d.local.Ancestors(ctx, nodeID)
	}
	return a, err
}

// NodeTenantID asks tenant-service, then the local store for a node it
// does not know.
func (d mergedDirectory) NodeTenantID(ctx context.Context, nodeID string) (string, error) {
	tenantID, err := d.remote.NodeTenantID(ctx, nodeID)
	if core.IsKind(err, core.KindNotFound) {
		n, lerr := d.local.NodeByID(ctx, nodeID)
		if lerr != nil {
			return "", lerr
		}
		return n.TenantID, nil
	}
	return tenantID, err
}

// NodeByID returns the local node, or for a node only tenant-service knows
// one carrying just its id and tenant. When tenant-service cannot tell the
// tenant (IDENT_INTERNAL: a root without tenantId) the node is reported
// unknown; IDENT_UNAVAILABLE is returned as is.
func (d mergedDirectory) NodeByID(ctx context.Context, id string) (tenancy.Node, error) {
	n, err := d.local.NodeByID(ctx, id)
	if !core.IsKind(err, core.KindNotFound) {
		return n, err
	}
	tenantID, rerr := d.remote.NodeTenantID(ctx, id)
	switch {
	case rerr == nil:
		return tenancy.Node{ID: id, TenantID: tenantID}, nil
	case core.IsKind(rerr, core.KindUnavailable):
		return tenancy.Node{}, rerr
	default:
		return tenancy.Node{}, err
	}
}

// tenantEventConsumer is the inbox consumer name of the tenant-service
// events that invalidate cached access contexts.
const tenantEventConsumer = "access-context"

// tenantEventTypes are the tenant-service events consumed when
// IDENTITY_TENANT_SERVICE_URL is set.
var tenantEventTypes = []string{access.EventTenantMembershipChanged, access.EventTenantRoleChanged}

// tenantEventRetry is the wait before subscribing again after a failed
// subscription (typically: tenant-service's stream does not exist yet).
var tenantEventRetry = 30 * time.Second

// consumeTenantEvents feeds eventType into the access service's cache
// invalidation until ctx ends. A failed subscription does not stop the
// service: it is logged and retried every tenantEventRetry; so is a
// consumer that stops while the service still runs.
func (m *Main) consumeTenantEvents(ctx context.Context, eventType string) {
	logger := m.logger.With("consumer", tenantEventConsumer, "eventType", eventType)
	handler := func(ctx context.Context, env messaging.Envelope) error {
		err := m.access.HandleTenantEvent(ctx, env.Type, env.Data)
		if core.IsKind(err, core.KindInvalid) {
			// Redelivering malformed data cannot help: drop it.
			logger.ErrorContext(ctx, "dropping a malformed tenant event", "eventId", env.ID, "error", err)
			return nil
		}
		return err
	}
	for {
		c, err := messaging.Consume(ctx, m.bus, m.db, tenantEventConsumer, eventType, handler)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			logger.Warn("cannot subscribe to tenant-service events; access contexts expire by TTL only until it works",
				"retryIn", tenantEventRetry, "error", err)
		} else {
			select {
			case <-ctx.Done():
				// Let the message in hand finish before the bus closes.
				select {
				case <-c.Done():
				case <-time.After(shutdownGrace):
				}
				return
			case <-c.Done():
				logger.Warn("tenant-service event consumer stopped; subscribing again", "retryIn", tenantEventRetry)
			}
		}
		t := time.NewTimer(tenantEventRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
