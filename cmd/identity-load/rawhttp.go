package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawTransport is a minimal HTTP/1.1 client for the REST operations
// (-client raw). net/http's Transport hands every request between three
// goroutines (caller, writeLoop, readLoop) and allocates a Request, a
// Response and header maps; on a 2-core machine shared with the server that
// costs about as much CPU as a cheap request costs the server. Here the
// calling goroutine writes the request and parses the answer itself on a
// kept-alive connection with reusable buffers. It speaks only what
// identityd sends: Content-Length or chunked bodies, keep-alive (and
// Connection: close), no 1xx, no TLS.
type rawTransport struct {
	addr    string // host:port
	host    string // Host header
	timeout time.Duration
	idle    chan *rawConn
	dialer  net.Dialer
}

type rawConn struct {
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	body []byte // reused response body buffer
}

func newRawTransport(base string, conns int, timeout time.Duration) (*rawTransport, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, errors.New("-client raw speaks plain http:// only")
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &rawTransport{addr: addr, host: u.Host, timeout: timeout, idle: make(chan *rawConn, conns),
		dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}}, nil
}

func (t *rawTransport) get(ctx context.Context) (*rawConn, bool, error) {
	select {
	case c := <-t.idle:
		return c, true, nil
	default:
	}
	c, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, false, err
	}
	return &rawConn{c: c, r: bufio.NewReaderSize(c, 16<<10), w: bufio.NewWriterSize(c, 16<<10)}, false, nil
}

func (t *rawTransport) put(c *rawConn) {
	select {
	case t.idle <- c:
	default:
		_ = c.c.Close()
	}
}

// errStaleConn: a reused connection failed before any byte of the answer
// (the server closed it while idle); the request is sent again on a new one.
var errStaleConn = errors.New("stale keep-alive connection")

// do is apiClient.do over the raw transport.
func (t *rawTransport) do(ctx context.Context, req request, xff string, out any) error {
	for attempt := 0; ; attempt++ {
		c, reused, err := t.get(ctx)
		if err != nil {
			return err
		}
		err = t.roundTrip(ctx, c, req, xff, out, reused)
		if errors.Is(err, errStaleConn) && attempt == 0 {
			continue
		}
		return err
	}
}

func (t *rawTransport) roundTrip(ctx context.Context, c *rawConn, req request, xff string, out any, reused bool) (err error) {
	keep := false
	defer func() {
		if keep {
			t.put(c)
		} else {
			_ = c.c.Close()
		}
	}()
	deadline := time.Now().Add(t.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.c.SetDeadline(deadline)

	w := c.w
	w.WriteString(req.method)
	w.WriteByte(' ')
	w.WriteString(req.path)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(t.host)
	w.WriteString("\r\nUser-Agent: identity-load\r\n")
	if req.bearer != "" {
		w.WriteString("Authorization: Bearer ")
		w.WriteString(req.bearer)
		w.WriteString("\r\n")
	}
	for _, h := range req.header {
		w.WriteString(h[0])
		w.WriteString(": ")
		w.WriteString(h[1])
		w.WriteString("\r\n")
	}
	if xff != "" {
		w.WriteString("X-Forwarded-For: ")
		w.WriteString(xff)
		w.WriteString("\r\n")
	}
	if req.body != nil {
		ct := req.contentType
		if ct == "" {
			ct = "application/json"
		}
		w.WriteString("Content-Type: ")
		w.WriteString(ct)
		w.WriteString("\r\nContent-Length: ")
		w.WriteString(strconv.Itoa(len(req.body)))
		w.WriteString("\r\n\r\n")
		w.Write(req.body)
	} else {
		w.WriteString("\r\n")
	}
	if err := w.Flush(); err != nil {
		w.Reset(c.c)
		if reused {
			return fmt.Errorf("%w: %w", errStaleConn, err)
		}
		return err
	}

	status, body, closeAfter, retryAfter, err := c.readResponse(req.method)
	if err != nil {
		if reused && status == 0 && (errors.Is(err, io.EOF) || isConnReset(err)) {
			return fmt.Errorf("%w: %w", errStaleConn, err)
		}
		return err
	}
	keep = !closeAfter
	if status < 200 || status > 299 {
		se := parseStatusError(status, body)
		if s, err := strconv.Atoi(retryAfter); err == nil && s > 0 {
			se.RetryAfter = time.Duration(s) * time.Second
		}
		return se
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("decode %s %s: %w", req.method, req.path, err)
		}
	}
	return nil
}

func isConnReset(err error) bool {
	return transportClass(err) == "transport:connection_reset"
}

// readResponse reads one response; body is valid until the next call.
// status is 0 when not even the status line arrived.
func (c *rawConn) readResponse(method string) (status int, body []byte, closeAfter bool, retryAfter string, err error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, true, "", err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, nil, true, "", fmt.Errorf("malformed status line %q", shortText(string(line)))
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, true, "", fmt.Errorf("malformed status line %q", shortText(string(line)))
	}
	closeAfter = line[7] == '0' // HTTP/1.0 closes unless told otherwise
	length, chunked := -1, false
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return status, nil, true, "", err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return status, nil, true, "", fmt.Errorf("malformed header %q", shortText(string(h)))
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "content-length"):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return status, nil, true, "", fmt.Errorf("bad Content-Length %q", value)
			}
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "connection"):
			closeAfter = asciiEqualFold(value, "close")
		case asciiEqualFold(name, "retry-after"):
			retryAfter = string(value)
		}
	}
	c.body = c.body[:0]
	switch {
	case method == "HEAD" || status == 204 || status == 304:
	case chunked:
		if err := c.readChunked(); err != nil {
			return status, nil, true, "", err
		}
	case length >= 0:
		if cap(c.body) < length {
			c.body = make([]byte, length)
		}
		c.body = c.body[:length]
		if _, err := io.ReadFull(c.r, c.body); err != nil {
			return status, nil, true, "", err
		}
	default: // delimited by the end of the connection
		closeAfter = true
		b, err := io.ReadAll(c.r)
		if err != nil {
			return status, nil, true, "", err
		}
		c.body = b
	}
	return status, c.body, closeAfter, retryAfter, nil
}

func (c *rawConn) readChunked() error {
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 31)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", shortText(string(line)))
		}
		if n == 0 {
			for { // trailers, then the final CRLF
				t, err := c.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return nil
				}
			}
		}
		start := len(c.body)
		c.body = append(c.body, make([]byte, n)...)
		if _, err := io.ReadFull(c.r, c.body[start:]); err != nil {
			return err
		}
		if _, err := c.r.Discard(2); err != nil { // CRLF after the chunk
			return err
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
