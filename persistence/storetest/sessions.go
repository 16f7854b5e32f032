package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testSessions(t *testing.T, open dbtest.Opener) {
	t.Run("session round trip", func(t *testing.T) { testSessionRoundTrip(t, open(t)) })
	t.Run("refresh tokens", func(t *testing.T) { testRefreshTokens(t, open(t)) })
	t.Run("concurrent consume", func(t *testing.T) { testConcurrentConsume(t, open(t)) })
	t.Run("revocation", func(t *testing.T) { testSessionRevocation(t, open(t)) })
	t.Run("users by email", func(t *testing.T) { testUsersByEmail(t, open(t)) })
}

// sessionFixture stores a user of a new tenant and returns it with a
// session of it (not stored).
func sessionFixture(t *testing.T, db *persistence.DB, slug string) (user.User, auth.Session) {
	t.Helper()
	tenant := userTestTenant(t, db, slug, false)
	u := userFixture(tenant, slug+"@example.org", user.StatusActive)
	require.NoError(t, persistence.NewUserStore(db).InsertUser(context.Background(), u))
	return u, newSession(u)
}

func newSession(u user.User) auth.Session {
	return auth.Session{
		ID: core.NewID(), UserID: u.ID, TenantID: u.TenantID, AMR: []string{"pwd"},
		IP: "203.0.113.9", UserAgent: "okhttp/4.12", CreatedAt: userT0, ExpiresAt: userT0.Add(8 * time.Hour),
		LastUsedAt: userT0,
	}
}

func testSessionRoundTrip(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewSessionStore(db)
	u, sess := sessionFixture(t, db, "rt")
	sess.ContextNodeID = core.NewID()
	require.NoError(t, s.InsertSession(ctx, sess))
	got, err := s.SessionByID(ctx, sess.ID)
	require.NoError(t, err)
	require.Equal(t, sess, got)

	require.Equal(t, core.KindConflict, core.KindOf(s.InsertSession(ctx, sess)), "duplicate id")
	orphan := newSession(u)
	orphan.UserID = core.NewID()
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertSession(ctx, orphan)), "unknown user")
	for _, id := range []string{core.NewID(), "nope"} {
		_, err = s.SessionByID(ctx, id)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), id)
	}

	later := userT0.Add(time.Hour)
	require.NoError(t, s.TouchSession(ctx, sess.ID, later))
	got, err = s.SessionByID(ctx, sess.ID)
	require.NoError(t, err)
	require.Equal(t, later, got.LastUsedAt)
}

func testRefreshTokens(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewSessionStore(db)
	_, sess := sessionFixture(t, db, "rf")
	require.NoError(t, s.InsertSession(ctx, sess))

	require.NoError(t, s.InsertRefreshToken(ctx, "h1", sess.ID, userT0))
	require.Equal(t, core.KindConflict, core.KindOf(s.InsertRefreshToken(ctx, "h1", sess.ID, userT0)))
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertRefreshToken(ctx, "h2", core.NewID(), userT0)), "unknown session")

	sid, err := s.RefreshTokenSession(ctx, "h1")
	require.NoError(t, err)
	require.Equal(t, sess.ID, sid)
	_, err = s.RefreshTokenSession(ctx, "nope")
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	sid, consumed, err := s.ConsumeRefreshToken(ctx, "h1", userT0.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, consumed)
	require.Equal(t, sess.ID, sid)
	sid, consumed, err = s.ConsumeRefreshToken(ctx, "h1", userT0.Add(2*time.Minute))
	require.NoError(t, err)
	require.False(t, consumed, "second use is a replay")
	require.Equal(t, sess.ID, sid, "a replay still names its session")
	_, _, err = s.ConsumeRefreshToken(ctx, "unknown", userT0)
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	// A consumption inside a transaction that rolls back is undone.
	require.NoError(t, s.InsertRefreshToken(ctx, "h3", sess.ID, userT0))
	boom := fmt.Errorf("boom")
	err = s.InTx(ctx, func(ctx context.Context) error {
		_, consumed, err := s.ConsumeRefreshToken(ctx, "h3", userT0)
		require.NoError(t, err)
		require.True(t, consumed)
		return boom
	})
	require.ErrorIs(t, err, boom)
	_, consumed, err = s.ConsumeRefreshToken(ctx, "h3", userT0)
	require.NoError(t, err)
	require.True(t, consumed)
}

// testConcurrentConsume: of many transactions consuming one token at once,
// exactly one wins.
func testConcurrentConsume(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewSessionStore(db)
	_, sess := sessionFixture(t, db, "cc")
	require.NoError(t, s.InsertSession(ctx, sess))
	require.NoError(t, s.InsertRefreshToken(ctx, "race", sess.ID, userT0))

	const n = 30
	var wins, replays atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			err := s.InTx(ctx, func(ctx context.Context) error {
				sid, consumed, err := s.ConsumeRefreshToken(ctx, "race", userT0)
				if err != nil {
					return err
				}
				if sid != sess.ID {
					return fmt.Errorf("wrong session %s", sid)
				}
				if consumed {
					wins.Add(1)
				} else {
					replays.Add(1)
				}
				return nil
			})
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int32(1), wins.Load())
	require.Equal(t, int32(n-1), replays.Load())
}

