package cache

import (
	"context"
	"time"

	"github.com/valkey-io/valkey-go"
)

const (
	// revocationCacheTTL bounds how long a client-side cached answer is
	// kept. Correctness does not depend on it: the server pushes an
	// invalidation when the key changes, a cached "revoked" never outlives
	// the key's own expiry, and the cache is dropped when the connection
	// breaks. It only limits memory for ids that are checked once.
	revocationCacheTTL = time.Minute
	// ownWriteTTL is how long a revocation written through this client is
	// also answered from memory: enough for the invalidation push to
	// arrive on the caching connection (milliseconds in practice).
	ownWriteTTL = 10 * time.Second
)

// valkeyRevocations is core.RevocationSet on Valkey; keys
// identity:revoked:session:{sessionId} with value "1" (gateways check them
// with EXISTS or GET).
type valkeyRevocations struct{ v *Valkey }

func revokedKey(sessionID string) string { return keyPrefix + "revoked:session:" + sessionID }

// Revoke marks sessionIDs revoked for ttl in one pipeline. An existing
// revocation is never shortened: PEXPIRE … GT extends a live key, then SET
// … NX PX creates a missing one (in this order, a key that expires between
// the two commands is recreated). ttl ≤ 0 means every token of the session
// has already expired, so there is nothing to do.
func (r valkeyRevocations) Revoke(ctx context.Context, sessionIDs []string, ttl time.Duration) error {
	if ttl <= 0 || len(sessionIDs) == 0 {
		return nil
	}
	// Answer our own reads at once, even if the write below fails.
	_ = r.v.own.Revoke(ctx, sessionIDs, min(ttl, ownWriteTTL))
	c, ms := r.v.client, millis(ttl)
	cmds := make([]valkey.Completed, 0, 2*len(sessionIDs))
	for _, id := range sessionIDs {
		k := revokedKey(id)
		// Both are idempotent, so the pipeline may be retried after a
		// network error.
		cmds = append(cmds,
			c.B().Pexpire().Key(k).Milliseconds(ms).Gt().Build().ToRetryable(),
			c.B().Set().Key(k).Value("1").Nx().PxMilliseconds(ms).Build().ToRetryable())
	}
	for _, res := range c.DoMulti(ctx, cmds...) {
		// SET NX answers nil when the key already exists.
		if err := res.Error(); err != nil && !valkey.IsValkeyNil(err) {
			return unavailable("revoke", err)
		}
	}
	return nil
}

// IsRevoked answers from the client-side cache when it can (a local memory
// read); otherwise one GET that the server then tracks for this client.
func (r valkeyRevocations) IsRevoked(ctx context.Context, sessionID string) (bool, error) {
	revoked, _, err := r.isRevoked(ctx, sessionID)
	return revoked, err
}

// isRevoked also reports whether the answer came from the client-side cache.
func (r valkeyRevocations) isRevoked(ctx context.Context, sessionID string) (revoked, cached bool, err error) {
	if own, _ := r.v.own.IsRevoked(ctx, sessionID); own {
		return true, true, nil
	}
	c := r.v.client
	res := c.DoCache(ctx, c.B().Get().Key(revokedKey(sessionID)).Cache(), revocationCacheTTL)
	switch err := res.Error(); {
	case err == nil:
		return true, res.IsCacheHit(), nil
	case valkey.IsValkeyNil(err):
		return false, res.IsCacheHit(), nil
	default:
		return false, false, unavailable("revocation check", err)
	}
}
