package graph

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHandlerRefusesInvalidUTF8: a body or query string that is not UTF-8,
// or escapes a lone UTF-16 surrogate, is 400 IDENT_VALIDATION before gqlgen
// decodes it (encoding/json would silently turn the bad bytes, and the lone
// surrogate, into U+FFFD); UTF-8 requests, NUL escapes (core refuses those
// per field) and surrogate pairs included, go through.
func TestHandlerRefusesInvalidUTF8(t *testing.T) {
	h := NewHandler(&Resolver{}, slog.New(slog.DiscardHandler))
	post := func(body string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	get := func(query, variables string) *http.Request {
		return httptest.NewRequest(http.MethodGet, "/graphql?query="+query+"&variables="+variables, nil)
	}
	for name, tc := range map[string]struct {
		req  *http.Request
		want int // 0 = answered by gqlgen with data
	}{
		"POST ok":                         {post(`{"query":"{ __typename }"}`), 0},
		"POST escaped NUL in a variable":  {post(`{"query":"query($x: String!) { __type(name: $x) { name } }","variables":{"x":"a\u0000b"}}`), 0},
		"POST non-ASCII":                  {post(`{"query":"query($x: String!) { __type(name: $x) { name } }","variables":{"x":"کابل"}}`), 0},
		"POST invalid UTF-8 in variables": {post("{\"query\":\"{ __typename }\",\"variables\":{\"x\":\"a\xffb\"}}"), http.StatusBadRequest},
		"POST invalid UTF-8 in the query": {post("{\"query\":\"{ __typename \xfe}\"}"), http.StatusBadRequest},
		"POST truncated sequence":         {post("{\"query\":\"{ __typename }\",\"operationName\":\"\xe2\x82\"}"), http.StatusBadRequest},
		"GET ok":                          {get(url.QueryEscape("{ __typename }"), ""), 0},
		"GET invalid UTF-8 in variables":  {get(url.QueryEscape("{ __typename }"), "%7B%22x%22%3A%22%FF%22%7D"), http.StatusBadRequest},
		"GET invalid UTF-8 in the query":  {get("%7B__typename%FE%7D", ""), http.StatusBadRequest},

		// encoding/json turns a lone UTF-16 surrogate escape into U+FFFD too.
		"POST lone high surrogate in variables": {post(`{"query":"{ __typename }","variables":{"x":"a\ud800b"}}`), http.StatusBadRequest},
		"POST lone low surrogate in variables":  {post(`{"query":"{ __typename }","variables":{"x":"a\uDFFFb"}}`), http.StatusBadRequest},
		"POST high surrogate, non-low escape":   {post(`{"query":"{ __typename }","variables":{"x":"\ud800\u0041"}}`), http.StatusBadRequest},
		"POST lone surrogate in operationName":  {post(`{"query":"{ __typename }","operationName":"\udc00"}`), http.StatusBadRequest},
		"POST surrogate pair":                   {post(`{"query":"query($x: String!) { __type(name: $x) { name } }","variables":{"x":"\ud83d\ude00"}}`), 0},
		"POST escaped backslash before u":       {post(`{"query":"query($x: String!) { __type(name: $x) { name } }","variables":{"x":"\\ud800"}}`), 0},
		"GET lone surrogate in variables":       {get(url.QueryEscape("{ __typename }"), url.QueryEscape(`{"x":"\ud800"}`)), http.StatusBadRequest},
		"GET lone surrogate in the query":       {get(url.QueryEscape(`{ __type(name: "\ud800") { name } }`), ""), http.StatusBadRequest},
		"GET surrogate pair in variables": {get(url.QueryEscape("query($x: String!) { __type(name: $x) { name } }"),
			url.QueryEscape(`{"x":"\ud83d\ude00"}`)), 0},
	} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tc.req)
			var out struct {
				Data   map[string]any `json:"data"`
				Errors []struct {
					Message    string         `json:"message"`
					Extensions map[string]any `json:"extensions"`
				} `json:"errors"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), rec.Body.String())
			if tc.want == 0 {
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				require.Empty(t, out.Errors)
				require.NotNil(t, out.Data)
				return
			}
			require.Equal(t, tc.want, rec.Code)
			require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			require.Len(t, out.Errors, 1)
			require.Equal(t, "IDENT_VALIDATION", out.Errors[0].Extensions["code"])
			require.Equal(t, "the request is not valid UTF-8", out.Errors[0].Message)
		})
	}

	t.Run("a body over the limit is still gqlgen's to report", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, post(`{"query":"{ __typename }","variables":{"x":"`+strings.Repeat("a", MaxBodyBytes)+`"}}`))
		require.Less(t, rec.Code, 500)
		require.Contains(t, rec.Body.String(), "IDENT_VALIDATION")
		require.NotContains(t, rec.Body.String(), `"__typename"`)
	})
}
