package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/mfa"
	"github.com/ghasi-ehealth/identity-service/core/mfa/passkey"
	"github.com/ghasi-ehealth/identity-service/core/retention"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testRetention(t *testing.T, open dbtest.Opener) {
	t.Run("sessions and refresh tokens", func(t *testing.T) { testRetentionSessions(t, open(t)) })
	t.Run("short-lived records", func(t *testing.T) { testRetentionShortLived(t, open(t)) })
	t.Run("batches", func(t *testing.T) { testRetentionBatches(t, open(t)) })
	t.Run("replay inside the grace period", func(t *testing.T) { testRetentionReplay(t, open(t)) })
	t.Run("concurrent sweeps", func(t *testing.T) { testRetentionConcurrent(t, open(t)) })
	t.Run("bad arguments", func(t *testing.T) { testRetentionArguments(t, open(t)) })
}

// retentionCut is the cutoff the tests sweep with: rows that ended strictly
// before it are due.
var retentionCut = userT0.Add(30 * 24 * time.Hour)

// sweepAll deletes every due row of every kind in the sweeper's order,
// batch rows at a time, and returns the count per kind.
func sweepAll(t *testing.T, s *persistence.RetentionStore, before time.Time, batch int) map[retention.Kind]int {
	t.Helper()
	out := map[retention.Kind]int{}
	for _, r := range retention.Rules() {
		for {
			n, err := s.DeleteExpired(context.Background(), r.Kind, before, batch)
			require.NoError(t, err, r.Kind)
			out[r.Kind] += n
			if n < batch {
				break
			}
		}
	}
	return out
}

// present reports whether query (bun placeholders) finds a row.
func present(t *testing.T, db *persistence.DB, query string, args ...any) bool {
	t.Helper()
	var n int
	require.NoError(t, db.Bun().QueryRowContext(context.Background(), "SELECT count(*) FROM "+query, args...).Scan(&n))
	return n > 0
}

// endedSession stores a session of u that expires at expires (and is revoked
// at revoked unless it is zero) with the given refresh-token hashes.
func endedSession(t *testing.T, db *persistence.DB, u user.User, expires, revoked time.Time, hashes ...string) auth.Session {
	t.Helper()
	ctx := context.Background()
	s := persistence.NewSessionStore(db)
	sess := newSession(u)
	sess.ExpiresAt = expires
	if !revoked.IsZero() {
		sess.RevokedAt, sess.RevokeReason = &revoked, auth.ReasonLogout
	}
	require.NoError(t, s.InsertSession(ctx, sess))
	for _, h := range hashes {
		require.NoError(t, s.InsertRefreshToken(ctx, h, sess.ID, userT0))
	}
	return sess
}

// testRetentionSessions: a session ended at its expiry or revocation,
// whichever came first; it goes (with its refresh tokens) once that is
// before the cutoff, never while a token of it remains, and nothing else
// goes with it.
func testRetentionSessions(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	st := persistence.NewRetentionStore(db)
	u, _ := sessionFixture(t, db, "ret")
	cut := retentionCut
	var zero time.Time
	expired := endedSession(t, db, u, cut.Add(-time.Hour), zero, "exp-1", "exp-2")
	revoked := endedSession(t, db, u, cut.Add(time.Hour), cut.Add(-time.Second), "rev-1")
	// Revoked after it expired (e.g. a suspension): it ended at its expiry.
	lateRevoked := endedSession(t, db, u, cut.Add(-time.Minute), cut.Add(time.Hour))
	inGrace := endedSession(t, db, u, cut.Add(time.Hour), cut.Add(time.Second), "grace-1")
	atCut := endedSession(t, db, u, cut, zero, "cut-1")
	live := endedSession(t, db, u, cut.Add(8*time.Hour), zero, "live-1")
	addEvents(t, db, event("identity.session.revoked.v1", revoked.ID, u.TenantID, 1))

	// Sessions first: only the one without tokens goes, and the foreign
	// key of the others' tokens does not fail the statement.
	n, err := st.DeleteExpired(ctx, retention.KindSessions, cut, 100)
	require.NoError(t, err)
	require.Equal(t, 1, n, "only the due session without tokens")
	require.False(t, present(t, db, "sessions WHERE id = ?", lateRevoked.ID))
	require.True(t, present(t, db, "sessions WHERE id = ?", expired.ID), "its tokens are still there")

	require.Equal(t, map[retention.Kind]int{
		retention.KindRefreshTokens: 3, retention.KindSessions: 2, retention.KindVerificationTokens: 0,
		retention.KindMFAChallenges: 0, retention.KindWebAuthnCeremonies: 0, retention.KindInbox: 0,
	}, sweepAll(t, st, cut, 100))
	for _, gone := range []auth.Session{expired, revoked} {
		require.False(t, present(t, db, "sessions WHERE id = ?", gone.ID))
		require.False(t, present(t, db, "refresh_tokens WHERE session_id = ?", gone.ID))
	}
	for _, kept := range []auth.Session{inGrace, atCut, live} {
		require.True(t, present(t, db, "sessions WHERE id = ?", kept.ID))
		require.True(t, present(t, db, "refresh_tokens WHERE session_id = ?", kept.ID))
	}
	require.True(t, present(t, db, "users WHERE id = ?", u.ID))
	require.Len(t, allEvents(t, db), 1, "the outbox and audit trail are never swept")
	require.Equal(t, 0, sweepAll(t, st, cut, 100)[retention.KindSessions], "nothing left to do")
}

