package licensing

import (
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Event types (CONTRACT.md §8; schemas in messaging/schemas).
const (
	EventModuleCreated           = "identity.license.module.created.v1"
	EventModuleUpdated           = "identity.license.module.updated.v1"
	EventAssignmentCreated       = "identity.license.assignment.created.v1"
	EventAssignmentStatusChanged = "identity.license.assignment.status_changed.v1"
)

// ModuleData is the data of the module events; subject is the code and the
// tenant is "" (platform-wide).
type ModuleData struct {
	Code        string   `json:"code"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	DependsOn   []string `json:"dependsOn"`
	IsAlwaysOn  bool     `json:"isAlwaysOn"`
}

// AssignmentData is the data of the assignment events; subject is the
// assignment id. FromStatus is absent on creation.
type AssignmentData struct {
	AssignmentID string  `json:"assignmentId"`
	TenantID     string  `json:"tenantId"`
	NodeID       string  `json:"nodeId"`
	ModuleCode   string  `json:"moduleCode"`
	FromStatus   *Status `json:"fromStatus,omitempty"`
	ToStatus     Status  `json:"toStatus"`
	Reason       *string `json:"reason,omitempty"`
}

func moduleEvent(now time.Time, eventType string, m Module) core.Event {
	deps := m.DependsOn
	if deps == nil {
		deps = []string{}
	}
	return core.NewEvent(now, eventType, m.Code, "", ModuleData{Code: m.Code, Name: m.Name,
		Description: m.Description, DependsOn: deps, IsAlwaysOn: m.IsAlwaysOn})
}

func assignmentEvent(now time.Time, eventType string, a Assignment, from *Status, reason string) core.Event {
	d := AssignmentData{AssignmentID: a.ID, TenantID: a.TenantID, NodeID: a.NodeID, ModuleCode: a.ModuleCode,
		FromStatus: from, ToStatus: a.Status}
	if reason != "" {
		d.Reason = &reason
	}
	return core.NewEvent(now, eventType, a.ID, a.TenantID, d)
}
