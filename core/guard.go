package core

import (
	"context"
	"time"
)

// RateLimiter counts events per key in fixed windows. Implementations: Valkey
// (shared by every instance) and in-process (one node). A limiter that cannot
// reach its backend must fail closed or fall back to a local count — never
// allow unlimited attempts.
type RateLimiter interface {
	// Hit atomically counts one event under key. The window starts at the
	// first hit and lasts window; Hit returns the count including this hit
	// and the time until the window ends.
	Hit(ctx context.Context, key string, window time.Duration) (count int64, resetIn time.Duration, err error)
	// Undo takes one hit back (an attempt counted up front that succeeded).
	Undo(ctx context.Context, key string) error
	// Peek returns the current count and the time until the window ends
	// without counting (0, 0 when there is none).
	Peek(ctx context.Context, key string) (count int64, resetIn time.Duration, err error)
}

// RevocationSet holds the ids of revoked sessions for as long as an access
// token issued for them can still be valid, so every instance (and a gateway
// with one lookup) rejects those tokens at once.
type RevocationSet interface {
	// Revoke adds sessionIDs for ttl.
	Revoke(ctx context.Context, sessionIDs []string, ttl time.Duration) error
	// IsRevoked reports whether sessionID is in the set.
	IsRevoked(ctx context.Context, sessionID string) (bool, error)
}
