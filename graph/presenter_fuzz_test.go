package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/internal/errtest"
)

// causeMarker starts every cause FuzzPresentError builds, so a leaked cause
// is recognisable whatever the fuzzed text around it.
const causeMarker = "cause-marker-7f3a"

// FuzzPresentError runs arbitrary errors through the GraphQL error presenter
// and the response hook that codes request errors: core errors of any kind
// (also out of range), code, message, cause, fields, extras and Retry-After,
// bare, wrapped or joined; foreign errors; gqlgen's own input errors and
// resolver errors it wraps. The result always marshals to a GraphQL error
// whose extensions.code is an IDENT code — the core error's, or the kind's
// generic one — with the core error's safe message, never the cause; standard
// extensions win over extras, and an extra that cannot be encoded is left out
// (and logged) instead of breaking the response; server faults are logged
// with their cause.
// Run with: go test -run '^$' -fuzz '^FuzzPresentError$' ./graph
func FuzzPresentError(f *testing.F) {
	for _, s := range []struct {
		kind                                 int
		code, msg, cause, fieldKey, fieldVal string
		xKey, xStr                           string
		retry                                int64
		shape                                uint8
	}{
		{int(core.KindInvalid), core.CodeValidation, "email: must be an address", "", "email", "must be an address", "", "", 0, 0},
		{int(core.KindUnauthenticated), core.CodeUnauthenticated, "authentication required", "jwt: expired", "", "", "", "", 0, 1},
		{int(core.KindForbidden), core.CodeCrossTenant, "the resource belongs to another tenant", "", "", "", "code", "IDENT_FAKE", 0, 3},
		{int(core.KindNotFound), core.CodeNotFound, "user not found", "sql: no rows", "", "", "fields", "x", 0, 0},
		{int(core.KindConflict), "", "taken", "", "", "", "", "", 0, 0},
		{int(core.KindUnprocessable), core.CodeLicTerminated, "terminated", "", "", "", "retryAfter", "soon", 0, 0},
		{int(core.KindRateLimited), core.CodeRateLimited, "too many requests", "", "", "", "", "", int64(1500 * time.Millisecond), 0},
		{int(core.KindUnavailable), core.CodeUnavailable, "a dependency is unavailable", "pq: password authentication failed", "", "", "", "", 0, 1},
		{int(core.KindInternal), core.CodeInternal, "internal error", "nil map", "", "", "", "", 0, 0},
		{77, "IDENT_X", "m", "boom", "", "", "", "", 0, 0},
		{-3, "not a code", "", "", "", "", "", "", 0, 0},
		{0, "", "", "pq: relation does not exist", "", "", "", "", 0, 2},
		{0, "GRAPHQL_VALIDATION_FAILED", "Cannot query field \"x\"", "", "", "", "", "", 0, 4},
		{0, "", "invalid value \"active\" for enum", "strconv: bad", "", "", "", "", 0, 5},
		{0, "", "resolver failed", "pq: connection refused", "", "", "", "", 0, 5 + 6},
		{int(core.KindRateLimited), core.CodeRateLimited, "\xff", "", "\xc3", "", "\xfe", "", 1<<63 - 1, 0},
		{int(core.KindUnauthenticated), core.CodeMFARequired, "mfa", "", "", "", "webauthn", `{"rpId": "localhost"}`, 0, 12},
		{int(core.KindUnauthenticated), core.CodeMFARequired, "mfa", "", "", "", "webauthn", `{"challenge":`, 0, 12},
	} {
		f.Add(s.kind, s.code, s.msg, s.cause, s.fieldKey, s.fieldVal, s.xKey, s.xStr, s.retry, s.shape)
	}
	f.Fuzz(func(t *testing.T, kind int, code, msg, cause, fieldKey, fieldVal, xKey, xStr string, retry int64, shape uint8) {
		causeErr := errors.New(causeMarker + ": " + cause)
		in := &core.Error{Kind: core.Kind(kind), Code: code, Msg: msg, Err: causeErr, RetryAfter: time.Duration(retry)}
		if fieldKey != "" {
			in.Fields = map[string]string{fieldKey: fieldVal}
		}
		if xKey != "" {
			in.Extra = map[string]any{xKey: xStr}
			if shape/12%2 == 1 { // a json.RawMessage, which may be malformed
				in.Extra[xKey] = json.RawMessage(xStr)
			}
		}

		// A field context as gqlgen sets it: "users", its arguments coerced
		// (resolver errors) or not (argument errors, one level deeper).
		argsCoerced := shape/6%2 == 1
		fc := &graphql.FieldContext{Object: "Query", Field: graphql.CollectedField{Field: &ast.Field{Alias: "users", Name: "users"}}}
		if argsCoerced {
			fc.Args = map[string]any{}
		}
		ctx := graphql.WithFieldContext(core.WithRequestID(context.Background(), "req-1"), fc)

		var err error
		var want *core.Error // nil: a gqlgen input error, kept as IDENT_VALIDATION
		switch shape % 6 {
		case 0:
			err, want = in, in
		case 1:
			err, want = fmt.Errorf("resolver: %w", in), in
		case 2:
			err, want = fmt.Errorf("query: %w", causeErr), core.Internal(nil)
		case 3:
			err, want = errors.Join(context.Canceled, in), in
		case 4:
			err = &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
		case 5:
			if argsCoerced { // a resolver error gqlgen wrapped: a foreign error
				err, want = &gqlerror.Error{Message: causeMarker + msg, Path: fc.Path(), Err: causeErr}, core.Internal(nil)
			} else { // coercing an argument failed
				err = &gqlerror.Error{Message: msg, Path: append(fc.Path(), ast.PathName("status")), Err: causeErr}
			}
		}

		var logs bytes.Buffer
		present := presentError(slog.New(slog.NewJSONHandler(&logs, nil)))
		out := present(ctx, err)
		require.NotNil(t, out)
		resp := codeRequestErrors(ctx, func(context.Context) *graphql.Response {
			return &graphql.Response{Errors: gqlerror.List{out}, Data: json.RawMessage(`null`)}
		})
		raw, merr := json.Marshal(resp)
		require.NoError(t, merr)
		var doc struct {
			Errors []struct {
				Message    string         `json:"message"`
				Path       []any          `json:"path"`
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		require.NoError(t, json.Unmarshal(raw, &doc), "%s", raw)
		require.Len(t, doc.Errors, 1)
		got := doc.Errors[0]
		gotCode, _ := got.Extensions["code"].(string)
		require.True(t, strings.HasPrefix(gotCode, "IDENT_"), "extensions.code %q is an IDENT code", gotCode)

		if want == nil {
			require.Equal(t, core.CodeValidation, gotCode)
			if utf8.ValidString(msg) {
				require.Equal(t, msg, got.Message)
			}
		} else {
			require.Equal(t, errtest.WantCode(want), gotCode, "the core code, or the kind's generic one")
			if utf8.ValidString(want.Msg) {
				require.Equal(t, want.Msg, got.Message)
			}
			require.Equal(t, []any{"users"}, got.Path)
			if len(want.Fields) > 0 && utf8.ValidString(fieldKey) && utf8.ValidString(fieldVal) {
				require.Equal(t, map[string]any{fieldKey: fieldVal}, got.Extensions["fields"])
			}
			if want.RetryAfter > 0 {
				secs := int64(want.RetryAfter / time.Second)
				if want.RetryAfter%time.Second != 0 {
					secs++
				}
				require.EqualValues(t, secs, got.Extensions["retryAfter"])
			} else if xKey != "retryAfter" {
				require.NotContains(t, got.Extensions, "retryAfter")
			}
			if want.Extra != nil && utf8.ValidString(xKey) && xKey != "code" && xKey != "graphqlCode" &&
				!(xKey == "fields" && len(want.Fields) > 0) && !(xKey == "retryAfter" && want.RetryAfter > 0) {
				enc, encErr := json.Marshal(want.Extra[xKey])
				if encErr != nil {
					require.NotContains(t, got.Extensions, xKey, "an unencodable member is left out")
					require.Contains(t, logs.String(), "not JSON-encodable")
				} else {
					var wantVal any
					require.NoError(t, json.Unmarshal(enc, &wantVal))
					require.Equal(t, wantVal, got.Extensions[xKey], "extra member %q", xKey)
				}
			}
			if !errtest.ClientFault(want.Kind) {
				require.Contains(t, logs.String(), causeMarker, "a server fault is logged with its cause")
			}
		}
		if !strings.Contains(code+msg+fieldKey+fieldVal+xKey+xStr, causeMarker) {
			require.NotContains(t, string(raw), causeMarker, "the cause leaked: %s", raw)
		}
	})
}
