package cache

import (
	"context"
	"encoding/json"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
)

// Effective-license cache keys:
//
//	identity:lic:gen                                     global generation (INCR on module events)
//	identity:lic:gen:{tenant}                            tenant generation (INCR on assignment events)
//	identity:lic:{tenant}:{global}.{gen}:{provider}:{node} effective set (JSON, PX ≤ 5 min)
//
// Both generations are read through the client-side cache, so a warm hit
// costs no round trip; an INCR by any instance makes the server push an
// invalidation to every client that cached the old value.
const (
	licGlobalGenKey = keyPrefix + "lic:gen"
	// licGenCacheTTL bounds how long a generation is kept client-side;
	// correctness rests on the server's invalidation pushes, not on it.
	licGenCacheTTL = 5 * time.Minute
)

func licTenantGenKey(tenantID string) string { return keyPrefix + "lic:gen:" + tenantID }

func licEntryKey(k licensing.CacheKey, stamp string) string {
	return keyPrefix + "lic:" + k.TenantID + ":" + stamp + ":" + k.ProviderID + ":" + k.NodeID
}

// ValkeyEffectiveCache is licensing.EffectiveCache on Valkey, shared by
// every instance. Safe for concurrent use.
type ValkeyEffectiveCache struct{ v *Valkey }

var _ licensing.EffectiveCache = ValkeyEffectiveCache{}

// EffectiveLicenses returns the effective-license cache on this server.
func (v *Valkey) EffectiveLicenses() ValkeyEffectiveCache { return ValkeyEffectiveCache{v: v} }

// NewValkeyEffectiveCache is v.EffectiveLicenses().
func NewValkeyEffectiveCache(v *Valkey) ValkeyEffectiveCache { return v.EffectiveLicenses() }

// licModuleJSON is the stored form of one effective module.
type licModuleJSON struct {
	Code         string `json:"c"`
	Status       string `json:"s"`
	Granted      bool   `json:"g"`
	Scope        string `json:"sc"`
	SourceNodeID string `json:"n,omitempty"`
	AssignmentID string `json:"a,omitempty"`
}

// stamp reads both generations (client-side cached).
func (c ValkeyEffectiveCache) stamp(ctx context.Context, tenantID string) (string, error) {
	cl := c.v.client
	res := cl.DoMultiCache(ctx,
		valkey.CT(cl.B().Get().Key(licGlobalGenKey).Cache(), licGenCacheTTL),
		valkey.CT(cl.B().Get().Key(licTenantGenKey(tenantID)).Cache(), licGenCacheTTL))
	gens := [2]string{"0", "0"}
	for i, r := range res {
		s, err := r.ToString()
		switch {
		case err == nil:
			gens[i] = s
		case valkey.IsValkeyNil(err):
		default:
			return "", unavailable("licensing generation", err)
		}
	}
	return gens[0] + "." + gens[1], nil
}

// Get reads the entry of key under the current generations.
func (c ValkeyEffectiveCache) Get(ctx context.Context, key licensing.CacheKey) ([]licensing.EffectiveModule, string, bool, error) {
	stamp, err := c.stamp(ctx, key.TenantID)
	if err != nil {
		return nil, "", false, err
	}
	cl := c.v.client
	raw, err := cl.DoCache(ctx, cl.B().Get().Key(licEntryKey(key, stamp)).Cache(), licensing.EffectiveTTL).AsBytes()
	if valkey.IsValkeyNil(err) {
		return nil, stamp, false, nil
	}
	if err != nil {
		return nil, "", false, unavailable("licensing get", err)
	}
	var stored []licModuleJSON
	if err := json.Unmarshal(raw, &stored); err != nil {
		// A foreign or corrupt value: treat as a miss; Set overwrites it.
		return nil, stamp, false, nil
	}
	mods := make([]licensing.EffectiveModule, len(stored))
	for i, m := range stored {
		mods[i] = licensing.EffectiveModule{Code: m.Code, Status: licensing.Status(m.Status), Granted: m.Granted,
			Scope: licensing.Scope(m.Scope), SourceNodeID: m.SourceNodeID, AssignmentID: m.AssignmentID}
	}
	return mods, stamp, true, nil
}

// Set stores mods under stamp for ttl.
func (c ValkeyEffectiveCache) Set(ctx context.Context, key licensing.CacheKey, stamp string, mods []licensing.EffectiveModule, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	stored := make([]licModuleJSON, len(mods))
	for i, m := range mods {
		stored[i] = licModuleJSON{Code: m.Code, Status: string(m.Status), Granted: m.Granted, Scope: string(m.Scope),
			SourceNodeID: m.SourceNodeID, AssignmentID: m.AssignmentID}
	}
	raw, err := json.Marshal(stored)
	if err != nil {
		return core.Internal(err)
	}
	cl := c.v.client
	cmd := cl.B().Set().Key(licEntryKey(key, stamp)).Value(valkey.BinaryString(raw)).PxMilliseconds(millis(ttl)).Build()
	if err := cl.Do(ctx, cmd).Error(); err != nil {
		return unavailable("licensing set", err)
	}
	return nil
}

// InvalidateTenant bumps tenantID's generation.
func (c ValkeyEffectiveCache) InvalidateTenant(ctx context.Context, tenantID string) error {
	cl := c.v.client
	if err := cl.Do(ctx, cl.B().Incr().Key(licTenantGenKey(tenantID)).Build()).Error(); err != nil {
		return unavailable("licensing invalidate", err)
	}
	return nil
}

// InvalidateAll bumps the global generation.
func (c ValkeyEffectiveCache) InvalidateAll(ctx context.Context) error {
	cl := c.v.client
	if err := cl.Do(ctx, cl.B().Incr().Key(licGlobalGenKey).Build()).Error(); err != nil {
		return unavailable("licensing invalidate", err)
	}
	return nil
}
