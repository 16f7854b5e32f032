package persistence_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestTraceRecordsOneSpanPerStatement(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	db := dbtest.SQLite(t)
	db.Trace(tp)
	_, err := db.Bun().ExecContext(context.Background(), "SELECT 1")
	require.NoError(t, err)
	_, err = db.Bun().ExecContext(context.Background(), "SELEKT 1")
	require.Error(t, err)
	spans := exporter.GetSpans()
	require.Len(t, spans, 2)
	require.Equal(t, "db.select", spans[0].Name)
	require.Equal(t, "db.selekt", spans[1].Name)
	require.Equal(t, "Error", spans[1].Status.Code.String())
	for _, kv := range spans[0].Attributes {
		require.NotEqual(t, "db.statement", string(kv.Key), "statements carry secrets; never recorded")
	}
}

// TestTraceStatementsInTxAreChildrenOfCaller: bun runs a transaction's body
// with the context its BEGIN hook returned; the statements (and the outbox
// traceparent) must hang off the caller's span, not off the ended db.begin.
func TestTraceStatementsInTxAreChildrenOfCaller(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	db := dbtest.SQLite(t)
	db.Trace(tp)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "caller")
	require.NoError(t, db.InTx(ctx, func(ctx context.Context) error {
		require.Equal(t, parent.SpanContext(), trace.SpanContextFromContext(ctx), "the caller's span stays active")
		_, err := db.Bun().ExecContext(ctx, "SELECT 1")
		return err
	}))
	parent.End()
	spans := exporter.GetSpans()
	names := make([]string, 0, len(spans))
	for _, sp := range spans {
		names = append(names, sp.Name)
		if sp.Name != "caller" {
			require.Equal(t, parent.SpanContext().SpanID(), sp.Parent.SpanID(), "%s is a child of the caller", sp.Name)
		}
	}
	require.Equal(t, []string{"db.begin", "db.select", "db.commit", "caller"}, names)
}
