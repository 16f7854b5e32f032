package serviceaccount

import (
	"context"
	"slices"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// maxCacheEntries bounds the scope cache; when full it is emptied (service
// accounts are few, so this only guards against unbounded growth).
const maxCacheEntries = 10_000

// cacheEntry is what EnrichPrincipal needs of an account.
type cacheEntry struct {
	tenantID string
	scopes   []string
	disabled bool
	at       time.Time
}

// ScopesOf returns the scopes of service account id, read through an
// in-process cache of at most CacheTTL. IDENT_NOT_FOUND for an unknown id;
// a disabled account is IDENT_UNAUTHENTICATED.
func (s *Service) ScopesOf(ctx context.Context, id string) ([]string, error) {
	e, err := s.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if e.disabled {
		return nil, core.Unauthenticated(nil)
	}
	return slices.Clone(e.scopes), nil
}

// EnrichPrincipal fills p.Scopes for a service-account principal (verified
// token with amr "client") from its account; other principals are left
// alone. An unknown or disabled account, or one of another tenant than the
// token's, is IDENT_UNAUTHENTICATED.
func (s *Service) EnrichPrincipal(ctx context.Context, p *core.Principal) error {
	if p == nil || p.Type != core.PrincipalServiceAccount {
		return nil
	}
	e, err := s.lookup(ctx, p.ID)
	if core.IsKind(err, core.KindNotFound) {
		return core.Unauthenticated(err)
	}
	if err != nil {
		return err
	}
	if e.disabled || e.tenantID != p.TenantID {
		return core.Unauthenticated(nil)
	}
	p.Scopes = slices.Clone(e.scopes)
	return nil
}

func (s *Service) lookup(ctx context.Context, id string) (cacheEntry, error) {
	now := s.clock.Now()
	s.mu.Lock()
	e, ok := s.cache[id]
	s.mu.Unlock()
	if ok && now.Sub(e.at) < CacheTTL && !now.Before(e.at) {
		return e, nil
	}
	if !core.ValidID(id) {
		return cacheEntry{}, core.NotFound("service account")
	}
	a, err := s.store.ServiceAccountByID(ctx, id)
	if err != nil {
		return cacheEntry{}, err
	}
	return s.put(a, now), nil
}

// remember caches a freshly authenticated account, so the first request
// with its token finds the scopes without a query.
func (s *Service) remember(a Account) { s.put(a, s.clock.Now()) }

func (s *Service) put(a Account, now time.Time) cacheEntry {
	e := cacheEntry{tenantID: a.TenantID, scopes: slices.Clone(a.Scopes), disabled: a.DisabledAt != nil, at: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= maxCacheEntries {
		clear(s.cache)
	}
	s.cache[a.ID] = e
	return e
}

func (s *Service) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cache, id)
}
