// Package telemetrytest reads the metrics a test recorded through an SDK
// manual reader.
package telemetrytest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// CounterByAttr collects reader and sums the int64 counter name by the
// value of its attribute key (an absent attribute sums under "").
func CounterByAttr(t testing.TB, reader *sdkmetric.ManualReader, name string, key attribute.Key) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, "%s is not an int64 counter", name)
			for _, dp := range sum.DataPoints {
				v, _ := dp.Attributes.Value(key)
				out[v.AsString()] += dp.Value
			}
		}
	}
	return out
}

// CounterTotal is the sum of the int64 counter name over all attributes.
func CounterTotal(t testing.TB, reader *sdkmetric.ManualReader, name string) int64 {
	t.Helper()
	var n int64
	for _, v := range CounterByAttr(t, reader, name, "") {
		n += v
	}
	return n
}
