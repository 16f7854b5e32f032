package keys

import (
	"context"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Run refreshes the keyring every RefreshEvery and performs the scheduled
// rotation (RotationCron, evaluated in UTC) until ctx is done. The schedule
// is checked at each refresh tick, so a rotation starts at most one
// RefreshEvery after its cron time.
//
// Every instance sharing the database fires the same schedule. A scheduled
// rotation is skipped when the active key was activated less than half a
// rotation period ago, and the conditional transitions let only one of
// several simultaneous rotations commit, so the fleet rotates once.
func (s *Service) Run(ctx context.Context) {
	ticker := time.NewTicker(s.cfg.RefreshEvery)
	defer ticker.Stop()
	due := s.sched.Next(s.clock.Now().UTC())
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		now := s.clock.Now().UTC()
		if due.IsZero() || now.Before(due) {
			_ = s.Refresh(ctx) // logs its own failure
			continue
		}
		s.scheduledRotate(ctx, due)
		due = s.sched.Next(now)
	}
}

// scheduledRotate runs the rotation planned for firedAt, skipping it when
// another instance already rotated within half a period.
func (s *Service) scheduledRotate(ctx context.Context, firedAt time.Time) {
	// The period is the gap to the following firing; half of it separates
	// "another instance just did this rotation" from "the last rotation was
	// the previous schedule".
	minAge := s.sched.Next(firedAt).Sub(firedAt) / 2
	if minAge <= 0 {
		minAge = time.Nanosecond
	}
	key, rotated, err := s.rotate(ctx, minAge)
	switch {
	case core.IsKind(err, core.KindConflict):
		s.log.InfoContext(ctx, "scheduled key rotation done by another instance", "scheduledAt", firedAt)
	case err != nil:
		s.log.ErrorContext(ctx, "scheduled key rotation failed", "scheduledAt", firedAt, "error", err)
		_ = s.Refresh(ctx)
	case !rotated:
		s.log.InfoContext(ctx, "scheduled key rotation skipped: the active key is recent", "scheduledAt", firedAt)
		_ = s.Refresh(ctx)
	default:
		s.log.InfoContext(ctx, "scheduled key rotation done", "scheduledAt", firedAt, "kid", key.KID)
	}
}
