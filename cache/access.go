package cache

import (
	"context"
	"encoding/json"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/access"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
)

// Access-context cache keys (IDENT-US-012):
//
//	identity:access-context:gen                  global generation (INCR on module events)
//	                                             (every generation: PX renewed on INCR, see acGenKeep)
//	identity:access-context:gen:user:{user}      user generation (INCR on membership / role changes)
//	identity:access-context:gen:tenant:{tenant}  tenant generation (INCR on licensing changes)
//	identity:access-context:{user}:{node}        entry (JSON with its stamp, PX = TTL + stale grace)
//
// Entries and generations are read through the client-side cache, so a
// warm hit is a local memory read; an INCR or SET by any instance makes
// the server push an invalidation to every client that cached the old value.
const (
	acGlobalGenKey = keyPrefix + "access-context:gen"
	// acClientTTL bounds how long a value is kept client-side; correctness
	// rests on the server's invalidation pushes, not on it.
	acClientTTL = access.ContextTTL
)

func acUserGenKey(userID string) string { return keyPrefix + "access-context:gen:user:" + userID }

func acTenantGenKey(tenantID string) string {
	return keyPrefix + "access-context:gen:tenant:" + tenantID
}

func acEntryKey(userID, nodeID string) string {
	return keyPrefix + "access-context:" + userID + ":" + nodeID
}

// ValkeyAccessCache is access.ContextCache on Valkey, shared by every
// instance. Safe for concurrent use.
type ValkeyAccessCache struct{ v *Valkey }

var _ access.ContextCache = ValkeyAccessCache{}

// AccessContexts returns the access-context cache on this server.
func (v *Valkey) AccessContexts() ValkeyAccessCache { return ValkeyAccessCache{v: v} }

// NewValkeyAccessCache is v.AccessContexts().
func NewValkeyAccessCache(v *Valkey) ValkeyAccessCache { return v.AccessContexts() }

type acEntryJSON struct {
	Stamp       string             `json:"st"`
	ExpiresAt   int64              `json:"exp"` // Unix milliseconds
	UserID      string             `json:"u"`
	TenantID    string             `json:"t"`
	NodeID      string             `json:"n,omitempty"`
	Roles       []string           `json:"r"`
	Memberships []acMembershipJSON `json:"m"`
	Modules     []licModuleJSON    `json:"e"`
}

type acMembershipJSON struct {
	TenantID string   `json:"t"`
	NodeID   string   `json:"n,omitempty"`
	Roles    []string `json:"r"`
}

// gens reads the global, user and tenant generations (client-side cached).
func (c ValkeyAccessCache) gens(ctx context.Context, userID, tenantID string) (string, error) {
	cl := c.v.client
	res := cl.DoMultiCache(ctx,
		valkey.CT(cl.B().Get().Key(acGlobalGenKey).Cache(), acClientTTL),
		valkey.CT(cl.B().Get().Key(acUserGenKey(userID)).Cache(), acClientTTL),
		valkey.CT(cl.B().Get().Key(acTenantGenKey(tenantID)).Cache(), acClientTTL))
	gens := [3]string{"0", "0", "0"}
	for i, r := range res {
		s, err := r.ToString()
		switch {
		case err == nil:
			gens[i] = s
		case valkey.IsValkeyNil(err):
		default:
			return "", unavailable("access-context generation", err)
		}
	}
	return gens[0] + "." + gens[1] + "." + gens[2], nil
}

// Stamp reads the current generations of userID and tenantID.
func (c ValkeyAccessCache) Stamp(ctx context.Context, userID, tenantID string) (string, error) {
	return c.gens(ctx, userID, tenantID)
}

