package persistence

import (
	"context"
	"strings"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Trace records one client span per SQL statement on tp. The statement text
// is not recorded: bun inlines arguments, which include password hashes and
// wrapped keys; the operation and table-free summary are enough to see
// where a request spends its time.
func (db *DB) Trace(tp trace.TracerProvider) {
	db.bun.AddQueryHook(&traceHook{tracer: tp.Tracer("github.com/ghasi-ehealth/identity-service/persistence"), system: string(db.dialect)})
}

type traceHook struct {
	tracer trace.Tracer
	system string
}

type spanKey struct{}

// BeforeQuery starts the statement's span but leaves the caller's span the
// active one in the returned context: bun hands the context of BEGIN to
// everything run inside the transaction (RunInTx's fn), so an active
// db.begin span would become the parent of every later statement, and the
// outbox traceparent, although it ended at once.
func (h *traceHook) BeforeQuery(ctx context.Context, ev *bun.QueryEvent) context.Context {
	op := operation(ev.Query)
	_, span := h.tracer.Start(ctx, "db."+strings.ToLower(op), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", h.system), attribute.String("db.operation", op)))
	return context.WithValue(ctx, spanKey{}, span)
}

func (h *traceHook) AfterQuery(ctx context.Context, ev *bun.QueryEvent) {
	span, ok := ctx.Value(spanKey{}).(trace.Span)
	if !ok {
		return
	}
	if ev.Err != nil {
		span.SetStatus(codes.Error, "query failed")
	}
	span.End()
}

// operation is the statement's leading keyword (SELECT, INSERT, …).
func operation(query string) string {
	query = strings.TrimSpace(query)
	if i := strings.IndexAny(query, " \n\t("); i > 0 {
		query = query[:i]
	}
	return strings.ToUpper(query)
}
