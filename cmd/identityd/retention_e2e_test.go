package main

// End-to-end tests of the retention sweeper (core/retention) in the real
// service on SQLite and Postgres: rows made through the public API and then
// aged in the database (the service's clock is the wall clock) are deleted
// once past their grace period, the rest stay, and what clients see stays
// right — a live session refreshes, a used refresh token of a session in
// its grace period is still a detected replay.

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/retention"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

// withRetentionInterval sets IDENTITY_RETENTION_INTERVAL.
func withRetentionInterval(env map[string]string, interval string) map[string]string {
	env["IDENTITY_RETENTION_INTERVAL"] = interval
	return env
}

// age runs an UPDATE that moves a row's times into the past.
func (s *testService) age(t *testing.T, query string, args ...any) {
	t.Helper()
	res, err := s.main.db.Bun().ExecContext(context.Background(), query, args...)
	require.NoError(t, err)
	n, err := res.RowsAffected()
	require.NoError(t, err)
	require.Positive(t, n, "aged nothing: %s", query)
}

// expireSession makes session sid have expired `ago`.
func (s *testService) expireSession(t *testing.T, sid string, ago time.Duration) {
	t.Helper()
	end := time.Now().UTC().Add(-ago)
	s.age(t, `UPDATE sessions SET created_at = ?, last_used_at = ?, expires_at = ? WHERE id = ?`,
		end.Add(-8*time.Hour), end.Add(-time.Hour), end, sid)
}

