package apikey

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/scope"
)

// maxCacheEntries bounds the verification cache; when it is full, expired
// entries are dropped, and if that is not enough, all of them.
const maxCacheEntries = 10_000

// AuthenticateAPIKey verifies an X-API-Key value (httpx.APIKeyAuthenticator)
// and returns the key's principal: Type api_key, ID the key id, its tenant
// and its scopes. The stored HMAC is compared in constant time; the previous
// secret of a rotated key counts until PreviousExpiresAt.
//
// Errors: IDENT_UNAUTHENTICATED for anything wrong with the key (malformed,
// unknown, wrong secret, expired, revoked, previous secret past its
// overlap); IDENT_UNAVAILABLE when the database cannot be read.
func (s *Service) AuthenticateAPIKey(ctx context.Context, raw string) (*core.Principal, error) {
	prefix, secret, ok := ParseAPIKey(raw)
	if !ok {
		return nil, core.Unauthenticated(nil)
	}
	h := hashSecret(s.hmacKey, secret)
	now := s.clock.Now()
	e, cached, err := s.row(ctx, prefix, now, false)
	if err != nil {
		return nil, err
	}
	match := e.found && secretMatches(e.key, h, now)
	if !match && cached {
		// The row may be stale (a rotation elsewhere): ask the database.
		if e, _, err = s.row(ctx, prefix, now, true); err != nil {
			return nil, err
		}
		match = e.found && secretMatches(e.key, h, now)
	}
	k := e.key
	switch {
	case !match:
		return nil, core.Unauthenticated(nil)
	case k.RevokedAt != nil:
		return nil, core.Unauthenticated(nil)
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return nil, core.Unauthenticated(nil)
	}
	p := &core.Principal{Type: core.PrincipalAPIKey, ID: k.ID, TenantID: k.TenantID,
		TenantIDs: []string{k.TenantID}, Scopes: slices.Clone(k.Scopes)}
	if k.ExpiresAt != nil {
		p.ExpiresAt = *k.ExpiresAt
	}
	return p, nil
}

// secretMatches compares hash h with the current and (while its overlap
// lasts) the previous secret hash, both in constant time.
func secretMatches(k Key, h string, now time.Time) bool {
	cur := equalHash(k.SecretHash, h)
	prev := equalHash(k.PreviousSecretHash, h)
	prevValid := k.PreviousSecretHash != "" && k.PreviousExpiresAt != nil && now.Before(*k.PreviousExpiresAt)
	return cur || (prev && prevValid)
}

// VerifyAPIKey is Connect TokenService.VerifyApiKey: it reports on a key
// presented to another platform service. The caller must be a service
// credential (service account or API key) carrying tenant:api_keys:verify.
// A caller of the platform tenant may verify keys of every tenant, any other
// only keys of its own tenant: a key of another tenant is reported invalid.
// An unknown, malformed, revoked or expired key is Valid false, not an error.
//
// Errors: IDENT_UNAUTHENTICATED (no caller credential); IDENT_FORBIDDEN (not
// a service credential, or the scope is missing); IDENT_UNAVAILABLE.
func (s *Service) VerifyAPIKey(ctx context.Context, raw string) (Verification, error) {
	caller, err := core.RequirePrincipal(ctx)
	if err != nil {
		return Verification{}, err
	}
	if caller.Type != core.PrincipalServiceAccount && caller.Type != core.PrincipalAPIKey {
		return Verification{}, core.Forbidden("requires a service credential")
	}
	if !caller.HasScope(scope.APIKeysVerify) {
		return Verification{}, core.Forbidden("requires scope " + scope.APIKeysVerify)
	}
	p, err := s.AuthenticateAPIKey(ctx, raw)
	if core.IsKind(err, core.KindUnauthenticated) {
		return Verification{}, nil
	}
	if err != nil {
		return Verification{}, err
	}
	if p.TenantID != caller.TenantID {
		platform, err := s.platformTenant(ctx)
		if err != nil {
			return Verification{}, err
		}
		if platform == "" || caller.TenantID != platform {
			return Verification{}, nil
		}
	}
	return Verification{Valid: true, KeyID: p.ID, TenantID: p.TenantID, Scopes: p.Scopes}, nil
}

// platformTenant returns the id of the platform tenant ("" while there is
// none). A found id is kept: tenants are never re-slugged.
func (s *Service) platformTenant(ctx context.Context) (string, error) {
	s.platformMu.Lock()
	id := s.platformID
	s.platformMu.Unlock()
	if id != "" {
		return id, nil
	}
	id, err := s.store.TenantIDBySlug(ctx, core.PlatformTenantSlug)
	if core.IsKind(err, core.KindNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	s.platformMu.Lock()
	s.platformID = id
	s.platformMu.Unlock()
	return id, nil
}

// row returns the key row with prefix from the cache (when fresh is false
// and the entry is younger than CacheTTL) or the database; cached reports
// which. An unknown prefix is cached too (found false).
func (s *Service) row(ctx context.Context, prefix string, now time.Time, fresh bool) (entry cacheEntry, cached bool, err error) {
	if !fresh {
		if e, ok := s.cache.get(prefix, now); ok {
			return e, true, nil
		}
	}
	gen := s.cache.generation()
	k, err := s.store.APIKeyByPrefix(ctx, prefix)
	switch {
	case core.IsKind(err, core.KindNotFound):
		entry = cacheEntry{at: now}
	case err != nil:
		return cacheEntry{}, false, err
	default:
		entry = cacheEntry{key: k, found: true, at: now}
	}
	s.cache.put(prefix, entry, gen)
	return entry, false, nil
}

// cache is the verification cache: key rows by prefix, each reused for at
// most CacheTTL. It is per instance; Rotate, Revoke and Create drop the
// entry they touch. gen counts those invalidations: a row read from the
// database before one is not cached after it, so a read racing a local
// revocation cannot put the unrevoked row back.
type cache struct {
	mu      sync.Mutex
	gen     uint64
	entries map[string]cacheEntry
}

type cacheEntry struct {
	key   Key
	found bool
	at    time.Time
}

func newCache() *cache { return &cache{entries: map[string]cacheEntry{}} }

func (c *cache) get(prefix string, now time.Time) (cacheEntry, bool) {
	c.mu.Lock()
	e, ok := c.entries[prefix]
	c.mu.Unlock()
	if !ok || !fresh(e, now) {
		return cacheEntry{}, false
	}
	return e, true
}

func fresh(e cacheEntry, now time.Time) bool {
	age := now.Sub(e.at)
	return age >= 0 && age < CacheTTL
}

func (c *cache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *cache) put(prefix string, e cacheEntry, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= maxCacheEntries {
		for p, old := range c.entries {
			if !fresh(old, e.at) {
				delete(c.entries, p)
			}
		}
		if len(c.entries) >= maxCacheEntries {
			clear(c.entries)
		}
	}
	c.entries[prefix] = e
}

func (c *cache) forget(prefix string) {
	c.mu.Lock()
	c.gen++
	delete(c.entries, prefix)
	c.mu.Unlock()
}
