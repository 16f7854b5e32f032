package main

// Helpers for TestHostileInput: the hostile values, the request builders that
// put one of them into one field of an otherwise sane request (raw bytes, so
// invalid UTF-8 reaches the server as sent), and the per-transport checks of
// the answer. Requests never fail the test themselves: they run on a pool of
// goroutines and report what they saw.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ghasi-ehealth/identity-service/core"
)

// hostile is one bad value: its raw JSON token (for bodies and GraphQL
// variables) and, for strings, the string itself (for paths, queries, forms,
// headers and protobuf).
type hostile struct {
	name string
	json []byte
	text *string
}

func str(name, s string) hostile {
	raw, _ := json.Marshal(s) // ASCII only below, except where built by hand
	return hostile{name: name, json: raw, text: &s}
}

func rawJSON(name, raw string) hostile { return hostile{name: name, json: []byte(raw)} }

// hostileValues is the one list every operation is driven with.
var hostileValues = func() []hostile {
	invalid := "a\xff\xfeb"
	huge := strings.Repeat("x", 100_000)
	many := make([]string, 5000)
	for i := range many {
		many[i] = "x"
	}
	longList, _ := json.Marshal(many)
	return []hostile{
		str("NUL", "a\x00b"),
		{name: "invalid UTF-8", json: []byte(`"` + invalid + `"`), text: &invalid},
		str("BEL", "a\ab"),
		str("CRLF", "a\r\nb"),
		str("100k chars", huge),
		str("empty", ""),
		str("spaces", "   "),
		str("unknown enum", "NOT_A_VALUE"),
		str("2000-char id", strings.Repeat("0", 2000)),
		str("numeric overflow", "99999999999999999999"),
		str("negative numeric", "-1"),
		rawJSON("number", "12345"),
		rawJSON("negative", "-1"),
		rawJSON("int64 overflow", "9223372036854775808"),
		rawJSON("huge negative", "-99999999999999999999999"),
		rawJSON("float", "1.5e308"),
		rawJSON("bool", "true"),
		rawJSON("array", "[]"),
		rawJSON("NUL in array", `["a\u0000b"]`),
		// encoding/json decodes an escaped lone UTF-16 surrogate to U+FFFD.
		rawJSON("lone high surrogate", `"a\ud800b"`),
		rawJSON("lone low surrogate", `"a\uDFFFb"`),
		rawJSON("high surrogate, non-low escape", `"\ud800\u0041"`),
		// A pair is one character (😀), as any other it may be stored.
		rawJSON("surrogate pair", `"a\ud83d\ude00b"`),
		{name: "5000-element array", json: longList},
		rawJSON("object", "{}"),
		rawJSON("null", "null"),
	}
}()

// hostileSegments are path segments, already escaped as they go on the wire.
var hostileSegments = []string{
	"%00", "a%00b", "%FF%FE", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "a%0D%0Ab", "%07", "%20%20%20",
	strings.Repeat("a", 2000), "00000000-0000-0000-0000-000000000000", "0190b6e4-1c2d-7a3b-8c4d-5e6f7a8b9c0d",
	"0190b6e4-1c2d-7a3b-8c4d-5e6f7a8b9c0d%00", "-1", "99999999999999999999", "NOT_A_VALUE", "null",
}

// body is a JSON object in which one member (or, for member ".", the whole
// body) is replaced by a raw hostile token. A base value that is a func() any
// is called per request (fresh emails, fingerprints).
func body(base map[string]any, member string, raw []byte) []byte {
	if member == "." {
		return raw
	}
	const mark = "__HOSTILE_VALUE__"
	obj := resolve(base).(map[string]any)
	setPath(obj, member, mark)
	out, err := json.Marshal(obj)
	if err != nil {
		panic(err)
	}
	return bytes.Replace(out, []byte(`"`+mark+`"`), raw, 1)
}

// resolve deep-copies v, calling func() any leaves.
func resolve(v any) any {
	switch x := v.(type) {
	case func() any:
		return x()
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = resolve(e)
		}
		return out
	}
	return v
}

// setPath sets a dotted member path ("in.name") of obj.
func setPath(obj map[string]any, path, v string) {
	head, rest, nested := strings.Cut(path, ".")
	if !nested {
		obj[head] = v
		return
	}
	child, _ := obj[head].(map[string]any)
	if child == nil {
		child = map[string]any{}
		obj[head] = child
	}
	setPath(child, rest, v)
}

