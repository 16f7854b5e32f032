// Package rest is the REST transport for mobile apps and platform clients:
// net/http handlers that decode, call one core method and encode, plus the
// one mapping from core errors to RFC 9457 problem+json.
package rest

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strconv"

	"github.com/ghasi-ehealth/identity-service/core"
)

// ProblemTypeBase prefixes the code in a problem's type URI (CONTRACT.md §2).
const ProblemTypeBase = "https://errors.ghasi-ehealth.af/"

// statusOf maps a core error kind to its HTTP status.
func statusOf(k core.Kind) int {
	switch k {
	case core.KindInvalid:
		return http.StatusBadRequest
	case core.KindUnauthenticated:
		return http.StatusUnauthorized
	case core.KindForbidden:
		return http.StatusForbidden
	case core.KindNotFound:
		return http.StatusNotFound
	case core.KindConflict:
		return http.StatusConflict
	case core.KindUnprocessable:
		return http.StatusUnprocessableEntity
	case core.KindRateLimited:
		return http.StatusTooManyRequests
	case core.KindUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// titles are short, stable summaries per code; detail carries the specifics.
var titles = map[string]string{
	core.CodeValidation:         "Invalid request",
	core.CodeUnauthenticated:    "Authentication required",
	core.CodeInvalidCredentials: "Invalid credentials",
	core.CodeForbidden:          "Forbidden",
	core.CodeCrossTenant:        "Cross-tenant access denied",
	core.CodeNotFound:           "Not found",
	core.CodeRateLimited:        "Too many requests",
	core.CodeOverloaded:         "Overloaded",
	core.CodeUnavailable:        "Service unavailable",
	core.CodeInternal:           "Internal error",
}

// Problem is an RFC 9457 problem document with the contract's members.
type Problem struct {
	Type       string            `json:"type"`
	Title      string            `json:"title"`
	Status     int               `json:"status"`
	Detail     string            `json:"detail"`
	Code       string            `json:"code"`
	RequestID  string            `json:"requestId"`
	Fields     map[string]string `json:"fields,omitempty"`
	RetryAfter *int              `json:"retryAfter,omitempty"`
}

// Errors writes err as problem+json. Internal errors are logged with their
// cause and shown only as a generic message.
type Errors struct {
	Logger *slog.Logger
}

// Write renders err for the request r.
func (e Errors) Write(w http.ResponseWriter, r *http.Request, err error) {
	ce := core.AsError(err)
	status := statusOf(ce.Kind)
	if ce.Kind.ServerFault() {
		e.Logger.ErrorContext(r.Context(), "request failed", "code", ce.PublicCode(), "error", err,
			"method", r.Method, "path", r.URL.Path, "request_id", core.RequestIDFrom(r.Context()))
	}
	if dropped := writeProblem(w, r, status, ce); len(dropped) > 0 {
		e.Logger.ErrorContext(r.Context(), "problem members left out: not JSON-encodable", "members", dropped,
			"code", ce.PublicCode(), "path", r.URL.Path, "request_id", core.RequestIDFrom(r.Context()))
	}
}

// writeProblem writes the problem document of ce with status. It returns the
// extra members it had to leave out because they cannot be encoded as JSON
// (core never builds such members; the document stays complete and valid).
func writeProblem(w http.ResponseWriter, r *http.Request, status int, ce *core.Error) (dropped []string) {
	code := ce.PublicCode()
	title := titles[code]
	if title == "" {
		title = http.StatusText(status)
	}
	p := Problem{
		Type: ProblemTypeBase + code, Title: title, Status: status, Detail: ce.Msg,
		Code: code, RequestID: core.RequestIDFrom(r.Context()), Fields: ce.Fields,
	}
	if secs := core.RetryAfterSeconds(ce.RetryAfter); secs > 0 {
		p.RetryAfter = new(int(secs))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	body := any(p)
	if len(ce.Extra) > 0 {
		body, dropped = mergeExtra(p, ce.Extra)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
	return dropped
}

// mergeExtra adds contract members such as challengeId to the problem; the
// standard members win on a name clash. Each member is encoded on its own,
// so one that cannot be (a NaN, malformed json.RawMessage) is left out and
// returned instead of emptying the whole body after the status is written.
func mergeExtra(p Problem, extra map[string]any) (map[string]any, []string) {
	raw, _ := json.Marshal(p)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	var dropped []string
	for k, v := range extra {
		if _, taken := out[k]; taken {
			continue
		}
		enc, err := json.Marshal(v)
		if err != nil {
			dropped = append(dropped, k)
			continue
		}
		out[k] = json.RawMessage(enc)
	}
	slices.Sort(dropped)
	return out, dropped
}
