package telemetry

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Log keys added to records made inside a span. They match the names the
// OpenTelemetry log data model uses, so a log pipeline can join logs to
// traces without a mapping.
const (
	LogKeyTraceID = "trace_id"
	LogKeySpanID  = "span_id"
)

// NewLogger returns a JSON slog.Logger writing to w at level and above.
// A record logged with a context that carries a valid span (the
// *Context methods, e.g. logger.InfoContext(ctx, …)) gets top-level
// "trace_id" and "span_id" attributes, hex-encoded as in W3C traceparent.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(NewTraceHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})))
}

// NewTraceHandler wraps next so that records logged inside a span carry
// trace_id and span_id. Use it to add trace ids to a handler other than
// the JSON one NewLogger builds.
func NewTraceHandler(next slog.Handler) slog.Handler {
	return &traceHandler{base: next, inner: next}
}

// traceHandler adds the span's ids to each record.
//
// The ids must stay top-level even after WithGroup, or they would end up as
// "group.trace_id" and log queries would miss them. Attributes added in
// Handle land in the innermost open group, so once a group is open the
// handler rebuilds the chain for that record: base + trace attrs, then the
// recorded WithAttrs/WithGroup calls replayed. Without groups (the common
// case) it just appends to the record.
type traceHandler struct {
	base  slog.Handler                      // the handler given to NewTraceHandler
	inner slog.Handler                      // base with ops applied
	ops   []func(slog.Handler) slog.Handler // WithAttrs/WithGroup calls, in order
	group bool                              // a WithGroup is among ops
}

func (h *traceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return h.inner.Handle(ctx, r)
	}
	ids := []slog.Attr{
		slog.String(LogKeyTraceID, sc.TraceID().String()),
		slog.String(LogKeySpanID, sc.SpanID().String()),
	}
	if !h.group {
		// Clone: a record may be shared with other handlers, and AddAttrs
		// on a shallow copy can write into their backing array.
		r = r.Clone()
		r.AddAttrs(ids...)
		return h.inner.Handle(ctx, r)
	}
	next := h.base.WithAttrs(ids)
	for _, op := range h.ops {
		next = op(next)
	}
	return next.Handle(ctx, r)
}

func (h *traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(func(n slog.Handler) slog.Handler { return n.WithAttrs(attrs) }, false)
}

func (h *traceHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(n slog.Handler) slog.Handler { return n.WithGroup(name) }, true)
}

func (h *traceHandler) with(op func(slog.Handler) slog.Handler, isGroup bool) *traceHandler {
	// A fresh slice each time: handlers derived from the same parent must
	// not share (and overwrite) one backing array.
	ops := make([]func(slog.Handler) slog.Handler, len(h.ops), len(h.ops)+1)
	copy(ops, h.ops)
	return &traceHandler{
		base:  h.base,
		inner: op(h.inner),
		ops:   append(ops, op),
		group: h.group || isGroup,
	}
}