// leaves lists the dotted paths of the leaves of a JSON object (nested maps
// are descended, everything else is a leaf), sorted.
func leaves(obj map[string]any, prefix string) []string {
	var out []string
	for k, v := range obj {
		if m, ok := v.(map[string]any); ok {
			out = append(out, leaves(m, prefix+k+".")...)
			continue
		}
		out = append(out, prefix+k)
	}
	sort.Strings(out)
	return out
}

// anyMap is m as a JSON object for body.
func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// formBody is base as application/x-www-form-urlencoded with key set to v
// (escaped by hand, so invalid UTF-8 and NUL arrive as sent).
func formBody(base map[string]string, key, v string) []byte {
	vals := url.Values{}
	for k, bv := range base {
		vals.Set(k, bv)
	}
	vals.Set(key, v)
	return []byte(vals.Encode())
}

// protoBody encodes a message whose string fields are numbered 1..n in the
// order of fields, field `driven` holding v. protowire writes the bytes as
// given, so invalid UTF-8 reaches the server's unmarshaller.
func protoBody(fields []string, base map[string]string, driven, v string) []byte {
	var b []byte
	for i, f := range fields {
		val := base[f]
		if f == driven {
			val = v
		}
		b = protowire.AppendTag(b, protowire.Number(i+1), protowire.BytesType)
		b = protowire.AppendString(b, val)
	}
	return b
}

// request is one HTTP request and what came back.
type request struct {
	method, url, contentType string
	body                     []byte
	header                   http.Header
}

func (e request) do(client *http.Client) (apiResponse, error) {
	req, err := http.NewRequest(e.method, e.url, bytes.NewReader(e.body))
	if err != nil {
		return apiResponse{}, err
	}
	if e.contentType != "" {
		req.Header.Set("Content-Type", e.contentType)
	}
	for k, vs := range e.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := client.Do(req)
	if err != nil {
		return apiResponse{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return apiResponse{Status: res.StatusCode, Header: res.Header, Body: raw}, err
}

func bearerHeader(tok string) http.Header {
	// A fresh client address per request keeps the login throttle (7th
	// failure from one IP) from answering in place of the input checks.
	h := http.Header{"X-Forwarded-For": {fmt.Sprintf("10.%d.%d.%d", rand.IntN(256), rand.IntN(256), rand.IntN(255)+1)}}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	return h
}

func basicHeader(id, secret string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString(
		[]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))}}
}

// envelope checks an answer for its transport and returns what is wrong
// with it ("" when it is a clear client error or a success).
type envelope func(r apiResponse) string

// backstopDetail is the message persistence gives a value the database
// refused (a Postgres data exception): input that core should have
// validated, with a message naming the field, before it reached storage.
const backstopDetail = "invalid value"

func problemEnvelope(r apiResponse) string {
	if r.Status < 400 {
		return ""
	}
	var p problemDoc
	switch {
	case r.Header.Get("Content-Type") != "application/problem+json":
		return "Content-Type " + r.Header.Get("Content-Type")
	case json.Unmarshal(r.Body, &p) != nil || !strings.HasPrefix(p.Code, "IDENT_") || p.Status != r.Status:
		return "not a problem document with a code"
	case p.Detail == backstopDetail && len(p.Fields) == 0:
		return "the value reached the database (backstop " + backstopDetail + ")"
	}
	return ""
}

