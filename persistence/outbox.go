package persistence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/propagation"

	"github.com/ghasi-ehealth/identity-service/core"
)

var errOutsideTx = errors.New("outbox: AddEvents called outside a transaction")

// AddEvents writes events to the outbox table in the transaction carried by
// ctx (core.EventSink). Outside InTx it fails: an event must never exist
// without the state change it reports. The W3C traceparent of ctx is stored
// so the relay's publish span links back to the originating request.
func (db *DB) AddEvents(ctx context.Context, events ...core.Event) error {
	if !inTx(ctx) {
		return core.Internal(errOutsideTx)
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	traceparent := carrier.Get("traceparent")
	for _, evt := range events {
		if evt.ID == "" || evt.Subject == "" || evt.Time.IsZero() {
			return core.Internal(fmt.Errorf("outbox: event %q lacks id, subject or time", evt.Type))
		}
		// The relay publishes on subject = type into the identity.> stream;
		// any other type would fail there forever and hold up the events
		// behind it, so refuse it here where the caller sees the bug.
		if !strings.HasPrefix(evt.Type, "identity.") {
			return core.Internal(fmt.Errorf("outbox: event type %q is not under identity.", evt.Type))
		}
		data, err := json.Marshal(evt.Data)
		if err != nil {
			return core.Internal(err)
		}
		// CloudEvents consumers and the schemas expect data to be an object.
		if len(data) == 0 || data[0] != '{' {
			return core.Internal(fmt.Errorf("outbox: data of %s is not a JSON object", evt.Type))
		}
		_, err = db.conn(ctx).ExecContext(ctx,
			`INSERT INTO events (id, type, subject, tenant_id, time, data, traceparent) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			evt.ID, evt.Type, evt.Subject, evt.TenantID, evt.Time.UTC(), string(data), traceparent)
		if err != nil {
			return translate(err)
		}
	}
	return nil
}