// testRetentionShortLived: verification tokens end at expiry or use,
// challenges and ceremonies at expiry (use does not matter), inbox records
// when processed; a row ending exactly at the cutoff stays.
func testRetentionShortLived(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	cut := retentionCut
	u, _ := sessionFixture(t, db, "short")

	users := persistence.NewUserStore(db)
	verification := func(hash string, expires time.Time, used *time.Time) {
		require.NoError(t, users.InsertVerificationToken(ctx, user.VerificationToken{ID: core.NewID(), UserID: u.ID,
			TokenHash: hash, ExpiresAt: expires, UsedAt: used, CreatedAt: userT0}))
	}
	usedBefore, usedAfter := cut.Add(-time.Second), cut.Add(time.Second)
	verification("v-expired", cut.Add(-time.Second), nil)
	verification("v-used", cut.Add(time.Hour), &usedBefore)
	verification("v-at-cut", cut, nil)
	verification("v-used-in-grace", cut.Add(time.Hour), &usedAfter)
	verification("v-live", cut.Add(24*time.Hour), nil)

	mfaStore := persistence.NewMFAStore(db)
	challenge := func(expires time.Time) string {
		c := mfa.Challenge{ID: core.NewID(), UserID: u.ID, TenantID: u.TenantID, CreatedAt: userT0, ExpiresAt: expires}
		require.NoError(t, mfaStore.InsertChallenge(ctx, c))
		return c.ID
	}
	chExpired, chAtCut, chConsumed := challenge(cut.Add(-time.Second)), challenge(cut), challenge(cut.Add(time.Minute))
	ok, err := mfaStore.ConsumeChallenge(ctx, chConsumed, cut.Add(-time.Hour))
	require.NoError(t, err)
	require.True(t, ok)

	passkeys := persistence.NewPasskeyStore(db)
	ceremony := func(expires time.Time) string {
		c := passkey.Ceremony{ID: core.NewID(), UserID: u.ID, State: []byte(`{}`), CreatedAt: userT0, ExpiresAt: expires}
		require.NoError(t, passkeys.InsertPasskeyCeremony(ctx, c))
		return c.ID
	}
	cerExpired, cerAtCut, cerUsed := ceremony(cut.Add(-time.Second)), ceremony(cut), ceremony(cut.Add(time.Minute))
	_, err = passkeys.ConsumePasskeyCeremony(ctx, cerUsed, u.ID, cut.Add(-time.Hour))
	require.NoError(t, err)

	for id, at := range map[string]time.Time{"in-old": cut.Add(-time.Second), "in-cut": cut, "in-new": cut.Add(time.Second)} {
		fresh, err := db.InsertInbox(ctx, "consumer", id, at)
		require.NoError(t, err)
		require.True(t, fresh)
	}

	require.Equal(t, map[retention.Kind]int{
		retention.KindRefreshTokens: 0, retention.KindSessions: 0, retention.KindVerificationTokens: 2,
		retention.KindMFAChallenges: 1, retention.KindWebAuthnCeremonies: 1, retention.KindInbox: 1,
	}, sweepAll(t, persistence.NewRetentionStore(db), cut, 100))

	for hash, kept := range map[string]bool{"v-expired": false, "v-used": false, "v-at-cut": true, "v-used-in-grace": true, "v-live": true} {
		_, err := users.VerificationTokenByHash(ctx, hash)
		if kept {
			require.NoError(t, err, hash)
		} else {
			require.Equal(t, core.CodeNotFound, core.CodeOf(err), hash)
		}
	}
	for id, kept := range map[string]bool{chExpired: false, chAtCut: true, chConsumed: true} {
		_, err := mfaStore.ChallengeByID(ctx, id)
		require.Equal(t, kept, err == nil, "challenge %s: %v", id, err)
	}
	for id, kept := range map[string]bool{cerExpired: false, cerAtCut: true, cerUsed: true} {
		require.Equal(t, kept, present(t, db, "webauthn_ceremonies WHERE id = ?", id), id)
	}
	// A deleted dedupe record no longer dedupes; the kept ones still do.
	for id, kept := range map[string]bool{"in-old": false, "in-cut": true, "in-new": true} {
		fresh, err := db.InsertInbox(ctx, "consumer", id, cut)
		require.NoError(t, err)
		require.Equal(t, !kept, fresh, id)
	}
}

