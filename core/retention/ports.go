package retention

import (
	"context"
	"time"
)

// Store deletes records whose life has ended (persistence.RetentionStore).
// It is called outside any transaction: each call is one short statement,
// so a sweep never holds locks for long and a failed batch loses nothing
// but itself.
type Store interface {
	// DeleteExpired deletes at most limit rows of kind that ended strictly
	// before `before` (the kind's rule says what "ended" means) and returns
	// how many it deleted. Fewer than limit means no more are due. A
	// session is deleted only once it has no refresh token left, so
	// KindRefreshTokens must be swept before KindSessions. Rows another
	// transaction holds locked may be skipped (left for the next sweep).
	// Errors: IDENT_UNAVAILABLE when the database cannot be reached;
	// IDENT_INTERNAL for an unknown kind, a limit below 1, or any other
	// database failure.
	DeleteExpired(ctx context.Context, kind Kind, before time.Time, limit int) (int, error)
}
