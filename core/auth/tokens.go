package auth

import (
	"context"
	"slices"

	"github.com/ghasi-ehealth/identity-service/core"
)

// TokenRevocation is the token.RevocationChecker of session-bound access
// tokens: a token is revoked when its session (the jti up to the first '.')
// is in the revocation set. Tokens whose jti has no '.' are not bound to a
// session and are never reported revoked here.
type TokenRevocation struct {
	Set core.RevocationSet
	// Fallback, when set, answers instead of Set when Set fails (e.g.
	// persistence.SessionStore.SessionRevoked while Valkey is down).
	Fallback func(ctx context.Context, sessionID string) (bool, error)
}

// IsRevoked reports whether the session of tokenID is revoked.
func (r TokenRevocation) IsRevoked(ctx context.Context, tokenID string) (bool, error) {
	sid, ok := SessionIDOf(tokenID)
	if !ok {
		return false, nil
	}
	revoked, err := r.Set.IsRevoked(ctx, sid)
	if err != nil && r.Fallback != nil {
		return r.Fallback(ctx, sid)
	}
	return revoked, err
}

// warmBatch bounds the ids handed to one RevocationSet.Revoke call.
const warmBatch = 500

// WarmRevocations loads every session revoked within the last access-token
// lifetime (plus leeway) into the revocation set, so an in-process set that
// starts empty still rejects the tokens of sessions revoked before a restart.
// Call it at start, before serving. The entries get the full TTL (at most
// that much longer than needed, which is harmless).
func (s *Service) WarmRevocations(ctx context.Context) error {
	ttl := s.revocationTTL()
	ids, err := s.store.RevokedSessionsSince(ctx, s.now().Add(-ttl))
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(ids, warmBatch) {
		if err := s.revocations.Revoke(ctx, chunk, ttl); err != nil {
			return dependencyError(err)
		}
	}
	s.log.InfoContext(ctx, "revocation set warmed", "sessions", len(ids))
	return nil
}

// Identity is GET /auth/whoami (CONTRACT.md §4).
type Identity struct {
	Type      core.PrincipalType
	ID        string
	TenantID  string
	TenantIDs []string
	Scopes    []string
	AMR       []string
}

// Whoami describes the caller as its credential asserts it. A restricted
// (MFA-enrolment-only) credential may ask too. Errors: IDENT_UNAUTHENTICATED.
func (s *Service) Whoami(ctx context.Context) (Identity, error) {
	p, err := core.RequireAnyPrincipal(ctx)
	if err != nil {
		return Identity{}, err
	}
	tids := p.TenantIDs
	if len(tids) == 0 && p.TenantID != "" {
		tids = []string{p.TenantID}
	}
	return Identity{
		Type: p.Type, ID: p.ID, TenantID: p.TenantID,
		TenantIDs: slices.Clone(tids), Scopes: slices.Clone(p.Scopes), AMR: slices.Clone(p.AMR),
	}, nil
}
