package core

import (
	"context"
	"time"
)

// EventSource is the CloudEvents source of every event this service emits.
const EventSource = "identity-service"

// Event is a domain event, written to the outbox in the same transaction as
// the state change it describes (CONTRACT.md §8). Data is marshalled to JSON
// with camelCase members and must never carry a secret.
type Event struct {
	ID       string
	Type     string
	Subject  string
	TenantID string
	Time     time.Time
	Data     any
}

// NewEvent returns an event with a fresh UUIDv7 id, stamped at now.
func NewEvent(now time.Time, eventType, subject, tenantID string, data any) Event {
	return Event{ID: NewID(), Type: eventType, Subject: subject, TenantID: tenantID, Time: now.UTC(), Data: data}
}

// EventSink adds events to the outbox of the transaction carried by ctx.
// Implementations fail when called outside a transaction, so an event can
// never be committed without its state change.
type EventSink interface {
	AddEvents(ctx context.Context, events ...Event) error
}