// Get reads the entry of (userID, nodeID) and checks its stamp against the
// current generations.
func (c ValkeyAccessCache) Get(ctx context.Context, userID, nodeID string) (access.Entry, bool, error) {
	cl := c.v.client
	raw, err := cl.DoCache(ctx, cl.B().Get().Key(acEntryKey(userID, nodeID)).Cache(), acClientTTL).AsBytes()
	if valkey.IsValkeyNil(err) {
		return access.Entry{}, false, nil
	}
	if err != nil {
		return access.Entry{}, false, unavailable("access-context get", err)
	}
	var s acEntryJSON
	if err := json.Unmarshal(raw, &s); err != nil || s.UserID != userID || s.NodeID != nodeID {
		return access.Entry{}, false, nil // foreign or corrupt: a miss; Set overwrites it
	}
	stamp, err := c.gens(ctx, userID, s.TenantID)
	if err != nil {
		return access.Entry{}, false, err
	}
	if stamp != s.Stamp {
		return access.Entry{}, false, nil
	}
	ac := access.Context{UserID: s.UserID, TenantID: s.TenantID, NodeID: s.NodeID, Roles: s.Roles,
		Memberships:      make([]core.Membership, len(s.Memberships)),
		EffectiveModules: make([]licensing.EffectiveModule, len(s.Modules))}
	if ac.Roles == nil {
		ac.Roles = []string{}
	}
	for i, m := range s.Memberships {
		ac.Memberships[i] = core.Membership{UserID: userID, TenantID: m.TenantID, NodeID: m.NodeID, Roles: m.Roles}
	}
	for i, m := range s.Modules {
		ac.EffectiveModules[i] = licensing.EffectiveModule{Code: m.Code, Status: licensing.Status(m.Status),
			Granted: m.Granted, Scope: licensing.Scope(m.Scope), SourceNodeID: m.SourceNodeID, AssignmentID: m.AssignmentID}
	}
	return access.Entry{Context: ac, ExpiresAt: time.UnixMilli(s.ExpiresAt)}, true, nil
}

// Set stores e under stamp for keep.
func (c ValkeyAccessCache) Set(ctx context.Context, userID, nodeID, stamp string, e access.Entry, keep time.Duration) error {
	if keep <= 0 {
		return nil
	}
	ac := e.Context
	s := acEntryJSON{Stamp: stamp, ExpiresAt: e.ExpiresAt.UnixMilli(), UserID: userID, TenantID: ac.TenantID,
		NodeID: nodeID, Roles: ac.Roles, Memberships: make([]acMembershipJSON, len(ac.Memberships)),
		Modules: make([]licModuleJSON, len(ac.EffectiveModules))}
	for i, m := range ac.Memberships {
		s.Memberships[i] = acMembershipJSON{TenantID: m.TenantID, NodeID: m.NodeID, Roles: m.Roles}
	}
	for i, m := range ac.EffectiveModules {
		s.Modules[i] = licModuleJSON{Code: m.Code, Status: string(m.Status), Granted: m.Granted, Scope: string(m.Scope),
			SourceNodeID: m.SourceNodeID, AssignmentID: m.AssignmentID}
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return core.Internal(err)
	}
	cl := c.v.client
	cmd := cl.B().Set().Key(acEntryKey(userID, nodeID)).Value(valkey.BinaryString(raw)).PxMilliseconds(millis(keep)).Build()
	if err := cl.Do(ctx, cmd).Error(); err != nil {
		return unavailable("access-context set", err)
	}
	return nil
}

// acGenKeep is how long a generation outlives its last bump: longer than
// any entry stored under an older generation (access.ContextTTL +
// access.StaleGrace, plus a margin for a Set racing the bump), so a
// generation that expires back to 0 never revives such an entry.
const acGenKeep = access.ContextTTL + access.StaleGrace + 5*time.Minute

// incr bumps a generation and renews its expiry.
func (c ValkeyAccessCache) incr(ctx context.Context, key string) error {
	cl := c.v.client
	for _, r := range cl.DoMulti(ctx, cl.B().Incr().Key(key).Build(),
		cl.B().Pexpire().Key(key).Milliseconds(millis(acGenKeep)).Build()) {
		if err := r.Error(); err != nil {
			return unavailable("access-context invalidate", err)
		}
	}
	return nil
}

// InvalidateUser bumps userID's generation.
func (c ValkeyAccessCache) InvalidateUser(ctx context.Context, userID string) error {
	return c.incr(ctx, acUserGenKey(userID))
}

// InvalidateTenant bumps tenantID's generation.
func (c ValkeyAccessCache) InvalidateTenant(ctx context.Context, tenantID string) error {
	return c.incr(ctx, acTenantGenKey(tenantID))
}

// InvalidateAll bumps the global generation.
func (c ValkeyAccessCache) InvalidateAll(ctx context.Context) error {
	return c.incr(ctx, acGlobalGenKey)
}