// TestRetentionSweep drives one Sweep (the loop is off) over every kind of
// record and checks what went, what stayed and what clients see after.
func TestRetentionSweep(t *testing.T) {
	for name, env := range e2eDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, withRetentionInterval(withWebAuthn(withTrustedProxy(env(t))), "0"))
			f := newAuthFixture(t, s)
			c := s.from(t)
			ctx := context.Background()
			alice := f.activeUser(t, f.tenantA.ID, f.email("alice"), passwordA)

			// Sessions: one live, one expired a day ago (inside the grace
			// period), one expired 8 days ago (past it); the last two were
			// refreshed once, so each holds a used and an unused token.
			live := c.mustLogin(t, alice.Email, passwordA, nil)
			inGrace := c.mustLogin(t, alice.Email, passwordA, nil)
			inGraceNext := requireTokenResponse(t, c.refresh(t, inGrace.RefreshToken))
			old := c.mustLogin(t, alice.Email, passwordA, nil)
			requireTokenResponse(t, c.refresh(t, old.RefreshToken))
			liveSID := s.decodeJWT(t, live.AccessToken).sessionID()
			graceSID := s.decodeJWT(t, inGrace.AccessToken).sessionID()
			oldSID := s.decodeJWT(t, old.AccessToken).sessionID()
			s.expireSession(t, graceSID, 24*time.Hour)
			s.expireSession(t, oldSID, retention.SessionGrace+time.Hour)

			// A verification token expired 2 days ago; alice's was used just
			// now and stays a day.
			bob := f.pendingUser(t, f.tenantA.ID, f.email("bob"), passwordB)
			s.age(t, `UPDATE verification_tokens SET created_at = ?, expires_at = ? WHERE user_id = ?`,
				time.Now().UTC().Add(-72*time.Hour), time.Now().UTC().Add(-48*time.Hour), bob.ID)

			// MFA login challenges of a TOTP user: one expired 2 hours ago.
			carol := f.activeUser(t, f.tenantA.ID, f.email("carol"), passwordA)
			carolTok := requireTokenResponse(t, c.login(t, carol.Email, passwordA, nil))
			enr, gen := c.enrollTOTP(t, carolTok.AccessToken, carol.Email)
			c.confirmTOTP(t, carolTok.AccessToken, enr.FactorID, gen)
			oldChallenge := requireChallenge(t, c.login(t, carol.Email, passwordA, nil), "totp", "recovery")
			newChallenge := requireChallenge(t, c.login(t, carol.Email, passwordA, nil), "totp", "recovery")
			s.age(t, `UPDATE mfa_challenges SET created_at = ?, expires_at = ? WHERE id = ?`,
				time.Now().UTC().Add(-3*time.Hour), time.Now().UTC().Add(-2*time.Hour), oldChallenge.ChallengeID)

			// Passkey registration ceremonies: one expired 2 hours ago.
			c.registerOptions(t, live.AccessToken)
			s.age(t, `UPDATE webauthn_ceremonies SET created_at = ?, expires_at = ? WHERE user_id = ?`,
				time.Now().UTC().Add(-3*time.Hour), time.Now().UTC().Add(-2*time.Hour), alice.ID)
			c.registerOptions(t, live.AccessToken)

			// Inbox dedupe records: one processed 15 days ago, one yesterday.
			oldEvent, newEvent := core.NewID(), core.NewID()
			for id, at := range map[string]time.Time{oldEvent: time.Now().Add(-15 * 24 * time.Hour), newEvent: time.Now().Add(-24 * time.Hour)} {
				fresh, err := s.main.db.InsertInbox(ctx, "retention-e2e", id, at)
				require.NoError(t, err)
				require.True(t, fresh)
			}

			events := s.eventCount(t)
			res, err := s.main.retention.Sweep(ctx)
			require.NoError(t, err)
			require.Equal(t, map[retention.Kind]int{
				retention.KindRefreshTokens: 2, retention.KindSessions: 1, retention.KindVerificationTokens: 1,
				retention.KindMFAChallenges: 1, retention.KindWebAuthnCeremonies: 1, retention.KindInbox: 1,
			}, res.Deleted)
			require.Equal(t, events, s.eventCount(t), "the outbox and audit trail are never swept")

			require.Zero(t, s.count(t, `SELECT count(*) FROM sessions WHERE id = ?`, oldSID))
			require.Zero(t, s.count(t, `SELECT count(*) FROM refresh_tokens WHERE session_id = ?`, oldSID))
			require.Equal(t, 2, s.count(t, `SELECT count(*) FROM refresh_tokens WHERE session_id = ?`, graceSID))
			require.Equal(t, 1, s.count(t, `SELECT count(*) FROM refresh_tokens WHERE session_id = ?`, liveSID))
			require.Zero(t, s.count(t, `SELECT count(*) FROM verification_tokens WHERE user_id = ?`, bob.ID))
			require.Equal(t, 1, s.count(t, `SELECT count(*) FROM verification_tokens WHERE user_id = ?`, alice.ID))
			require.Zero(t, s.count(t, `SELECT count(*) FROM mfa_challenges WHERE id = ?`, oldChallenge.ChallengeID))
			require.Equal(t, 1, s.count(t, `SELECT count(*) FROM mfa_challenges WHERE id = ?`, newChallenge.ChallengeID))
			require.Equal(t, 1, s.count(t, `SELECT count(*) FROM webauthn_ceremonies WHERE user_id = ?`, alice.ID))
			require.Equal(t, 1, s.count(t, `SELECT count(*) FROM inbox WHERE consumer = ?`, "retention-e2e"))
			require.Equal(t, 1, s.count(t, `SELECT count(*) FROM users WHERE id = ?`, bob.ID), "users are never swept")

			// The live session refreshes; the used token of the session in its
			// grace period is still a replay (session revoked, incident
			// recorded); the swept session's token is merely unknown.
			requireTokenResponse(t, c.refresh(t, live.RefreshToken))
			requireProblem(t, c.refresh(t, inGrace.RefreshToken), http.StatusUnauthorized, "IDENT_REFRESH_REPLAY")
			s.requireRevokedEvent(t, graceSID, alice.ID, f.tenantA.ID, "replay")
			requireProblem(t, c.refresh(t, inGraceNext.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			requireProblem(t, c.refresh(t, old.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			// The swept challenge is refused like an expired one (a kept one
			// would answer IDENT_MFA_INVALID_CODE to a wrong code).
			requireProblem(t, c.verifyMFA(t, oldChallenge.ChallengeID, "totp", gen.wrong(t)), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			requireProblem(t, c.verifyMFA(t, newChallenge.ChallengeID, "totp", gen.wrong(t)), http.StatusUnauthorized, "IDENT_MFA_INVALID_CODE")

			// What the sweep deleted is on /metrics, by kind.
			m := scrapeMetrics(t, s)
			scope := map[string]string{"otel_scope_name": telemetry.ScopeName}
			for kind, n := range res.Deleted {
				labels := map[string]string{"kind": string(kind)}
				for k, v := range scope {
					labels[k] = v
				}
				require.Equal(t, float64(n), m.requireSeries(t, "identity_retention_deleted_total", labels), kind)
				require.Zero(t, m.requireSeries(t, "identity_retention_failures_total", labels), kind)
			}

			// A second sweep has nothing left to do.
			again, err := s.main.retention.Sweep(ctx)
			require.NoError(t, err)
			require.Zero(t, again.Total())
		})
	}
}

// TestRetentionRunLoop: with IDENTITY_RETENTION_INTERVAL set, the service
// sweeps by itself.
func TestRetentionRunLoop(t *testing.T) {
	for name, env := range e2eDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, withRetentionInterval(withTrustedProxy(env(t)), "1s"))
			c := s.from(t)
			live := c.mustLogin(t, testAdminEmail, testAdminPassword, nil)
			old := c.mustLogin(t, testAdminEmail, testAdminPassword, nil)
			oldSID := s.decodeJWT(t, old.AccessToken).sessionID()
			s.expireSession(t, oldSID, retention.SessionGrace+time.Minute)
			oldEvent := core.NewID()
			_, err := s.main.db.InsertInbox(context.Background(), "retention-e2e", oldEvent, time.Now().Add(-retention.InboxGrace-time.Minute))
			require.NoError(t, err)

			require.Eventually(t, func() bool {
				return s.count(t, `SELECT count(*) FROM sessions WHERE id = ?`, oldSID) == 0 &&
					s.count(t, `SELECT count(*) FROM inbox WHERE event_id = ?`, oldEvent) == 0
			}, 15*time.Second, 50*time.Millisecond, "swept within a few intervals")
			require.Zero(t, s.count(t, `SELECT count(*) FROM refresh_tokens WHERE session_id = ?`, oldSID))
			requireTokenResponse(t, c.refresh(t, live.RefreshToken))

			scope := map[string]string{"otel_scope_name": telemetry.ScopeName}
			m := scrapeMetrics(t, s)
			for _, kind := range []string{"sessions", "refresh_tokens", "inbox"} {
				labels := map[string]string{"kind": kind}
				for k, v := range scope {
					labels[k] = v
				}
				m.requirePositive(t, "identity_retention_deleted_total", labels)
			}
		})
	}
}
