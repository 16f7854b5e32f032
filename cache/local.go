package cache

import (
	"context"
	"sync"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// minSweep is the map size below which expired entries are only dropped
// when touched. Above it, an insert that finds the map at its sweep mark
// drops every expired entry and moves the mark to twice the live size, so
// sweeping costs O(1) amortised and memory stays within 2× the live set.
const minSweep = 1024

// nextSweep returns the next sweep mark for a map of n live entries.
func nextSweep(n int) int { return max(minSweep, 2*n) }

// LocalLimiter is core.RateLimiter in process memory: fixed windows with
// the same semantics as the Valkey limiter, correct for one node. It starts
// no goroutine. Safe for concurrent use.
type LocalLimiter struct {
	clock core.Clock

	mu      sync.Mutex
	windows map[string]localWindow
	sweepAt int
}

type localWindow struct {
	count int64
	end   time.Time
}

var _ core.RateLimiter = (*LocalLimiter)(nil)

// NewLocalLimiter returns an empty in-process limiter reading time from clock.
func NewLocalLimiter(clock core.Clock) *LocalLimiter {
	return &LocalLimiter{clock: clock, windows: map[string]localWindow{}, sweepAt: minSweep}
}

// Hit counts one event under key; a window starts at the first hit after
// the previous one ended.
func (l *LocalLimiter) Hit(_ context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	if window <= 0 {
		return 0, 0, errInvalid("rate-limit window must be positive")
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.windows[key]
	if !ok || !now.Before(w.end) {
		if !ok && len(l.windows) >= l.sweepAt {
			l.sweepLocked(now)
		}
		w = localWindow{end: now.Add(window)}
	}
	w.count++
	l.windows[key] = w
	return w.count, w.end.Sub(now), nil
}

// Undo takes one hit back from a live window with a positive count; the
// window's end is unchanged.
func (l *LocalLimiter) Undo(_ context.Context, key string) error {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.windows[key]
	switch {
	case !ok:
	case !now.Before(w.end):
		delete(l.windows, key)
	case w.count > 0:
		w.count--
		l.windows[key] = w
	}
	return nil
}

// Peek returns the count and time left of key's live window, or 0, 0.
func (l *LocalLimiter) Peek(_ context.Context, key string) (int64, time.Duration, error) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.windows[key]
	if !ok {
		return 0, 0, nil
	}
	if !now.Before(w.end) {
		delete(l.windows, key)
		return 0, 0, nil
	}
	return w.count, w.end.Sub(now), nil
}

func (l *LocalLimiter) sweepLocked(now time.Time) {
	for k, w := range l.windows {
		if !now.Before(w.end) {
			delete(l.windows, k)
		}
	}
	l.sweepAt = nextSweep(len(l.windows))
}

// LocalRevocations is core.RevocationSet in process memory, correct for one
// node. It starts no goroutine. Safe for concurrent use.
type LocalRevocations struct {
	clock core.Clock

	mu      sync.Mutex
	until   map[string]time.Time
	sweepAt int
}

var _ core.RevocationSet = (*LocalRevocations)(nil)

// NewLocalRevocations returns an empty in-process revocation set reading
// time from clock.
func NewLocalRevocations(clock core.Clock) *LocalRevocations {
	return &LocalRevocations{clock: clock, until: map[string]time.Time{}, sweepAt: minSweep}
}

// Revoke adds sessionIDs for ttl; an existing revocation is never
// shortened. ttl ≤ 0 is a no-op.
func (r *LocalRevocations) Revoke(_ context.Context, sessionIDs []string, ttl time.Duration) error {
	if ttl <= 0 || len(sessionIDs) == 0 {
		return nil
	}
	now := r.clock.Now()
	end := now.Add(ttl)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range sessionIDs {
		cur, ok := r.until[id]
		if !ok && len(r.until) >= r.sweepAt {
			r.sweepLocked(now)
		}
		if !ok || end.After(cur) {
			r.until[id] = end
		}
	}
	return nil
}

// IsRevoked reports whether sessionID is revoked and not yet expired.
func (r *LocalRevocations) IsRevoked(_ context.Context, sessionID string) (bool, error) {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	end, ok := r.until[sessionID]
	if !ok {
		return false, nil
	}
	if !now.Before(end) {
		delete(r.until, sessionID)
		return false, nil
	}
	return true, nil
}

func (r *LocalRevocations) sweepLocked(now time.Time) {
	for k, end := range r.until {
		if !now.Before(end) {
			delete(r.until, k)
		}
	}
	r.sweepAt = nextSweep(len(r.until))
}
