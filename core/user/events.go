package user

import (
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Event types of the user lifecycle (CONTRACT.md §8).
const (
	EventRegistered    = "identity.user.registered.v1"
	EventEmailVerified = "identity.user.email_verified.v1"
	EventSuspended     = "identity.user.suspended.v1"
	EventReactivated   = "identity.user.reactivated.v1"
	EventDeactivated   = "identity.user.deactivated.v1"
)

// erasedFields are the API field names a GDPR erasure empties, as listed in
// identity.user.deactivated.v1.
var erasedFields = []string{"firstName", "lastName", "email"}

// RegisteredData is the payload of identity.user.registered.v1. The
// communication service mails VerificationURL to Email.
type RegisteredData struct {
	UserID                string `json:"userId"`
	TenantID              string `json:"tenantId"`
	Email                 string `json:"email"`
	Status                Status `json:"status"`
	VerificationURL       string `json:"verificationUrl"`
	VerificationExpiresAt string `json:"verificationExpiresAt"`
}

// EmailVerifiedData is the payload of identity.user.email_verified.v1.
type EmailVerifiedData struct {
	UserID   string `json:"userId"`
	TenantID string `json:"tenantId"`
}

// StatusChangedData is the payload of identity.user.suspended.v1 and
// identity.user.reactivated.v1.
type StatusChangedData struct {
	UserID   string `json:"userId"`
	TenantID string `json:"tenantId"`
	ActorID  string `json:"actorId"`
}

// DeactivatedData is the payload of identity.user.deactivated.v1.
type DeactivatedData struct {
	UserID        string   `json:"userId"`
	TenantID      string   `json:"tenantId"`
	ActorID       string   `json:"actorId"`
	ErasedFields  []string `json:"erasedFields"`
	DeactivatedAt string   `json:"deactivatedAt"`
}

func registeredEvent(now time.Time, u User, verificationURL string, expiresAt time.Time) core.Event {
	return core.NewEvent(now, EventRegistered, u.ID, u.TenantID, RegisteredData{
		UserID: u.ID, TenantID: u.TenantID, Email: u.Email, Status: u.Status,
		VerificationURL: verificationURL, VerificationExpiresAt: expiresAt.UTC().Format(time.RFC3339),
	})
}

func emailVerifiedEvent(now time.Time, u User) core.Event {
	return core.NewEvent(now, EventEmailVerified, u.ID, u.TenantID, EmailVerifiedData{UserID: u.ID, TenantID: u.TenantID})
}

func statusChangedEvent(now time.Time, eventType string, u User, actorID string) core.Event {
	return core.NewEvent(now, eventType, u.ID, u.TenantID, StatusChangedData{UserID: u.ID, TenantID: u.TenantID, ActorID: actorID})
}

func deactivatedEvent(now time.Time, u User, actorID string) core.Event {
	return core.NewEvent(now, EventDeactivated, u.ID, u.TenantID, DeactivatedData{
		UserID: u.ID, TenantID: u.TenantID, ActorID: actorID,
		ErasedFields: append([]string(nil), erasedFields...), DeactivatedAt: now.UTC().Format(time.RFC3339Nano),
	})
}
