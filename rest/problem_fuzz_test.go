package rest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/internal/errtest"
	"github.com/ghasi-ehealth/identity-service/rest"
)

// causeMarker starts every cause the fuzz targets build, so a leaked cause is
// recognisable in a response whatever the fuzzed text around it.
const causeMarker = "cause-marker-7f3a"

// problemStatus is the contract's HTTP status of each kind (CONTRACT.md §2);
// anything else is a 500.
var problemStatus = map[core.Kind]int{
	core.KindInvalid:         http.StatusBadRequest,
	core.KindUnauthenticated: http.StatusUnauthorized,
	core.KindForbidden:       http.StatusForbidden,
	core.KindNotFound:        http.StatusNotFound,
	core.KindConflict:        http.StatusConflict,
	core.KindUnprocessable:   http.StatusUnprocessableEntity,
	core.KindRateLimited:     http.StatusTooManyRequests,
	core.KindUnavailable:     http.StatusServiceUnavailable,
	core.KindInternal:        http.StatusInternalServerError,
}

// FuzzProblem renders arbitrary core errors — any kind (also out of range),
// code, message, cause, fields, extra members (also unencodable ones) and
// Retry-After, bare, wrapped or foreign — with Errors.Write. The answer is
// always one JSON problem document with the kind's 4xx/5xx status,
// application/problem+json and no-store; the code is the error's contract
// code or the kind's generic one, and type agrees; the standard members win
// over extras, and an extra that cannot be encoded is left out (and logged)
// instead of emptying the body; the cause never reaches the client, and
// every 5xx is logged with it.
// Run with: go test -run '^$' -fuzz '^FuzzProblem$' ./rest
func FuzzProblem(f *testing.F) {
	type seed struct {
		kind                                       int
		code, msg, cause, fieldKey, fieldVal, xKey string
		xStr                                       string
		xNum                                       float64
		retry                                      int64
		shape                                      uint8
	}
	for _, s := range []seed{
		{int(core.KindInvalid), core.CodeValidation, "email: must be an address", "", "email", "must be an address", "", "", 0, 0, 0},
		{int(core.KindUnauthenticated), core.CodeUnauthenticated, "authentication required", "jwt: bad signature", "", "", "", "", 0, 0, 1},
		{int(core.KindUnauthenticated), core.CodeMFARequired, "a second factor is required", "", "", "", "challengeId", "0190-abc", 3, 0, 0},
		{int(core.KindForbidden), core.CodeCrossTenant, "the resource belongs to another tenant", "", "", "", "", "", 0, 0, 0},
		{int(core.KindNotFound), core.CodeNotFound, "user not found", "sql: no rows", "", "", "", "", 0, 0, 0},
		{int(core.KindConflict), core.CodeEmailDuplicate, "email already registered", "", "", "", "code", "IDENT_FAKE", 0, 0, 0},
		{int(core.KindUnprocessable), core.CodeLicTerminated, "terminated", "", "", "", "status", "200", 0, 0, 0},
		{int(core.KindRateLimited), core.CodeRateLimited, "too many requests", "", "", "", "", "", 0, int64(1500 * time.Millisecond), 0},
		{int(core.KindUnavailable), core.CodeOverloaded, "try again", "pool exhausted", "", "", "", "", 0, int64(time.Second), 1},
		{int(core.KindUnavailable), core.CodeUnavailable, "a dependency is unavailable; try again later", "pq: password authentication failed", "", "", "", "", 0, 0, 0},
		{int(core.KindInternal), core.CodeInternal, "internal error", "panic: runtime error", "", "", "", "", 0, 0, 0},
		{int(core.KindInternal), "", "", "", "", "", "", "", 0, 0, 0},
		{42, "IDENT_WHATEVER", "out of range", "boom", "", "", "", "", 0, 0, 0},
		{-1, "", "", "", "", "", "", "", 0, 0, 2},
		{int(core.KindInvalid), core.CodeValidation, "\xff\xfe", "", "\xff", "\x00", "\xc3", "\u2028", 1e308, 0, 3},
		{int(core.KindRateLimited), core.CodeRateLimited, "", "", "", "", "", "", 0, 1, 0},
		{int(core.KindRateLimited), core.CodeRateLimited, "", "", "", "", "", "", 0, -5, 0},
		{int(core.KindRateLimited), core.CodeRateLimited, "", "", "", "", "", "", 0, 1<<63 - 1, 0},
		// Extras that cannot be encoded: NaN, a malformed json.RawMessage
		// (e.g. the webauthn options of IDENT_MFA_REQUIRED); a valid one.
		{int(core.KindUnauthenticated), core.CodeMFARequired, "mfa", "", "", "", "challengeId", "c-1", math.NaN(), 0, 0},
		{int(core.KindUnauthenticated), core.CodeMFARequired, "mfa", "", "", "", "webauthn", `{"challenge":`, math.Inf(-1), 0, 4},
		{int(core.KindUnauthenticated), core.CodeMFARequired, "mfa", "", "", "", "webauthn", `{"rpId": "localhost"}`, 0, 0, 4},
		{int(core.KindUnauthenticated), core.CodeMFARequired, "mfa", "", "", "", "webauthn", ``, 0, 0, 4},
	} {
		f.Add(s.kind, s.code, s.msg, s.cause, s.fieldKey, s.fieldVal, s.xKey, s.xStr, s.xNum, s.retry, s.shape)
	}
	f.Fuzz(func(t *testing.T, kind int, code, msg, cause, fieldKey, fieldVal, xKey, xStr string, xNum float64, retry int64, shape uint8) {
		in := fuzzError(core.Kind(kind), code, msg, cause, fieldKey, fieldVal, xKey, xStr, xNum, retry, shape&4 != 0)
		err, foreign := shapeError(in, shape)

		var logs bytes.Buffer
		errs := rest.Errors{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
		req := httptest.NewRequest(http.MethodGet, "/api/v1/x", nil)
		req = req.WithContext(core.WithRequestID(req.Context(), "req-1"))
		rec := httptest.NewRecorder()
		errs.Write(rec, req, err)

		want := in
		if foreign {
			want = core.Internal(nil)
		}
		status, ok := problemStatus[want.Kind]
		if !ok {
			status = http.StatusInternalServerError
		}
		require.Equal(t, status, rec.Code)
		require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
		require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))

		body := rec.Body.Bytes()
		dec := json.NewDecoder(bytes.NewReader(body))
		var doc map[string]any
		require.NoError(t, dec.Decode(&doc), "a JSON object: %q", body)
		require.False(t, dec.More(), "exactly one JSON value: %q", body)
		var p rest.Problem
		require.NoError(t, json.Unmarshal(body, &p))

		require.Equal(t, status, p.Status)
		require.Equal(t, errtest.WantCode(want), p.Code, "the core code, or the kind's generic one")
		require.Equal(t, rest.ProblemTypeBase+p.Code, p.Type)
		require.NotEmpty(t, p.Title)
		require.Equal(t, "req-1", p.RequestID)
		if utf8.ValidString(want.Msg) {
			require.Equal(t, want.Msg, p.Detail)
		}
		if len(want.Fields) > 0 && utf8.ValidString(fieldKey) && utf8.ValidString(fieldVal) {
			require.Equal(t, want.Fields, p.Fields)
		}

		// Retry-After: whole seconds, rounded up, header = member.
		if want.RetryAfter > 0 {
			require.NotNil(t, p.RetryAfter, "%s", body)
			require.Equal(t, errtest.CeilSeconds(want.RetryAfter), int64(*p.RetryAfter))
			require.Equal(t, strconv.Itoa(*p.RetryAfter), rec.Header().Get("Retry-After"))
		} else {
			require.Nil(t, p.RetryAfter)
			require.Empty(t, rec.Header().Get("Retry-After"))
		}

		// Extras never override a standard member; others are passed on if
		// they can be encoded, and left out (and logged) if not.
		if s, ok := doc["code"].(string); ok {
			require.Equal(t, p.Code, s)
		}
		std := map[string]bool{"type": true, "title": true, "status": true, "detail": true, "code": true, "requestId": true,
			"fields": len(want.Fields) > 0, "retryAfter": want.RetryAfter > 0}
		for k, v := range want.Extra {
			if std[k] || !utf8.ValidString(k) {
				continue
			}
			enc, encErr := json.Marshal(v)
			if encErr != nil {
				require.NotContains(t, doc, k, "an unencodable member is left out")
				require.Contains(t, logs.String(), "not JSON-encodable")
				continue
			}
			var wantVal any
			require.NoError(t, json.Unmarshal(enc, &wantVal))
			require.Equal(t, wantVal, doc[k], "extra member %q", k)
		}

		// The cause is never shown; every 5xx is logged with it.
		if !strings.Contains(code+msg+fieldKey+fieldVal+xKey+xStr, causeMarker) {
			require.NotContains(t, string(body), causeMarker, "the cause leaked: %s", body)
		}
		if status >= 500 {
			require.Contains(t, logs.String(), causeMarker, "a 5xx is logged with its cause")
		}
	})
}

