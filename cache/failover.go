package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

const (
	// probeInterval is how long after a primary failure calls go straight
	// to the fallback; then one call probes the primary again. It keeps a
	// black-holed server (each call waiting for the dial timeout) from
	// slowing every request, and bounds recovery to about a second.
	probeInterval = time.Second
	// warnInterval rate-limits the "primary failing" warning.
	warnInterval = 30 * time.Second
	// maxPending bounds the revocations kept for replay to the primary.
	maxPending = 100_000
)

// breaker tracks whether the primary is failing. It is safe for concurrent
// use; the fast path (primary healthy) is one atomic load. It logs at most
// one warning per warnInterval, even when the primary flaps, and a recovery
// only for an outage it warned about.
type breaker struct {
	what   string
	logger *slog.Logger
	down   atomic.Bool

	mu         sync.Mutex
	since      time.Time // first failure of the current outage
	retryAt    time.Time // next probe of the primary
	lastWarn   time.Time
	warned     bool // the current outage has been logged
	suppressed int  // failures not logged since lastWarn
}

func newBreaker(what string, logger *slog.Logger) *breaker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &breaker{what: what, logger: logger}
}

// usePrimary reports whether this call should try the primary: always while
// it is healthy; while it is down, one call per probeInterval.
func (b *breaker) usePrimary() bool {
	if !b.down.Load() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if now.Before(b.retryAt) {
		return false
	}
	b.retryAt = now.Add(probeInterval)
	return true
}

// failed records a primary failure and logs a rate-limited warning.
func (b *breaker) failed(ctx context.Context, op string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if !b.down.Load() {
		b.since, b.warned = now, false
		b.down.Store(true)
	}
	b.retryAt = now.Add(probeInterval)
	if !b.lastWarn.IsZero() && now.Sub(b.lastWarn) < warnInterval {
		b.suppressed++
		return
	}
	b.logger.WarnContext(ctx, b.what+" primary failing; using fallback",
		"op", op, "err", err, "down_for", now.Sub(b.since).Round(time.Millisecond),
		"suppressed", b.suppressed)
	b.lastWarn, b.warned, b.suppressed = now, true, 0
}

// succeeded records a primary success.
func (b *breaker) succeeded(ctx context.Context) {
	if !b.down.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.down.Load() {
		return
	}
	b.down.Store(false)
	if b.warned {
		b.logger.InfoContext(ctx, b.what+" primary recovered",
			"down_for", time.Since(b.since).Round(time.Millisecond))
	}
}

// FailoverLimiter counts in the primary (Valkey) and, while the primary
// fails, in the fallback (in-process), so limits never become unlimited.
// While the primary is down, calls go to the fallback and one call per
// second probes the primary; recovery needs no action. Counts made in the
// fallback during an outage are not carried over: after recovery a key may
// allow up to one extra window's worth of attempts on this node. "Fails"
// means an error of kind core.KindUnavailable (see settle); a call whose
// context has ended gets the primary's error (fail closed).
type FailoverLimiter struct {
	primary, fallback core.RateLimiter
	br                *breaker
}

var _ core.RateLimiter = (*FailoverLimiter)(nil)

// NewFailoverLimiter returns a limiter that uses primary and falls back to
// fallback (typically NewLocalLimiter) while primary fails.
func NewFailoverLimiter(primary, fallback core.RateLimiter, logger *slog.Logger) *FailoverLimiter {
	return &FailoverLimiter{primary: primary, fallback: fallback, br: newBreaker("rate limiter", logger)}
}

// Hit counts in the primary, or in the fallback while the primary fails.
func (f *FailoverLimiter) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	if f.br.usePrimary() {
		n, reset, err := f.primary.Hit(ctx, key, window)
		if !settle(ctx, f.br, "hit", err) {
			return n, reset, err
		}
	}
	return f.fallback.Hit(ctx, key, window)
}

// Undo takes a hit back in the primary, or in the fallback while the
// primary fails.
func (f *FailoverLimiter) Undo(ctx context.Context, key string) error {
	if f.br.usePrimary() {
		err := f.primary.Undo(ctx, key)
		if !settle(ctx, f.br, "undo", err) {
			return err
		}
	}
	return f.fallback.Undo(ctx, key)
}

// Peek reads the primary, or the fallback while the primary fails.
func (f *FailoverLimiter) Peek(ctx context.Context, key string) (int64, time.Duration, error) {
	if f.br.usePrimary() {
		n, reset, err := f.primary.Peek(ctx, key)
		if !settle(ctx, f.br, "peek", err) {
			return n, reset, err
		}
	}
	return f.fallback.Peek(ctx, key)
}

// settle records the primary's outcome and reports whether the call should
// be served by the fallback: only for a dependency failure
// (core.KindUnavailable, which is how the Valkey adapter reports every
// client or server failure), and not when the caller's context has ended
// (then the caller gets the error and the primary is not blamed). Other
// errors, such as a non-positive window, are returned as they are.
func settle(ctx context.Context, br *breaker, op string, err error) bool {
	if err == nil {
		br.succeeded(ctx)
		return false
	}
	if ctx.Err() != nil || !core.IsKind(err, core.KindUnavailable) {
		return false
	}
	br.failed(ctx, op, err)
	return true
}

