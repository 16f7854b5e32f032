package access

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
)

// tenant-service events that invalidate access contexts (CONTRACT.md §7).
const (
	EventTenantMembershipChanged = "tenant.membership.changed.v1"
	EventTenantRoleChanged       = "tenant.role.changed.v1"
)

// InvalidateUser drops every cached context of userID (membership and role changes).
func (s *Service) InvalidateUser(ctx context.Context, userID string) error {
	return s.cache.InvalidateUser(ctx, userID)
}

// InvalidateTenant drops every cached context in tenantID (licensing changes).
func (s *Service) InvalidateTenant(ctx context.Context, tenantID string) error {
	return s.cache.InvalidateTenant(ctx, tenantID)
}

// InvalidateAll drops every cached context (module catalogue changes).
func (s *Service) InvalidateAll(ctx context.Context) error {
	return s.cache.InvalidateAll(ctx)
}

// tenantEventData is the part of a tenant-service event's data read here.
type tenantEventData struct {
	UserID   string `json:"userId"`
	TenantID string `json:"tenantId"`
}

// HandleTenantEvent invalidates after a tenant-service event (the CloudEvent
// type and its data): data.userId invalidates that user; without it,
// data.tenantId the tenant; without either, everything. Other event types
// are ignored. Errors: IDENT_VALIDATION for data that is not a JSON object
// (do not redeliver); the cache's IDENT_UNAVAILABLE (redeliver).
func (s *Service) HandleTenantEvent(ctx context.Context, eventType string, data json.RawMessage) error {
	if eventType != EventTenantMembershipChanged && eventType != EventTenantRoleChanged {
		return nil
	}
	var d tenantEventData
	if err := json.Unmarshal(data, &d); err != nil {
		return core.Wrap(fmt.Errorf("%s data: %w", eventType, err), core.KindInvalid, core.CodeValidation, "malformed event data")
	}
	switch {
	case d.UserID != "":
		return s.cache.InvalidateUser(ctx, d.UserID)
	case d.TenantID != "":
		return s.cache.InvalidateTenant(ctx, d.TenantID)
	default:
		return s.cache.InvalidateAll(ctx)
	}
}

// LocalStore is what LocalDirectory reads; *persistence.TenancyStore implements it.
type LocalStore interface {
	core.MembershipReader
	tenancy.Hierarchy
	NodeByID(ctx context.Context, id string) (tenancy.Node, error)
}

// LocalDirectory is Directory over the local tenant directory's store.
type LocalDirectory struct{ LocalStore }

var _ Directory = LocalDirectory{}

// NewLocalDirectory returns the Directory of the embedded tenant directory.
func NewLocalDirectory(store LocalStore) LocalDirectory { return LocalDirectory{store} }

// NodeTenantID returns the tenant of nodeID, or IDENT_NOT_FOUND.
func (d LocalDirectory) NodeTenantID(ctx context.Context, nodeID string) (string, error) {
	n, err := d.NodeByID(ctx, nodeID)
	if err != nil {
		return "", err
	}
	return n.TenantID, nil
}