// fuzzError builds a core error from fuzzed parts; its cause always carries
// causeMarker. The extra member xKey is xStr, as a string or (raw) as a
// json.RawMessage, which may be malformed; a non-zero xNum, which may be NaN
// or infinite, is the extra member "n".
func fuzzError(kind core.Kind, code, msg, cause, fieldKey, fieldVal, xKey, xStr string, xNum float64, retry int64, raw bool) *core.Error {
	e := &core.Error{Kind: kind, Code: code, Msg: msg, Err: errors.New(causeMarker + ": " + cause), RetryAfter: time.Duration(retry)}
	if fieldKey != "" {
		e.Fields = map[string]string{fieldKey: fieldVal}
	}
	if xKey != "" {
		e.Extra = map[string]any{xKey: xStr}
		if raw {
			e.Extra[xKey] = json.RawMessage(xStr)
		}
		if xNum != 0 && xKey != "n" {
			e.Extra["n"] = xNum
		}
	}
	return e
}

// shapeError presents e as a handler might return it: bare, wrapped, joined
// with another error, or not at all (a foreign error, which must become
// IDENT_INTERNAL).
func shapeError(e *core.Error, shape uint8) (err error, foreign bool) {
	switch shape % 4 {
	case 1:
		return fmt.Errorf("handler: %w", e), false
	case 2:
		return fmt.Errorf("query users: %w", e.Err), true
	case 3:
		return errors.Join(context.Canceled, e), false
	default:
		return e, false
	}
}