func oauthEnvelope(r apiResponse) string {
	if r.Status < 400 {
		return ""
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(r.Body, &e) != nil || e.Error == "" {
		return "not an RFC 6749 error body"
	}
	return ""
}

// exchangeEnvelope: RFC 8693 request errors are RFC 6749 bodies, a refused
// subject token is problem+json.
func exchangeEnvelope(r apiResponse) string {
	if r.Header.Get("Content-Type") == "application/problem+json" {
		return problemEnvelope(r)
	}
	return oauthEnvelope(r)
}

func graphqlEnvelope(r apiResponse) string {
	var g gqlResponse
	if err := json.Unmarshal(r.Body, &g); err != nil {
		return "not a GraphQL response: " + err.Error()
	}
	for _, e := range g.Errors {
		code, _ := e.Extensions["code"].(string)
		switch {
		case !strings.HasPrefix(code, "IDENT_"):
			return "an error without extensions.code"
		case code == "IDENT_INTERNAL" || code == "IDENT_UNAVAILABLE":
			return "error " + code
		case e.Message == backstopDetail:
			return "the value reached the database (backstop " + backstopDetail + ")"
		}
	}
	return ""
}

// connectEnvelope: a Connect error with a code; the service's own errors say
// "IDENT_X: …" and repeat IDENT_X in identity-error-code. A message connect-go
// cannot unmarshal is refused by the framework before any handler or
// interceptor runs: invalid_argument "unmarshal message: …", without them.
func connectEnvelope(r apiResponse) string {
	if r.Status == http.StatusOK {
		return ""
	}
	var e struct{ Code, Message string }
	if json.Unmarshal(r.Body, &e) != nil || e.Code == "" {
		return "not a Connect error"
	}
	code, _, _ := strings.Cut(e.Message, ":")
	switch {
	case e.Code == "internal" || e.Code == "unknown" || e.Code == "unavailable":
		return "Connect code " + e.Code
	case strings.HasSuffix(e.Message, ": "+backstopDetail):
		return "the value reached the database (backstop " + backstopDetail + ")"
	case strings.HasPrefix(e.Message, "unmarshal message: ") && e.Code == "invalid_argument":
	case !strings.HasPrefix(code, "IDENT_"):
		return "a Connect error without an IDENT code"
	case r.Header.Get("Identity-Error-Code") != code:
		return "identity-error-code is not the message's code"
	}
	return ""
}

// refused requires exactly status and code (problem+json, or the matching
// Connect error for a Connect answer).
func refused(status int, code string) envelope {
	return func(r apiResponse) string {
		got := r.Header.Get("Identity-Error-Code")
		if r.Header.Get("Content-Type") == "application/problem+json" {
			var p problemDoc
			_ = json.Unmarshal(r.Body, &p)
			got = p.Code
		}
		if r.Status != status || got != code {
			return fmt.Sprintf("want %d %s, got %d %s", status, code, r.Status, got)
		}
		return ""
	}
}

// hostileCase is one request of the table.
type hostileCase struct {
	name  string
	req   request
	check envelope
	// mustReject names what the request carries that a write must refuse
	// even where a database would take it ("" for nothing).
	mustReject string
}

// mustReject is what in a written value must be refused: a NUL byte (which
// SQLite stores and Postgres refuses), raw invalid UTF-8 or an escaped lone
// UTF-16 surrogate (which a lenient decoder would silently store as U+FFFD).
func mustReject(write bool, raw []byte) string {
	switch {
	case !write:
		return ""
	case bytes.Contains(raw, []byte(`\u0000`)) || bytes.Contains(raw, []byte("%00")):
		return "a NUL byte"
	case !utf8.Valid(raw):
		return "invalid UTF-8"
	case core.HasLoneSurrogateEscape(raw):
		return "a lone surrogate escape"
	}
	return ""
}

// accepted reports whether a 2xx answer took the request (a GraphQL answer
// is 200 with errors when it did not).
func accepted(r apiResponse) bool {
	var g gqlResponse
	if json.Unmarshal(r.Body, &g) == nil && len(g.Errors) > 0 {
		return false
	}
	return true
}

// runHostile sends every case from a few goroutines and returns one line per
// answer that is a 5xx, lacks its transport's error envelope or failed in
// transit. Cases whose request cannot be built (a header value Go refuses to
// send) are skipped.
func runHostile(cases []hostileCase) ([]string, []answer) {
	var (
		mu       sync.Mutex
		failures []string
		answers  []answer
		wg       sync.WaitGroup
		next     = make(chan hostileCase)
	)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 8 {
		wg.Go(func() {
			for c := range next {
				res, err := c.req.do(client)
				var why string
				switch {
				case err != nil && strings.Contains(err.Error(), "invalid header field value"):
				case err != nil:
					why = "transport: " + err.Error()
				case res.Status >= 500:
					why = fmt.Sprintf("status %d", res.Status)
				case res.Status == http.StatusRequestHeaderFieldsTooLarge:
					// net/http refuses a request line and headers over the
					// server's MaxHeaderBytes before any handler runs.
				case c.mustReject != "" && res.Status < 300 && accepted(res):
					why = c.mustReject + " was accepted"
				default:
					why = c.check(res)
				}
				mu.Lock()
				if why != "" {
					failures = append(failures, fmt.Sprintf("%s: %s; body %.300s", c.name, why, res.Body))
				}
				if err == nil {
					answers = append(answers, answer{name: c.name, res: res})
				}
				mu.Unlock()
			}
		})
	}
	for _, c := range cases {
		next <- c
	}
	close(next)
	wg.Wait()
	sort.Strings(failures)
	return failures, answers
}

// answer is what one case got back.
type answer struct {
	name string
	res  apiResponse
}
