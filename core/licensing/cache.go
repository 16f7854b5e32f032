package licensing

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// CacheKey identifies one cached effective set.
type CacheKey struct {
	TenantID   string
	ProviderID string
	NodeID     string
}

// EffectiveCache holds effective sets for a short time. Invalidation works
// by generations: InvalidateTenant and InvalidateAll bump a counter that is
// part of every entry's key, so old entries are never read again and
// expire on their own.
//
// Get returns a stamp (the generations it read) on a miss; Set stores
// under that stamp, so a set computed before a concurrent invalidation is
// stored under the old generation and never served.
type EffectiveCache interface {
	// Get returns the cached set of key, or hit false and the stamp to pass
	// to Set.
	Get(ctx context.Context, key CacheKey) (mods []EffectiveModule, stamp string, hit bool, err error)
	// Set stores mods for key under stamp for ttl.
	Set(ctx context.Context, key CacheKey, stamp string, mods []EffectiveModule, ttl time.Duration) error
	// InvalidateTenant drops every entry of tenantID (assignment events).
	InvalidateTenant(ctx context.Context, tenantID string) error
	// InvalidateAll drops every entry (module events).
	InvalidateAll(ctx context.Context) error
}

// LocalEffectiveCache is EffectiveCache in process memory, for a single
// instance (no Valkey configured). It starts no goroutine; expired entries
// are dropped when read and swept when the map has doubled. Safe for
// concurrent use.
type LocalEffectiveCache struct {
	clock core.Clock

	mu      sync.Mutex
	global  uint64
	tenants map[string]uint64
	entries map[string]localEffective
	sweepAt int
}

type localEffective struct {
	mods []EffectiveModule
	exp  time.Time
}

// localSweepMin is the map size below which entries are only dropped when read.
const localSweepMin = 1024

var _ EffectiveCache = (*LocalEffectiveCache)(nil)

// NewLocalEffectiveCache returns an empty cache reading time from clock
// (nil: the system clock).
func NewLocalEffectiveCache(clock core.Clock) *LocalEffectiveCache {
	if clock == nil {
		clock = core.SystemClock{}
	}
	return &LocalEffectiveCache{clock: clock, tenants: map[string]uint64{},
		entries: map[string]localEffective{}, sweepAt: localSweepMin}
}

func (c *LocalEffectiveCache) stampLocked(tenantID string) string {
	return strconv.FormatUint(c.global, 10) + "." + strconv.FormatUint(c.tenants[tenantID], 10)
}

func localEntryKey(key CacheKey, stamp string) string {
	return key.TenantID + ":" + stamp + ":" + key.ProviderID + ":" + key.NodeID
}

// Get returns a copy of the live entry of key under the current generations.
func (c *LocalEffectiveCache) Get(_ context.Context, key CacheKey) ([]EffectiveModule, string, bool, error) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp := c.stampLocked(key.TenantID)
	k := localEntryKey(key, stamp)
	e, ok := c.entries[k]
	if !ok {
		return nil, stamp, false, nil
	}
	if !now.Before(e.exp) {
		delete(c.entries, k)
		return nil, stamp, false, nil
	}
	return slices.Clone(e.mods), stamp, true, nil
}

// Set stores a copy of mods under stamp for ttl.
func (c *LocalEffectiveCache) Set(_ context.Context, key CacheKey, stamp string, mods []EffectiveModule, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if stamp != c.stampLocked(key.TenantID) {
		return nil // invalidated meanwhile: the entry could never be read
	}
	if len(c.entries) >= c.sweepAt {
		for k, e := range c.entries {
			if !now.Before(e.exp) {
				delete(c.entries, k)
			}
		}
		c.sweepAt = max(localSweepMin, 2*len(c.entries))
	}
	c.entries[localEntryKey(key, stamp)] = localEffective{mods: slices.Clone(mods), exp: now.Add(ttl)}
	return nil
}

// InvalidateTenant bumps tenantID's generation and drops its entries.
func (c *LocalEffectiveCache) InvalidateTenant(_ context.Context, tenantID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tenants[tenantID]++
	prefix := tenantID + ":"
	for k := range c.entries {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			delete(c.entries, k)
		}
	}
	return nil
}

// InvalidateAll bumps the global generation and drops every entry.
func (c *LocalEffectiveCache) InvalidateAll(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.global++
	clear(c.entries)
	return nil
}
