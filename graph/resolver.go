// Package graph is the GraphQL transport for the admin UI (gqlgen,
// follow-schema layout). Resolvers decode arguments, call one core method
// and map the result; authorization happens in core.
package graph

import (
	"context"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/access"
	"github.com/ghasi-ehealth/identity-service/core/apikey"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/core/device"
	"github.com/ghasi-ehealth/identity-service/core/federation"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/mfa"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// KeyAdmin is the keyring as administrators see it.
type KeyAdmin interface {
	SigningKeys(ctx context.Context) ([]keys.SigningKey, error)
	RotateAsAdmin(ctx context.Context) (keys.SigningKey, error)
}

// EventLog is the audit/outbox log.
type EventLog interface {
	ListEvents(ctx context.Context, f audit.Filter) (audit.Page, error)
}

// Directory is the tenant directory: tenants, nodes, memberships.
type Directory interface {
	CreateTenant(ctx context.Context, in tenancy.CreateTenantInput) (tenancy.Tenant, error)
	UpdateTenant(ctx context.Context, id string, in tenancy.UpdateTenantInput) (tenancy.Tenant, error)
	ListTenants(ctx context.Context) ([]tenancy.Tenant, error)
	CreateNode(ctx context.Context, in tenancy.CreateNodeInput) (tenancy.Node, error)
	ListNodes(ctx context.Context, tenantID string) ([]tenancy.Node, error)
	AddMembership(ctx context.Context, in tenancy.MembershipInput) (core.Membership, error)
	RemoveMembership(ctx context.Context, userID, tenantID string, nodeID *string) (bool, error)
}

// Users is the user lifecycle.
type Users interface {
	Me(ctx context.Context) (user.User, error)
	Create(ctx context.Context, in user.CreateInput) (user.User, error)
	Get(ctx context.Context, id string) (user.User, error)
	List(ctx context.Context, f user.ListFilter) (user.Page, error)
	Suspend(ctx context.Context, id string) (user.User, error)
	Reactivate(ctx context.Context, id string) (user.User, error)
	Erase(ctx context.Context, id string) (user.User, error)
}

// Factors are users' second factors.
type Factors interface {
	FactorsOf(ctx context.Context, userID string) ([]mfa.FactorInfo, error)
	ResetFactors(ctx context.Context, userID string) error
}

// APIKeys manages tenants' API keys.
type APIKeys interface {
	List(ctx context.Context, tenantID string) ([]apikey.Key, error)
	Create(ctx context.Context, in apikey.CreateInput) (apikey.Created, error)
	Rotate(ctx context.Context, id string, overlap *time.Duration) (apikey.Rotated, error)
	Revoke(ctx context.Context, id string) (apikey.Key, error)
}

// Accounts manages service accounts.
type Accounts interface {
	List(ctx context.Context, tenantID string) ([]serviceaccount.Account, error)
	Create(ctx context.Context, in serviceaccount.CreateInput) (serviceaccount.Created, error)
}

// Licensing is the module catalogue, assignments and effective sets.
type Licensing interface {
	ListModules(ctx context.Context) ([]licensing.Module, error)
	CreateModule(ctx context.Context, in licensing.CreateModuleInput) (licensing.Module, error)
	UpdateModule(ctx context.Context, code string, in licensing.UpdateModuleInput) (licensing.Module, error)
	CreateAssignment(ctx context.Context, in licensing.CreateAssignmentInput) (licensing.Assignment, error)
	ChangeAssignmentStatus(ctx context.Context, id string, to licensing.Status, reason string) (licensing.Assignment, error)
	ListAssignments(ctx context.Context, tenantID, nodeID string) ([]licensing.Assignment, error)
}

// EffectiveLicenses resolves effective sets for administrators.
type EffectiveLicenses interface {
	AdminEffective(ctx context.Context, tenantID, nodeID string) ([]licensing.EffectiveModule, error)
}

// AccessContexts answers "what may the caller use here".
type AccessContexts interface {
	AccessContext(ctx context.Context, nodeID string) (access.Context, error)
}

// Devices manages users' devices.
type Devices interface {
	ListForAdmin(ctx context.Context, userID string, status device.Status) ([]device.Device, error)
	Trust(ctx context.Context, id string) (device.Device, error)
	Revoke(ctx context.Context, id string) (device.Device, error)
}

// Federation configures tenants' OIDC providers.
type Federation interface {
	ConfigureProvider(ctx context.Context, in federation.ProviderInput) (federation.Provider, error)
	RedirectURI(slug string) string
}

// Resolver holds the core services the resolvers call.
type Resolver struct {
	Keyring        KeyAdmin
	Audit          EventLog
	Directory      Directory
	UserService    Users
	MFA            Factors
	KeyService     APIKeys
	AccountService Accounts
	LicenseService Licensing
	Effective      EffectiveLicenses
	Access         AccessContexts
	DeviceService  Devices
	Federation     Federation
}