func testSessionRevocation(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewSessionStore(db)
	u, a := sessionFixture(t, db, "rv")
	b, c := newSession(u), newSession(u)
	other, d := sessionFixture(t, db, "rv-other")
	for _, sess := range []auth.Session{a, b, c, d} {
		require.NoError(t, s.InsertSession(ctx, sess))
	}

	revoked, err := s.SessionRevoked(ctx, a.ID)
	require.NoError(t, err)
	require.False(t, revoked)
	for _, id := range []string{core.NewID(), "nope"} {
		revoked, err = s.SessionRevoked(ctx, id)
		require.NoError(t, err)
		require.True(t, revoked, "unknown sessions fail closed: %s", id)
	}

	t1 := userT0.Add(time.Hour)
	changed, err := s.RevokeSession(ctx, a.ID, auth.ReasonLogout, t1)
	require.NoError(t, err)
	require.True(t, changed)
	changed, err = s.RevokeSession(ctx, a.ID, auth.ReasonReplay, t1.Add(time.Minute))
	require.NoError(t, err)
	require.False(t, changed, "already revoked")
	got, err := s.SessionByID(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, t1, *got.RevokedAt)
	require.Equal(t, auth.ReasonLogout, got.RevokeReason, "the first reason stays")
	revoked, err = s.SessionRevoked(ctx, a.ID)
	require.NoError(t, err)
	require.True(t, revoked)

	t2 := t1.Add(time.Hour)
	all, err := s.RevokeUserSessions(ctx, u.ID, auth.ReasonLogoutAll, t2)
	require.NoError(t, err)
	require.ElementsMatch(t, []auth.RevokedSession{
		{ID: b.ID, UserID: u.ID, TenantID: u.TenantID}, {ID: c.ID, UserID: u.ID, TenantID: u.TenantID},
	}, all, "only the sessions still open")
	all, err = s.RevokeUserSessions(ctx, u.ID, auth.ReasonLogoutAll, t2)
	require.NoError(t, err)
	require.Empty(t, all)
	revoked, err = s.SessionRevoked(ctx, d.ID)
	require.NoError(t, err)
	require.False(t, revoked, "another user's session is untouched")

	ids, err := s.RevokedSessionsSince(ctx, t1)
	require.NoError(t, err)
	require.Equal(t, a.ID, ids[0], "oldest revocation first")
	require.ElementsMatch(t, []string{a.ID, b.ID, c.ID}, ids)
	ids, err = s.RevokedSessionsSince(ctx, t1.Add(time.Second))
	require.NoError(t, err)
	require.ElementsMatch(t, []string{b.ID, c.ID}, ids)

	require.NoError(t, s.ForgetSessionClients(ctx, u.ID))
	got, err = s.SessionByID(ctx, b.ID)
	require.NoError(t, err)
	require.Empty(t, got.IP)
	require.Empty(t, got.UserAgent)
	got, err = s.SessionByID(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, "203.0.113.9", got.IP)
	require.Equal(t, other.ID, got.UserID)
}

func testUsersByEmail(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewSessionStore(db)
	us := persistence.NewUserStore(db)
	ta, tb := userTestTenant(t, db, "ua", false), userTestTenant(t, db, "ub", false)
	a := userFixture(ta, "same@example.org", user.StatusActive)
	a.PasswordHash = "$argon2id$old"
	b := userFixture(tb, "same@example.org", user.StatusSuspended)
	c := userFixture(ta, "solo@example.org", user.StatusActive)
	for _, u := range []user.User{a, b, c} {
		require.NoError(t, us.InsertUser(ctx, u))
	}

	got, err := s.UsersByEmail(ctx, "same@example.org", "")
	require.NoError(t, err)
	require.Len(t, got, 2, "ambiguous without a tenant")
	got, err = s.UsersByEmail(ctx, "same@example.org", tb)
	require.NoError(t, err)
	require.Equal(t, []user.User{b}, got)
	got, err = s.UsersByEmail(ctx, "same@example.org", ta)
	require.NoError(t, err)
	require.Equal(t, []user.User{a}, got, "the hash comes along")
	for _, q := range [][2]string{{"", ""}, {"nobody@example.org", ""}, {"solo@example.org", tb}, {"solo@example.org", "nope"}} {
		got, err = s.UsersByEmail(ctx, q[0], q[1])
		require.NoError(t, err)
		require.Empty(t, got, q)
	}

	ok, err := s.UpdatePasswordHash(ctx, a.ID, "$argon2id$stale", "$argon2id$new")
	require.NoError(t, err)
	require.False(t, ok, "changed meanwhile: not overwritten")
	ok, err = s.UpdatePasswordHash(ctx, a.ID, a.PasswordHash, "$argon2id$new")
	require.NoError(t, err)
	require.True(t, ok)
	u, err := s.UserByID(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, "$argon2id$new", u.PasswordHash)
	require.Equal(t, a.UpdatedAt, u.UpdatedAt)
}
