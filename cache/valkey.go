// Package cache implements the core ports that need shared, short-lived
// state — core.RateLimiter and core.RevocationSet — on Valkey (shared by every
// instance) and in process (one node), plus failover wrappers that keep
// limits and revocation checks working while Valkey is down.
//
// Every Valkey key starts with "identity:". Keys:
//
//	identity:rl:{key}                    rate-limit counter (integer, PX = window)
//	identity:revoked:session:{sessionId} revoked session ("1", PX = remaining token lifetime)
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/ghasi-ehealth/identity-service/core"
)

const (
	// keyPrefix starts every key this service writes.
	keyPrefix = "identity:"
	// dialTimeout and writeTimeout make a dead server visible within about
	// a second instead of valkey-go's defaults (5 s dial, 10 s write).
	dialTimeout  = time.Second
	writeTimeout = time.Second
	// maxRetries bounds valkey-go's retries of read-only (and explicitly
	// retryable) commands after a network error; its default retries until the context ends, which
	// for a context without deadline is forever.
	maxRetries = 1
	retryDelay = 20 * time.Millisecond
	// cacheBytesPerConn caps the client-side cache of each connection
	// (valkey-go's default is 128 MiB); entries are small and short-lived,
	// and an evicted entry is only re-read from the server.
	cacheBytesPerConn = 16 << 20
)

// Valkey is a connection to a Valkey (or Redis ≥ 7) server with client-side
// caching (RESP3 tracking). It serves Limiter and Revocations. Safe for
// concurrent use.
type Valkey struct {
	client valkey.Client
	hit    *valkey.Lua
	undo   *valkey.Lua
	// own holds the revocations written through this client for a few
	// seconds, so the writer reads its own write even before the server's
	// invalidation push for a cached "not revoked" has arrived.
	own *LocalRevocations
}

// Open connects to the server at rawURL: redis://, rediss://, valkey:// or
// valkeys:// [user:password@]host:port[/db] (valkey-go's ParseURL; its
// query options such as dial_timeout and write_timeout are honoured and
// otherwise default to 1 s). The server must be a single node (Valkey or
// Redis ≥ 7, RESP3 for client-side caching); cluster mode is not used.
//
// Open fails on an invalid URL and when the server rejects the handshake
// (wrong password, database index out of range). A server that cannot be
// reached at start is not an error: Open logs a warning and returns a
// client whose operations fail with core.KindUnavailable until the server
// answers (valkey-go reconnects on demand), so the failover wrappers can
// serve from their fallbacks meanwhile. Call Ping to require the server.
func Open(ctx context.Context, rawURL string, logger *slog.Logger) (*Valkey, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	opt, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	addr := opt.InitAddress[0]
	client, err := valkey.NewClient(opt)
	if err != nil {
		if _, isServerReply := valkey.IsValkeyErr(err); isServerReply || client == nil {
			if client != nil {
				client.Close()
			}
			return nil, fmt.Errorf("cache: connect to valkey at %s: %w", addr, err)
		}
		logger.WarnContext(ctx, "valkey unreachable at start; its operations fail until it answers",
			"addr", addr, "err", err)
	} else {
		logger.InfoContext(ctx, "valkey connected", "addr", addr, "db", opt.SelectDB, "tls", opt.TLSConfig != nil)
	}
	return &Valkey{
		client: client,
		// A hit may be retried once after a network error (a connection
		// that died while idle fails its first command with EOF): at worst
		// an attempt is counted twice, never not at all. Undo is not
		// retried: a lost undo only errs on the strict side.
		hit:  valkey.NewLuaScriptRetryable(hitScript),
		undo: valkey.NewLuaScript(undoScript),
		own:  NewLocalRevocations(core.SystemClock{}),
	}, nil
}

// parseURL turns rawURL into client options with this service's defaults.
func parseURL(rawURL string) (valkey.ClientOption, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return valkey.ClientOption{}, fmt.Errorf("cache: invalid valkey URL: %w", err)
	}
	switch u.Scheme {
	case "redis", "rediss", "valkey", "valkeys":
	default:
		return valkey.ClientOption{}, fmt.Errorf("cache: invalid valkey URL scheme %q (want redis, rediss, valkey or valkeys)", u.Scheme)
	}
	opt, err := valkey.ParseURL(rawURL)
	if err != nil {
		return valkey.ClientOption{}, fmt.Errorf("cache: invalid valkey URL: %w", err)
	}
	if opt.Dialer.Timeout == 0 {
		opt.Dialer.Timeout = dialTimeout
	}
	if opt.ConnWriteTimeout == 0 {
		opt.ConnWriteTimeout = writeTimeout
	}
	opt.CacheSizeEachConn = cacheBytesPerConn
	// A single node: SELECT db needs it, and with ForceSingleClient
	// NewClient returns a working client even when the first dial fails.
	opt.ForceSingleClient = true
	opt.RetryDelay = func(attempts int, _ valkey.Completed, _ error) time.Duration {
		if attempts > maxRetries {
			return -1
		}
		return retryDelay
	}
	if opt.ClientName == "" {
		opt.ClientName = "identity-service"
	}
	return opt, nil
}

// Ping reports whether the server answers (readiness).
func (v *Valkey) Ping(ctx context.Context) error {
	if err := v.client.Do(ctx, v.client.B().Ping().Build()).Error(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Close closes the connections; the client must not be used afterwards.
func (v *Valkey) Close() { v.client.Close() }

// Limiter returns the rate limiter on this server: fixed windows, atomic
// across every instance that shares the server.
func (v *Valkey) Limiter() core.RateLimiter { return valkeyLimiter{v: v} }

// Revocations returns the revocation set on this server; checks are served
// from the client-side cache and invalidated by the server.
func (v *Valkey) Revocations() core.RevocationSet { return valkeyRevocations{v: v} }

// unavailable wraps a client or server failure of op as
// core.KindUnavailable. Context errors stay reachable through errors.Is.
func unavailable(op string, err error) error {
	return core.Unavailable(fmt.Errorf("valkey %s: %w", op, err))
}

// errInvalid reports a caller's programming error (never a backend failure).
func errInvalid(msg string) error {
	return core.Internal(errors.New("cache: " + msg))
}

// millis rounds d up to whole milliseconds (at least 1), the server's unit.
func millis(d time.Duration) int64 {
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	return max(ms, 1)
}