// FailoverRevocations checks revocations in the primary (Valkey) and, while
// it fails, asks fallback — a lookup of the session's revoked_at in the
// database — so a revoked session is never accepted because Valkey is down.
//
// Revoke writes to the primary only and returns its error: the caller has
// already committed revoked_at in the database, so fallback lookups still
// see the revocation. The ids of a failed Revoke are also kept in memory
// (until their ttl ends) and answered as revoked by this instance, and they
// are replayed to the primary after its next success, so that other
// instances and gateways, which read Valkey again once it is back, see
// them too. The replay is lost if this process stops before the primary
// recovers.
type FailoverRevocations struct {
	primary  core.RevocationSet
	fallback func(ctx context.Context, sessionID string) (bool, error)
	br       *breaker

	npending atomic.Int64
	mu       sync.Mutex
	pending  map[string]time.Time // sessionID → end of revocation
	flushing bool
}

var _ core.RevocationSet = (*FailoverRevocations)(nil)

// NewFailoverRevocations returns a revocation set that uses primary and,
// while it fails, answers IsRevoked from fallback. A nil fallback makes
// IsRevoked return the primary's error instead (fail closed).
func NewFailoverRevocations(primary core.RevocationSet, fallback func(ctx context.Context, sessionID string) (bool, error), logger *slog.Logger) *FailoverRevocations {
	return &FailoverRevocations{
		primary:  primary,
		fallback: fallback,
		br:       newBreaker("revocation set", logger),
		pending:  map[string]time.Time{},
	}
}

// Revoke writes to the primary; on failure it returns the error and keeps
// the ids for replay (see the type's comment).
func (f *FailoverRevocations) Revoke(ctx context.Context, sessionIDs []string, ttl time.Duration) error {
	if ttl <= 0 || len(sessionIDs) == 0 {
		return nil
	}
	err := f.primary.Revoke(ctx, sessionIDs, ttl)
	settle(ctx, f.br, "revoke", err)
	if err != nil {
		f.addPending(sessionIDs, ttl)
		return err
	}
	f.flush(ctx)
	return nil
}

// IsRevoked asks the primary, or the fallback while the primary fails.
func (f *FailoverRevocations) IsRevoked(ctx context.Context, sessionID string) (bool, error) {
	if f.isPending(sessionID) {
		return true, nil
	}
	var primaryErr error
	if f.br.usePrimary() {
		revoked, err := f.primary.IsRevoked(ctx, sessionID)
		if !settle(ctx, f.br, "is-revoked", err) {
			if err == nil {
				f.flush(ctx)
			}
			return revoked, err
		}
		primaryErr = err
	}
	if f.fallback == nil {
		if primaryErr == nil {
			primaryErr = core.Unavailable(errors.New("revocation set primary is down"))
		}
		return false, primaryErr
	}
	return f.fallback(ctx, sessionID)
}

func (f *FailoverRevocations) addPending(ids []string, ttl time.Duration) {
	now := time.Now()
	end := now.Add(ttl)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if len(f.pending) >= maxPending {
			f.dropExpiredLocked(now)
			if len(f.pending) >= maxPending {
				break // the database still has revoked_at; only the replay is lost
			}
		}
		if cur, ok := f.pending[id]; !ok || end.After(cur) {
			f.pending[id] = end
		}
	}
	f.npending.Store(int64(len(f.pending)))
}

func (f *FailoverRevocations) isPending(id string) bool {
	if f.npending.Load() == 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	end, ok := f.pending[id]
	return ok && time.Now().Before(end)
}

func (f *FailoverRevocations) dropExpiredLocked(now time.Time) {
	for id, end := range f.pending {
		if !now.Before(end) {
			delete(f.pending, id)
		}
	}
	f.npending.Store(int64(len(f.pending)))
}

// flush replays pending revocations to the primary (one caller at a time).
// Entries stay pending until the primary has accepted them.
func (f *FailoverRevocations) flush(ctx context.Context) {
	if f.npending.Load() == 0 {
		return
	}
	f.mu.Lock()
	if f.flushing {
		f.mu.Unlock()
		return
	}
	f.flushing = true
	now := time.Now()
	f.dropExpiredLocked(now)
	byEnd := make(map[time.Time][]string) // ids added by one Revoke share an end
	for id, end := range f.pending {
		byEnd[end] = append(byEnd[end], id)
	}
	f.mu.Unlock()

	done := make(map[string]time.Time)
	for end, ids := range byEnd {
		if err := f.primary.Revoke(ctx, ids, end.Sub(now)); err != nil {
			break
		}
		for _, id := range ids {
			done[id] = end
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	for id, end := range done {
		if f.pending[id].Equal(end) { // not extended while we were flushing
			delete(f.pending, id)
		}
	}
	f.npending.Store(int64(len(f.pending)))
	f.flushing = false
}
