package persistence_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

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
