package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
)

// metaErrorCode is the Connect metadata key carrying the IDENT_* code
// (CONTRACT.md §2).
const metaErrorCode = "identity-error-code"

// statusError is a non-2xx answer. Code is the problem+json `code`, or
// "oauth:<error>" for an RFC 6749 error body, or "" when the body had
// neither.
type statusError struct {
	Status     int
	Code       string
	Detail     string
	RetryAfter time.Duration
}

func (e *statusError) Error() string {
	s := "HTTP " + strconv.Itoa(e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// gqlError is a GraphQL answer carrying errors.
type gqlError struct {
	Code    string
	Message string
}

func (e *gqlError) Error() string { return "graphql " + e.Code + ": " + e.Message }

// errorCode classifies an error for the tallies: the IDENT_* code when the
// server sent one (problem+json, GraphQL extensions, Connect metadata), else
// "oauth:<error>", "connect:<code>", "HTTP_<status>", or a transport class
// ("transport:timeout", "transport:connection_refused", …).
func errorCode(err error) string {
	var se *statusError
	if errors.As(err, &se) {
		if se.Code != "" {
			return se.Code
		}
		return "HTTP_" + strconv.Itoa(se.Status)
	}
	var ge *gqlError
	if errors.As(err, &ge) {
		if ge.Code != "" {
			return ge.Code
		}
		return "graphql_error"
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		if code := ce.Meta().Get(metaErrorCode); code != "" {
			return code
		}
		if t := transportClass(ce.Unwrap()); t != "" {
			return t
		}
		return "connect:" + ce.Code().String()
	}
	if t := transportClass(err); t != "" {
		return t
	}
	return "error:" + shortText(err.Error())
}

// transportClass names the class of a network-level failure, or "".
func transportClass(err error) string {
	if err == nil {
		return ""
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "transport:timeout"
	case errors.Is(err, context.Canceled):
		return "transport:canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "transport:connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "transport:connection_reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "transport:address_not_available" // ephemeral ports exhausted
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "transport:eof"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return "transport:" + oe.Op
	}
	return ""
}

func shortText(s string) string {
	if len(s) > 60 {
		s = s[:60]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 {
			return ' '
		}
		return r
	}, s)
}

// apiClient talks to identityd over HTTP/1.1 with keep-alive.
type apiClient struct {
	base  string
	hc    *http.Client  // net/http; Connect and GraphQL always use it
	raw   *rawTransport // -client raw: REST calls bypass net/http
	spoof bool          // send X-Forwarded-For 198.18.x.y
}

func newHTTPClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: timeout,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// spoofIP is a random address of the benchmarking range 198.18.0.0/15.
func spoofIP(rng *rand.Rand) string {
	var r uint32
	if rng != nil {
		r = rng.Uint32()
	} else {
		r = rand.Uint32()
	}
	return "198.18." + strconv.Itoa(int(r>>8&0xff)) + "." + strconv.Itoa(int(r&0xff))
}

// request is one REST call. body nil sends none; contentType defaults to
// application/json when there is a body.
type request struct {
	method      string
	path        string
	bearer      string
	header      [][2]string
	body        []byte
	contentType string
	rng         *rand.Rand // for X-Forwarded-For; nil = global source
}

// do sends req and, on 2xx, decodes the body into out (nil: discard). Any
// other status becomes a *statusError.
func (c *apiClient) do(ctx context.Context, req request, out any) error {
	if c.raw != nil {
		xff := ""
		if c.spoof {
			xff = spoofIP(req.rng)
		}
		return c.raw.do(ctx, req, xff, out)
	}
	var rd io.Reader
	if req.body != nil {
		rd = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, c.base+req.path, rd)
	if err != nil {
		return err
	}
	if req.body != nil {
		ct := req.contentType
		if ct == "" {
			ct = "application/json"
		}
		hr.Header.Set("Content-Type", ct)
	}
	if req.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+req.bearer)
	}
	for _, h := range req.header {
		hr.Header.Set(h[0], h[1])
	}
	if c.spoof {
		hr.Header.Set("X-Forwarded-For", spoofIP(req.rng))
	}
	res, err := c.hc.Do(hr)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return readStatusError(res)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s: %w", req.method, req.path, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	return nil
}

func readStatusError(res *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	se := parseStatusError(res.StatusCode, raw)
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 {
		se.RetryAfter = time.Duration(s) * time.Second
	}
	return se
}

// parseStatusError reads the code of an error body: problem+json `code`,
// or an RFC 6749 `error` (as "oauth:<error>").
func parseStatusError(status int, raw []byte) *statusError {
	se := &statusError{Status: status}
	var doc struct {
		Code        string `json:"code"`
		Detail      string `json:"detail"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(raw, &doc) == nil {
		switch {
		case doc.Code != "":
			se.Code, se.Detail = doc.Code, doc.Detail
		case doc.Error != "":
			se.Code, se.Detail = "oauth:"+doc.Error, doc.Description
		}
	}
	if se.Detail == "" && se.Code == "" {
		se.Detail = shortText(string(raw))
	}
	return se
}

// postJSON marshals body and posts it.
func (c *apiClient) postJSON(ctx context.Context, path, bearer string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodPost, path: path, bearer: bearer, body: raw}, out)
}

// graphql runs a query as bearer and decodes data into out.
func (c *apiClient) graphql(ctx context.Context, bearer, query string, vars map[string]any, out any) error {
	var res struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message    string         `json:"message"`
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	if err := c.postJSON(ctx, "/graphql", bearer, map[string]any{"query": query, "variables": vars}, &res); err != nil {
		return err
	}
	if len(res.Errors) > 0 {
		code, _ := res.Errors[0].Extensions["code"].(string)
		return &gqlError{Code: code, Message: res.Errors[0].Message}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(res.Data, out)
}

// retryable reports whether a seeding call may be repeated: the server
// refused it before doing the work (429, 503) or the connection failed
// before an answer.
func retryable(err error) (bool, time.Duration) {
	var se *statusError
	if errors.As(err, &se) {
		if se.Status == http.StatusTooManyRequests || se.Status == http.StatusServiceUnavailable {
			return true, se.RetryAfter
		}
		return false, 0
	}
	var ge *gqlError
	if errors.As(err, &ge) {
		return ge.Code == "IDENT_UNAVAILABLE" || ge.Code == "IDENT_OVERLOADED" || ge.Code == "IDENT_RATE_LIMITED", 0
	}
	t := transportClass(err)
	return t == "transport:connection_refused" || t == "transport:connection_reset" || t == "transport:eof", 0
}

// withRetry runs f up to attempts times while its error is retryable,
// waiting the server's Retry-After (at most 5 s) or a short backoff.
func withRetry(ctx context.Context, attempts int, f func() error) error {
	var err error
	for a := range attempts {
		if err = f(); err == nil {
			return nil
		}
		ok, wait := retryable(err)
		if !ok || a == attempts-1 {
			return err
		}
		if wait <= 0 || wait > 5*time.Second {
			wait = min(time.Duration(a+1)*200*time.Millisecond, 5*time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return err
}
