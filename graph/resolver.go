// Package graph is the GraphQL transport for the admin UI (gqlgen,
// follow-schema layout). Resolvers decode arguments, call one core method
// and map the result; authorization happens in core.
package graph

import (
	"context"

	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/core/keys"
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

// Resolver holds the core services the resolvers call.
type Resolver struct {
	Keyring KeyAdmin
	Audit   EventLog
}
