package messaging

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaFS holds one JSON Schema (draft 2020-12) per event type, named
// <type>.json, plus envelope.json with the shared envelope and definitions.
//
//go:embed schemas/*.json
var schemaFS embed.FS

// SchemaBaseURL is the $id prefix of every embedded schema.
const SchemaBaseURL = "https://schemas.ghasi-ehealth.af/identity/events/"

const envelopeSchemaFile = "envelope.json"

// SchemaSet validates event envelopes against the embedded JSON Schemas. It
// compiles every schema once in NewSchemaSet and is safe for concurrent use.
type SchemaSet struct {
	schemas map[string]*jsonschema.Schema
}

// NewSchemaSet compiles every embedded schema; an error means a schema file
// is broken (a build defect, not a runtime condition).
func NewSchemaSet() (*SchemaSet, error) {
	files, err := fs.Glob(schemaFS, "schemas/*.json")
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Draft 2020-12 treats format as an annotation; we want uuid, date-time
	// and friends enforced.
	c.AssertFormat()
	var types []string
	for _, f := range files {
		raw, err := schemaFS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", f, err)
		}
		name := path.Base(f)
		if err := c.AddResource(SchemaBaseURL+name, doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", f, err)
		}
		if name != envelopeSchemaFile {
			types = append(types, strings.TrimSuffix(name, ".json"))
		}
	}
	set := &SchemaSet{schemas: make(map[string]*jsonschema.Schema, len(types))}
	for _, t := range types {
		sch, err := c.Compile(SchemaBaseURL + t + ".json")
		if err != nil {
			return nil, fmt.Errorf("compile schema of %s: %w", t, err)
		}
		set.schemas[t] = sch
	}
	return set, nil
}

// Types lists the event types that have a schema, sorted.
func (s *SchemaSet) Types() []string {
	types := make([]string, 0, len(s.schemas))
	for t := range s.schemas {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// SchemaJSON returns the raw schema document of eventType (for docs and tools).
func SchemaJSON(eventType string) ([]byte, error) {
	return schemaFS.ReadFile("schemas/" + eventType + ".json")
}

// ErrUnknownEventType is returned for an envelope whose type has no schema.
var ErrUnknownEventType = errors.New("no schema for event type")

// ValidateEvent checks one envelope (CloudEvents structured JSON) against
// the schema of its type, and that an envelope's tenantid equals
// data.tenantId where the data carries one (the audit log filters tenants
// by the envelope's tenant, so the two must agree). The error names every
// violation; it wraps ErrUnknownEventType when the type has no schema.
func (s *SchemaSet) ValidateEvent(envelopeJSON []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(envelopeJSON))
	if err != nil {
		return fmt.Errorf("event is not JSON: %w", err)
	}
	obj, ok := inst.(map[string]any)
	if !ok {
		return errors.New("event is not a JSON object")
	}
	eventType, _ := obj["type"].(string)
	sch, ok := s.schemas[eventType]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownEventType, eventType)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("event %s violates its schema: %w", eventType, err)
	}
	if strings.HasPrefix(eventType, "identity.") {
		if data, ok := obj["data"].(map[string]any); ok {
			if tid, ok := data["tenantId"].(string); ok && tid != obj["tenantid"] {
				return fmt.Errorf("event %s: envelope tenantid %q differs from data.tenantId %q", eventType, obj["tenantid"], tid)
			}
		}
	}
	return nil
}

// ValidateEnvelope marshals env and validates it (see ValidateEvent).
func (s *SchemaSet) ValidateEnvelope(env Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	return s.ValidateEvent(b)
}
