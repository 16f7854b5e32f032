package tenancy

// Event types of the local directory (docs/EVENT_SCHEMAS.md). Each is
// written in the transaction of its state change; the envelope's tenant is
// the tenant concerned.
const (
	// EventTenantCreated: subject tenant id, data TenantData.
	EventTenantCreated = "identity.tenant.created.v1"
	// EventTenantUpdated: subject tenant id, data TenantData (the settings
	// after the update).
	EventTenantUpdated = "identity.tenant.updated.v1"
	// EventNodeCreated: subject node id, data NodeCreatedData.
	EventNodeCreated = "identity.node.created.v1"
	// EventMembershipChanged: subject user id, data MembershipChangedData.
	// Access-context caches drop the user's entries when they see it.
	EventMembershipChanged = "identity.membership.changed.v1"
)

// Values of MembershipChangedData.Change.
const (
	ChangeAdded   = "added"
	ChangeUpdated = "updated"
	ChangeRemoved = "removed"
)

// TenantData is the data of EventTenantCreated and EventTenantUpdated.
type TenantData struct {
	TenantID         string `json:"tenantId"`
	Name             string `json:"name"`
	Slug             string `json:"slug"`
	SelfRegistration bool   `json:"selfRegistration"`
	MFARequired      bool   `json:"mfaRequired"`
}

// NodeCreatedData is the data of EventNodeCreated.
type NodeCreatedData struct {
	NodeID   string  `json:"nodeId"`
	TenantID string  `json:"tenantId"`
	ParentID *string `json:"parentId"` // null for a root
	Name     string  `json:"name"`
	Kind     string  `json:"kind"`
}

// MembershipChangedData is the data of EventMembershipChanged. Roles are the
// roles after the change ("added", "updated") or the roles the removed
// membership held ("removed").
type MembershipChangedData struct {
	UserID   string   `json:"userId"`
	TenantID string   `json:"tenantId"`
	NodeID   *string  `json:"nodeId"` // null for the tenant-wide membership
	Roles    []string `json:"roles"`
	Change   string   `json:"change"`
	ActorID  string   `json:"actorId"`
}

func tenantData(t Tenant) TenantData {
	return TenantData{TenantID: t.ID, Name: t.Name, Slug: t.Slug, SelfRegistration: t.SelfRegistration, MFARequired: t.MFARequired}
}

// optional returns nil for "" and &s otherwise.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