// testRetentionBatches: every kind deletes at most limit rows per call, and
// repeated calls finish the job.
func testRetentionBatches(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	st := persistence.NewRetentionStore(db)
	u, _ := sessionFixture(t, db, "batch")
	old := retentionCut.Add(-time.Hour)
	var zero time.Time
	tokensOf := endedSession(t, db, u, old, zero)
	due := map[retention.Kind]func(i int){
		retention.KindRefreshTokens: func(i int) {
			require.NoError(t, persistence.NewSessionStore(db).InsertRefreshToken(ctx, fmt.Sprintf("b-%d", i), tokensOf.ID, userT0))
		},
		retention.KindSessions: func(int) { endedSession(t, db, u, old, zero) },
		retention.KindVerificationTokens: func(i int) {
			require.NoError(t, persistence.NewUserStore(db).InsertVerificationToken(ctx, user.VerificationToken{
				ID: core.NewID(), UserID: u.ID, TokenHash: fmt.Sprintf("vb-%d", i), ExpiresAt: old, CreatedAt: userT0}))
		},
		retention.KindMFAChallenges: func(int) {
			require.NoError(t, persistence.NewMFAStore(db).InsertChallenge(ctx, mfa.Challenge{
				ID: core.NewID(), UserID: u.ID, TenantID: u.TenantID, CreatedAt: userT0, ExpiresAt: old}))
		},
		retention.KindWebAuthnCeremonies: func(int) {
			require.NoError(t, persistence.NewPasskeyStore(db).InsertPasskeyCeremony(ctx, passkey.Ceremony{
				ID: core.NewID(), UserID: u.ID, State: []byte(`{}`), CreatedAt: userT0, ExpiresAt: old}))
		},
		retention.KindInbox: func(i int) {
			_, err := db.InsertInbox(ctx, "batch", fmt.Sprintf("e-%d", i), old)
			require.NoError(t, err)
		},
	}
	const rows, limit = 10, 4
	for _, r := range retention.Rules() {
		t.Run(string(r.Kind), func(t *testing.T) {
			for i := range rows {
				due[r.Kind](i)
			}
			var got []int
			for {
				n, err := st.DeleteExpired(ctx, r.Kind, retentionCut, limit)
				require.NoError(t, err)
				got = append(got, n)
				if n < limit {
					break
				}
			}
			want := []int{4, 4, 2}
			if r.Kind == retention.KindSessions {
				want = []int{4, 4, 3} // and the session whose tokens went before
			}
			require.Equal(t, want, got)
		})
	}
}

