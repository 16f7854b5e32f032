package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoggerCarriesTraceIDs(t *testing.T) {
	p := setup(t, Config{ServiceName: "identity-service"})
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelInfo)

	ctx, span := p.Tracer().Start(context.Background(), "identity.auth.login")
	sc := span.SpanContext()
	log.InfoContext(ctx, "login ok", "user", "u1")
	log.With("req", "r1").WithGroup("http").InfoContext(ctx, "grouped", "status", 200)
	log.WithGroup("g").With("a", 1).WithGroup("h").InfoContext(ctx, "nested", "b", 2)
	span.End()
	log.InfoContext(context.Background(), "outside a span")
	log.Info("no context")
	log.DebugContext(ctx, "below level")

	lines := decodeLines(t, &buf)
	require.Len(t, lines, 5)

	tests := []struct {
		msg      string
		wantIDs  bool
		wantRest map[string]any
	}{
		{"login ok", true, map[string]any{"user": "u1"}},
		{"grouped", true, map[string]any{"req": "r1", "http": map[string]any{"status": float64(200)}}},
		{"nested", true, map[string]any{"g": map[string]any{"a": float64(1), "h": map[string]any{"b": float64(2)}}}},
		{"outside a span", false, nil},
		{"no context", false, nil},
	}
	for i, tc := range tests {
		t.Run(tc.msg, func(t *testing.T) {
			line := lines[i]
			require.Equal(t, tc.msg, line["msg"])
			require.Equal(t, "INFO", line["level"])
			if tc.wantIDs {
				// Top level even inside groups, so queries find them.
				require.Equal(t, sc.TraceID().String(), line[LogKeyTraceID])
				require.Equal(t, sc.SpanID().String(), line[LogKeySpanID])
			} else {
				require.NotContains(t, line, LogKeyTraceID)
				require.NotContains(t, line, LogKeySpanID)
			}
			for k, v := range tc.wantRest {
				require.Equal(t, v, line[k], k)
			}
		})
	}
}

func TestTraceHandlerSiblingsDoNotShareAttrs(t *testing.T) {
	var buf bytes.Buffer
	base := NewLogger(&buf, slog.LevelInfo).WithGroup("g")
	a := base.With("a", 1)
	b := base.With("b", 2)
	p := setup(t, Config{ServiceName: "identity-service"})
	ctx, span := p.Tracer().Start(context.Background(), "x")
	defer span.End()
	a.InfoContext(ctx, "a")
	b.InfoContext(ctx, "b")

	lines := decodeLines(t, &buf)
	require.Equal(t, map[string]any{"a": float64(1)}, lines[0]["g"])
	require.Equal(t, map[string]any{"b": float64(2)}, lines[1]["g"])
}
