package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/valkey-io/valkey-go"

	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// defaultTestValkeyURL is the local test server.
// Database 1: the service-level tests in cmd/identityd use database 0, and
// their global cache invalidations must not race these tests.
const defaultTestValkeyURL = "redis://127.0.0.1:6379/1"

// deadURL points at a port where nothing listens.
const deadURL = "redis://127.0.0.1:1/0"

func testValkeyURL() string {
	if u := os.Getenv("IDENTITY_TEST_VALKEY_URL"); u != "" {
		return u
	}
	return defaultTestValkeyURL
}

// openTestValkey connects to the test server (skipped when unreachable,
// failed under CI=true) and closes it when the test ends.
func openTestValkey(t testing.TB) *Valkey {
	t.Helper()
	return openValkeyAt(t, testValkeyURL())
}

func openValkeyAt(t testing.TB, rawURL string) *Valkey {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := Open(ctx, rawURL, nil)
	if err == nil {
		if err = v.Ping(ctx); err != nil {
			v.Close()
		}
	}
	dbtest.NeedServer(t, "Valkey", err)
	t.Cleanup(v.Close)
	return v
}

// uniquePrefix returns a random prefix so tests (and packages running in
// parallel against the same server) never share keys.
func uniquePrefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "test-" + hex.EncodeToString(b) + ":"
}

// rawGet reads a key as stored on the server, bypassing the cache.
func rawGet(t testing.TB, v *Valkey, key string) (value string, pttl int64) {
	t.Helper()
	ctx := context.Background()
	c := v.client
	res := c.DoMulti(ctx, c.B().Get().Key(key).Build(), c.B().Pttl().Key(key).Build())
	value, err := res[0].ToString()
	if err != nil && !valkey.IsValkeyNil(err) {
		require.NoError(t, err)
	}
	pttl, err = res[1].AsInt64()
	require.NoError(t, err)
	return value, pttl
}

// levelCounter is a slog.Handler that counts records per level.
type levelCounter struct {
	mu     sync.Mutex
	counts map[slog.Level]int
}

func newLevelCounter() *levelCounter { return &levelCounter{counts: map[slog.Level]int{}} }

func (h *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[r.Level]++
	return nil
}
func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelCounter) WithGroup(string) slog.Handler      { return h }
func (h *levelCounter) count(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[l]
}

// proxy is a TCP forwarder to the test server that a test can stop (closing
// every connection, as a crashed server would) and start again on the same
// address.
type proxy struct {
	t      testing.TB
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// newProxy starts a proxy to the test server and returns it with a URL
// for Open that goes through it.
func newProxy(t testing.TB) (*proxy, string) {
	t.Helper()
	openTestValkey(t) // skip early when there is no server
	u, err := url.Parse(testValkeyURL())
	require.NoError(t, err)
	p := &proxy{t: t, target: u.Host, conns: map[net.Conn]struct{}{}}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.stop)
	u.Host = p.addr
	return p, u.String()
}

func (p *proxy) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	require.NoError(p.t, err)
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Add(1)
	go p.accept(ln)
}

// start listens again on the address of the first start.
func (p *proxy) start() { p.listen(p.addr) }

// stop closes the listener and every open connection.
func (p *proxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // stopped meanwhile
			p.mu.Unlock()
			_, _ = in.Close(), out.Close()
			return
		}
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_, _ = dst.Close(), src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
