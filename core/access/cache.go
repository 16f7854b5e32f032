package access

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
)

// Entry is one cached access context. ExpiresAt ends its freshness; the
// cache keeps it longer (StaleGrace) for stale serving.
type Entry struct {
	Context   Context
	ExpiresAt time.Time
}

// ContextCache holds access contexts per (user, node) — key
// access-context:{userId}:{nodeId}. Invalidation works by generations: a
// stamp names the global, user and tenant generations current before the
// context was computed, and an entry whose stamp is no longer current is
// never returned (not even as stale), so a context computed before a
// concurrent invalidation is never served.
type ContextCache interface {
	// Get returns the entry of (userID, nodeID) if one exists that no
	// invalidation has touched since it was stored, fresh or not.
	Get(ctx context.Context, userID, nodeID string) (e Entry, ok bool, err error)
	// Stamp reads the current generations of userID and tenantID (the
	// context's tenant); pass it to Set.
	Stamp(ctx context.Context, userID, tenantID string) (string, error)
	// Set stores e under stamp for keep (freshness plus stale grace);
	// e.Context.TenantID must be the tenant of the stamp.
	Set(ctx context.Context, userID, nodeID, stamp string, e Entry, keep time.Duration) error
	// InvalidateUser drops every entry of userID (membership and role changes).
	InvalidateUser(ctx context.Context, userID string) error
	// InvalidateTenant drops every entry whose context is in tenantID
	// (licensing assignment changes).
	InvalidateTenant(ctx context.Context, tenantID string) error
	// InvalidateAll drops every entry (module catalogue changes).
	InvalidateAll(ctx context.Context) error
}

// LocalCache is ContextCache in process memory, for a single instance (no
// Valkey configured). It starts no goroutine; entries past their keep time
// are dropped when read and swept when the map has doubled. Safe for
// concurrent use.
type LocalCache struct {
	clock core.Clock

	mu      sync.Mutex
	global  uint64
	users   map[string]uint64
	tenants map[string]uint64
	entries map[localKey]localEntry
	sweepAt int
}

type localKey struct{ user, node string }

type localEntry struct {
	e     Entry
	stamp string
	until time.Time
}

const localSweepMin = 1024

var _ ContextCache = (*LocalCache)(nil)

// NewLocalCache returns an empty cache reading time from clock (nil: the
// system clock).
func NewLocalCache(clock core.Clock) *LocalCache {
	if clock == nil {
		clock = core.SystemClock{}
	}
	return &LocalCache{clock: clock, users: map[string]uint64{}, tenants: map[string]uint64{},
		entries: map[localKey]localEntry{}, sweepAt: localSweepMin}
}

func (c *LocalCache) stampLocked(userID, tenantID string) string {
	return strconv.FormatUint(c.global, 10) + "." + strconv.FormatUint(c.users[userID], 10) + "." +
		strconv.FormatUint(c.tenants[tenantID], 10)
}

// Get returns a copy of the entry of (userID, nodeID) under the current generations.
func (c *LocalCache) Get(_ context.Context, userID, nodeID string) (Entry, bool, error) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	k := localKey{userID, nodeID}
	le, ok := c.entries[k]
	if !ok {
		return Entry{}, false, nil
	}
	if !now.Before(le.until) || le.stamp != c.stampLocked(userID, le.e.Context.TenantID) {
		delete(c.entries, k)
		return Entry{}, false, nil
	}
	return Entry{Context: cloneContext(le.e.Context), ExpiresAt: le.e.ExpiresAt}, true, nil
}

// Stamp returns the current generations of userID and tenantID.
func (c *LocalCache) Stamp(_ context.Context, userID, tenantID string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stampLocked(userID, tenantID), nil
}

// Set stores a copy of e under stamp for keep; a stamp already outdated is
// not stored.
func (c *LocalCache) Set(_ context.Context, userID, nodeID, stamp string, e Entry, keep time.Duration) error {
	if keep <= 0 {
		return nil
	}
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if stamp != c.stampLocked(userID, e.Context.TenantID) {
		return nil
	}
	if len(c.entries) >= c.sweepAt {
		for k, le := range c.entries {
			if !now.Before(le.until) {
				delete(c.entries, k)
			}
		}
		c.sweepAt = max(localSweepMin, 2*len(c.entries))
	}
	e.Context = cloneContext(e.Context)
	c.entries[localKey{userID, nodeID}] = localEntry{e: e, stamp: stamp, until: now.Add(keep)}
	return nil
}

// InvalidateUser bumps userID's generation and drops its entries.
func (c *LocalCache) InvalidateUser(_ context.Context, userID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.users[userID]++
	for k := range c.entries {
		if k.user == userID {
			delete(c.entries, k)
		}
	}
	return nil
}

// InvalidateTenant bumps tenantID's generation and drops its entries.
func (c *LocalCache) InvalidateTenant(_ context.Context, tenantID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tenants[tenantID]++
	for k, le := range c.entries {
		if le.e.Context.TenantID == tenantID {
			delete(c.entries, k)
		}
	}
	return nil
}

// InvalidateAll bumps the global generation and drops every entry.
func (c *LocalCache) InvalidateAll(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.global++
	clear(c.entries)
	return nil
}

// cloneContext copies the slices of c so cached values are never shared.
func cloneContext(c Context) Context {
	c.Roles = append([]string(nil), c.Roles...)
	ms := make([]core.Membership, len(c.Memberships))
	for i, m := range c.Memberships {
		m.Roles = append([]string(nil), m.Roles...)
		ms[i] = m
	}
	c.Memberships = ms
	c.EffectiveModules = append([]licensing.EffectiveModule(nil), c.EffectiveModules...)
	return c
}
