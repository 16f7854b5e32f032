// Package messaging moves domain events out of the database and between
// services: the CloudEvents envelope, the embedded JSON Schemas every event
// must satisfy, the outbox relay (database → broker, at least once), the bus
// (NATS JetStream or an in-process GoChannel) and inbox consumers that
// process each event id once per consumer (docs/EVENT_SCHEMAS.md).
package messaging

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/persistence"
)

// CloudEvents envelope constants (CONTRACT.md §8).
const (
	SpecVersion     = "1.0"
	DataContentType = "application/json"
	// ContentType is the media type of a whole structured-mode envelope; the
	// relay sets it as message metadata so brokers and tools can tell.
	ContentType = "application/cloudevents+json"
)

// Envelope is a CloudEvents 1.0 event in structured JSON mode, exactly as it
// travels on the bus: {specversion, id, type, source, time, subject,
// tenantid, datacontenttype, traceparent?, data}.
type Envelope struct {
	SpecVersion     string
	ID              string
	Type            string
	Source          string
	Time            time.Time
	Subject         string
	TenantID        string
	DataContentType string
	// TraceParent is the W3C trace context of the request that caused the
	// event; omitted from JSON when empty.
	TraceParent string
	// Data is the event payload, a JSON object with camelCase members.
	Data json.RawMessage
}

// wireEnvelope fixes member names and order; Time is formatted by hand so
// it is always RFC 3339 in UTC.
type wireEnvelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Source          string          `json:"source"`
	Time            string          `json:"time"`
	Subject         string          `json:"subject"`
	TenantID        string          `json:"tenantid"`
	DataContentType string          `json:"datacontenttype"`
	TraceParent     string          `json:"traceparent,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// EnvelopeOf builds the envelope of an event stored in the outbox.
func EnvelopeOf(e persistence.StoredEvent) Envelope {
	return Envelope{
		SpecVersion:     SpecVersion,
		ID:              e.ID,
		Type:            e.Type,
		Source:          core.EventSource,
		Time:            e.Time.UTC(),
		Subject:         e.Subject,
		TenantID:        e.TenantID,
		DataContentType: DataContentType,
		TraceParent:     e.Traceparent,
		Data:            e.Data,
	}
}

// MarshalJSON encodes the envelope in CloudEvents structured mode.
func (e Envelope) MarshalJSON() ([]byte, error) {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("null") // the schema then reports the missing object
	}
	return json.Marshal(wireEnvelope{
		SpecVersion:     e.SpecVersion,
		ID:              e.ID,
		Type:            e.Type,
		Source:          e.Source,
		Time:            e.Time.UTC().Format(time.RFC3339Nano),
		Subject:         e.Subject,
		TenantID:        e.TenantID,
		DataContentType: e.DataContentType,
		TraceParent:     e.TraceParent,
		Data:            data,
	})
}

// UnmarshalJSON decodes a structured-mode envelope. It checks only what it
// needs to decode (time must be RFC 3339); schema validation is
// SchemaSet.ValidateEvent's job.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	var w wireEnvelope
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var t time.Time
	if w.Time != "" {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, w.Time); err != nil {
			return fmt.Errorf("envelope time: %w", err)
		}
	}
	*e = Envelope{
		SpecVersion:     w.SpecVersion,
		ID:              w.ID,
		Type:            w.Type,
		Source:          w.Source,
		Time:            t.UTC(),
		Subject:         w.Subject,
		TenantID:        w.TenantID,
		DataContentType: w.DataContentType,
		TraceParent:     w.TraceParent,
		Data:            w.Data,
	}
	return nil
}

// ParseEnvelope decodes payload and checks the members a consumer relies on
// (id and type), so a malformed message can be told from a failing handler.
func ParseEnvelope(payload []byte) (Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		return Envelope{}, err
	}
	if env.ID == "" {
		return Envelope{}, errors.New("envelope has no id")
	}
	if env.Type == "" {
		return Envelope{}, errors.New("envelope has no type")
	}
	return env, nil
}
