package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/graph/generated"
)

// MaxBodyBytes caps a GraphQL request (CONTRACT.md §2).
const MaxBodyBytes = 1 << 20

// maxComplexity bounds the work one query may ask for.
const maxComplexity = 2000

// NewHandler returns the /graphql endpoint: POST and GET, introspection for
// the admin UI's tooling, a query-complexity limit, and the error presenter
// that puts the IDENT code in errors[].extensions.code.
func NewHandler(r *Resolver, logger *slog.Logger) http.Handler {
	srv := handler.New(generated.NewExecutableSchema(generated.Config{Resolvers: r}))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(extension.FixedComplexityLimit(maxComplexity))
	srv.SetErrorPresenter(presentError(logger))
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		logger.ErrorContext(ctx, "panic in GraphQL resolver", "panic", v)
		return core.Internal(nil)
	})
	srv.AroundResponses(codeRequestErrors)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		req.Body = http.MaxBytesReader(w, req.Body, MaxBodyBytes)
		if !requireUTF8(w, req) {
			return
		}
		srv.ServeHTTP(w, req)
	})
}

// requireUTF8 answers 400 IDENT_VALIDATION, as a GraphQL error, for a
// request whose body or query string is not UTF-8 (CONTRACT.md §2) or
// escapes half of a UTF-16 surrogate pair on its own ("\ud800"), and reports
// whether the request may go on. gqlgen decodes with encoding/json, which
// would turn each invalid byte, and each lone surrogate, of a string into
// U+FFFD, so a value the client did not send would be validated and stored.
// Query parameters are checked the same way: variables and extensions are
// JSON, and a GraphQL string literal escapes a surrogate as JSON does (the
// parser too decodes a lone one to U+FFFD). Such a literal in a POST body's
// query is escaped again ("\\ud800") and not seen here. A body that cannot
// be read (over MaxBodyBytes) is left to gqlgen, which reports that itself.
func requireUTF8(w http.ResponseWriter, req *http.Request) bool {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{err}))
		return true
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	ok := core.ValidJSONText(body)
	for _, vs := range req.URL.Query() {
		for _, v := range vs {
			ok = ok && core.ValidJSONText([]byte(v))
		}
	}
	if ok {
		return true
	}
	out, _ := json.Marshal(graphql.Response{Errors: gqlerror.List{{
		Message:    "the request is not valid UTF-8",
		Extensions: map[string]any{"code": core.CodeValidation},
	}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write(out)
	return false
}

// errReader fails every read with err (a body that could not be read).
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// presentError maps a resolver error to a GraphQL error: core errors keep
// their safe message and code; gqlgen's own input errors become
// IDENT_VALIDATION; anything else is logged and shown as IDENT_INTERNAL.
func presentError(logger *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var ce *core.Error
		if errors.As(err, &ce) {
			if ce.Kind.ServerFault() {
				logger.ErrorContext(ctx, "GraphQL resolver failed", "code", ce.PublicCode(), "error", err,
					"request_id", core.RequestIDFrom(ctx))
			}
			ext, dropped := extensions(ce)
			if len(dropped) > 0 {
				logger.ErrorContext(ctx, "GraphQL error extensions left out: not JSON-encodable", "members", dropped,
					"code", ce.PublicCode(), "request_id", core.RequestIDFrom(ctx))
			}
			return &gqlerror.Error{Message: ce.Msg, Path: graphql.GetPath(ctx), Extensions: ext}
		}
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) && (gqlErr.Err == nil || isArgumentError(ctx, gqlErr)) {
			out := *gqlErr
			out.Extensions = withCode(gqlErr.Extensions, core.CodeValidation)
			return &out
		}
		logger.ErrorContext(ctx, "GraphQL resolver failed", "error", err, "request_id", core.RequestIDFrom(ctx))
		ext, _ := extensions(core.Internal(nil))
		return &gqlerror.Error{Message: "internal error", Path: graphql.GetPath(ctx), Extensions: ext}
	}
}

// isArgumentError reports whether e was raised while coercing the arguments
// of the field being resolved, e.g. an enum value in the wrong case
// ("active" for ACTIVE), which the variable validator accepts and gqlgen's
// unmarshaller rejects. Such an error carries the argument's path, below the
// field's own; a resolver's error carries the field's path, and the field's
// Args stay unset because coercion failed.
func isArgumentError(ctx context.Context, e *gqlerror.Error) bool {
	fc := graphql.GetFieldContext(ctx)
	return fc != nil && fc.Args == nil && len(e.Path) > len(fc.Path())
}

// extensions are the GraphQL error extensions of ce: code, fields,
// retryAfter and ce.Extra, whose members never override those. An extra
// member that cannot be encoded as JSON (a NaN, a malformed
// json.RawMessage) is left out and returned, since it would make the whole
// response unencodable.
func extensions(ce *core.Error) (ext map[string]any, dropped []string) {
	ext = map[string]any{"code": ce.PublicCode()}
	if len(ce.Fields) > 0 {
		ext["fields"] = ce.Fields
	}
	if secs := core.RetryAfterSeconds(ce.RetryAfter); secs > 0 {
		ext["retryAfter"] = secs
	}
	for k, v := range ce.Extra {
		if _, taken := ext[k]; taken {
			continue
		}
		if _, err := json.Marshal(v); err != nil {
			dropped = append(dropped, k)
			continue
		}
		ext[k] = v
	}
	slices.Sort(dropped)
	return ext, dropped
}

// withCode sets extensions.code, keeping gqlgen's own code as graphqlCode.
func withCode(ext map[string]any, code string) map[string]any {
	out := map[string]any{}
	for k, v := range ext {
		out[k] = v
	}
	if prev, ok := out["code"].(string); ok && prev != code {
		out["graphqlCode"] = prev
	}
	out["code"] = code
	return out
}

// codeRequestErrors gives parse and validation errors, which gqlgen reports
// without the presenter, an IDENT code too.
func codeRequestErrors(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil {
		return resp
	}
	for _, e := range resp.Errors {
		if code, _ := e.Extensions["code"].(string); !strings.HasPrefix(code, "IDENT_") {
			e.Extensions = withCode(e.Extensions, core.CodeValidation)
		}
	}
	return resp
}