// testRetentionReplay: inside the grace period a used refresh token still
// names its session, so a second presentation is a replay, not an unknown
// token; once the session is past it, the token is unknown and the
// session counts as revoked (fail closed).
func testRetentionReplay(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewSessionStore(db)
	st := persistence.NewRetentionStore(db)
	u, sess := sessionFixture(t, db, "replay")
	require.NoError(t, s.InsertSession(ctx, sess))
	require.NoError(t, s.InsertRefreshToken(ctx, "first", sess.ID, userT0))
	_, consumed, err := s.ConsumeRefreshToken(ctx, "first", userT0.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, consumed)
	require.NoError(t, s.InsertRefreshToken(ctx, "second", sess.ID, userT0.Add(time.Hour)))

	// A day after the session expired, with a week's grace.
	now := sess.ExpiresAt.Add(24 * time.Hour)
	sweepAll(t, st, now.Add(-retention.SessionGrace), 100)
	sid, consumed, err := s.ConsumeRefreshToken(ctx, "first", now)
	require.NoError(t, err)
	require.False(t, consumed, "a replay")
	require.Equal(t, sess.ID, sid)
	changed, err := s.RevokeSession(ctx, sid, auth.ReasonReplay, now)
	require.NoError(t, err)
	require.True(t, changed)
	got, err := s.SessionByID(ctx, sid)
	require.NoError(t, err)
	require.Equal(t, u.ID, got.UserID)

	// The revocation after expiry does not extend the session's life.
	later := sess.ExpiresAt.Add(retention.SessionGrace + time.Second)
	swept := sweepAll(t, st, later.Add(-retention.SessionGrace), 100)
	require.Equal(t, 2, swept[retention.KindRefreshTokens])
	require.Equal(t, 1, swept[retention.KindSessions])
	_, _, err = s.ConsumeRefreshToken(ctx, "first", later)
	require.Equal(t, core.CodeNotFound, core.CodeOf(err), "now an unknown token")
	revoked, err := s.SessionRevoked(ctx, sid)
	require.NoError(t, err)
	require.True(t, revoked, "a deleted session counts as revoked")
}

// testRetentionConcurrent: sweepers running at once (several instances)
// delete every due row exactly once, without errors — on Postgres they
// skip each other's locked rows, and a session is never deleted while a
// token of it remains.
func testRetentionConcurrent(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	st := persistence.NewRetentionStore(db)
	u, _ := sessionFixture(t, db, "conc")
	old := retentionCut.Add(-time.Hour)
	var zero time.Time
	const sessions, tokens, inbox = 12, 5, 60
	for i := range sessions {
		hashes := make([]string, tokens)
		for j := range hashes {
			hashes[j] = fmt.Sprintf("c-%d-%d", i, j)
		}
		endedSession(t, db, u, old, zero, hashes...)
	}
	for i := range inbox {
		_, err := db.InsertInbox(ctx, "conc", fmt.Sprintf("e-%d", i), old)
		require.NoError(t, err)
	}

	const workers, limit = 4, 7
	var (
		mu    sync.Mutex
		total = map[retention.Kind]int{}
		errs  = make(chan error, workers)
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for _, r := range retention.Rules() {
				for {
					n, err := st.DeleteExpired(ctx, r.Kind, retentionCut, limit)
					if err != nil {
						errs <- fmt.Errorf("%s: %w", r.Kind, err)
						return
					}
					mu.Lock()
					total[r.Kind] += n
					mu.Unlock()
					if n < limit {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// A sweeper that met only locked rows stops early; the next sweep
	// finishes. Together every row goes exactly once.
	for kind, n := range sweepAll(t, st, retentionCut, limit) {
		total[kind] += n
	}
	require.Equal(t, sessions*tokens, total[retention.KindRefreshTokens])
	require.Equal(t, sessions, total[retention.KindSessions])
	require.Equal(t, inbox, total[retention.KindInbox])
	require.False(t, present(t, db, "sessions WHERE user_id = ?", u.ID))
}

func testRetentionArguments(t *testing.T, db *persistence.DB) {
	st := persistence.NewRetentionStore(db)
	_, err := st.DeleteExpired(context.Background(), retention.Kind("events"), retentionCut, 10)
	require.Equal(t, core.KindInternal, core.KindOf(err), "the audit trail is no kind")
	_, err = st.DeleteExpired(context.Background(), retention.KindSessions, retentionCut, 0)
	require.Equal(t, core.KindInternal, core.KindOf(err))
}
