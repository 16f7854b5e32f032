package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/cache"
	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

func TestLogout(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta := e.tenant(t, "a")
		u := e.user(t, ta, "ada@example.org", user.StatusActive)
		resp := e.login(t, "ada@example.org", "192.0.2.1")
		other := e.login(t, "ada@example.org", "192.0.2.1") // a second device
		ctx := e.as(t, resp.AccessToken)
		sid := sessionOf(t, resp.AccessToken)

		require.NoError(t, e.svc.Logout(ctx, nil))

		revoked, err := auth.TokenRevocation{Set: e.set}.IsRevoked(context.Background(), claims(t, resp.AccessToken)["jti"].(string))
		require.NoError(t, err)
		require.True(t, revoked, "the access token is revoked")
		_, err = e.verifier.Verify(context.Background(), resp.AccessToken)
		requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
		_, err = e.svc.Refresh(ipCtx("192.0.2.1"), resp.RefreshToken)
		requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
		sess, err := e.sessions.SessionByID(context.Background(), sid)
		require.NoError(t, err)
		require.Equal(t, testT0, *sess.RevokedAt)
		require.Equal(t, auth.ReasonLogout, sess.RevokeReason)
		evs := validEvents(t, e.db, auth.EventSessionRevoked)
		require.Len(t, evs, 1)
		require.Equal(t, map[string]any{"sessionId": sid, "userId": u.ID, "tenantId": ta, "reason": "logout"}, evs[0].Data)

		// The other session lives on.
		_, err = e.verifier.Verify(context.Background(), other.AccessToken)
		require.NoError(t, err)
		_, err = e.svc.Refresh(ipCtx("192.0.2.1"), other.RefreshToken)
		require.NoError(t, err)

		// Logging out again (a request racing the first) changes nothing.
		require.NoError(t, e.svc.Logout(ctx, nil))
		require.Equal(t, 1, countEvents(t, e.db, auth.EventSessionRevoked))
	})
}

func TestLogoutRefreshToken(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta := e.tenant(t, "a")
		e.user(t, ta, "ada@example.org", user.StatusActive)
		mine := e.login(t, "ada@example.org", "192.0.2.1")
		theirs := e.login(t, "ada@example.org", "192.0.2.1")
		ctx := e.as(t, mine.AccessToken)

		for _, rt := range []string{theirs.RefreshToken, core.RandomToken(32), "garbage"} {
			err := e.svc.Logout(ctx, &rt)
			ce := requireCode(t, err, core.KindInvalid, core.CodeValidation)
			require.Contains(t, ce.Fields, "refreshToken")
		}
		require.Zero(t, countEvents(t, e.db, auth.EventSessionRevoked), "nothing revoked")

		// A rotated (used) token of the same session still identifies it.
		next, err := e.svc.Refresh(ipCtx("192.0.2.1"), mine.RefreshToken)
		require.NoError(t, err)
		empty := ""
		require.NoError(t, e.svc.Logout(e.as(t, next.AccessToken), &empty), "empty means absent")
		require.NoError(t, e.svc.Logout(ctx, &mine.RefreshToken))
		_, err = e.svc.Refresh(ipCtx("192.0.2.1"), next.RefreshToken)
		requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
	})
}

func TestLogoutCallers(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	err := e.svc.Logout(context.Background(), nil)
	requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
	requireCode(t, e.svc.LogoutAll(context.Background()), core.KindUnauthenticated, core.CodeUnauthenticated)

	sa := &core.Principal{Type: core.PrincipalServiceAccount, ID: core.NewID(), TenantID: core.NewID(), TokenID: core.NewID()}
	ctx := core.WithPrincipal(context.Background(), sa)
	requireCode(t, e.svc.Logout(ctx, nil), core.KindForbidden, core.CodeForbidden)
	requireCode(t, e.svc.LogoutAll(ctx), core.KindForbidden, core.CodeForbidden)

	noSession := &core.Principal{Type: core.PrincipalUser, ID: core.NewID(), TenantID: core.NewID(), TokenID: core.NewID()}
	requireCode(t, e.svc.Logout(core.WithPrincipal(context.Background(), noSession), nil), core.KindForbidden, core.CodeForbidden)
}

func TestLogoutAll(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta := e.tenant(t, "a")
		u := e.user(t, ta, "ada@example.org", user.StatusActive)
		e.user(t, ta, "bob@example.org", user.StatusActive)
		mine := []auth.TokenResponse{
			e.login(t, "ada@example.org", "192.0.2.1"),
			e.login(t, "ada@example.org", "192.0.2.2"),
			e.login(t, "ada@example.org", "192.0.2.3"),
		}
		bob := e.login(t, "bob@example.org", "192.0.2.1")

		require.NoError(t, e.svc.LogoutAll(e.as(t, mine[1].AccessToken)))

		sids := map[string]bool{}
		for _, r := range mine {
			sids[sessionOf(t, r.AccessToken)] = true
			_, err := e.verifier.Verify(context.Background(), r.AccessToken)
			requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
			_, err = e.svc.Refresh(ipCtx("192.0.2.1"), r.RefreshToken)
			requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
		}
		evs := validEvents(t, e.db, auth.EventSessionRevoked)
		require.Len(t, evs, 3)
		for _, ev := range evs {
			require.True(t, sids[ev.Subject])
			require.Equal(t, "logout_all", ev.Data["reason"])
		}
		require.Equal(t, []string{u.ID}, e.devices.users, "devices revoked too")

		_, err := e.verifier.Verify(context.Background(), bob.AccessToken)
		require.NoError(t, err, "another user's session is untouched")
	})
}

// TestSuspendAndEraseRevokeSessions wires the real user service with
// auth.SessionRevoker: suspension and erasure end the sessions and reject
// their access tokens.
func TestSuspendAndEraseRevokeSessions(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta := e.tenant(t, "a")
		admin := e.user(t, ta, "admin@example.org", user.StatusActive)
		require.NoError(t, e.dir.UpsertMembership(context.Background(),
			core.Membership{UserID: admin.ID, TenantID: ta, Roles: []string{core.RoleTenantAdmin}}, testT0))
		users := user.NewService(e.users, core.NewAuthorizer(e.dir), e.hasher.inner, nil,
			auth.SessionRevoker{Service: e.svc}, e.clock,
			user.Config{PublicURL: "https://id.example.org", TokenKey: []byte("0123456789abcdef0123456789abcdef")})
		adminCtx := e.as(t, e.login(t, "admin@example.org", "192.0.2.1").AccessToken)

		nurse := e.user(t, ta, "nurse@example.org", user.StatusActive)
		a, b := e.login(t, "nurse@example.org", "192.0.2.1"), e.login(t, "nurse@example.org", "192.0.2.2")
		_, err := users.Suspend(adminCtx, nurse.ID)
		require.NoError(t, err)
		for _, r := range []auth.TokenResponse{a, b} {
			_, err = e.verifier.Verify(context.Background(), r.AccessToken)
			requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
			_, err = e.svc.Refresh(ipCtx("192.0.2.1"), r.RefreshToken)
			requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
			sess, err := e.sessions.SessionByID(context.Background(), sessionOf(t, r.AccessToken))
			require.NoError(t, err)
			require.Equal(t, auth.ReasonSuspended, sess.RevokeReason)
		}

		doc := e.user(t, ta, "doc@example.org", user.StatusActive)
		c := e.login(t, "doc@example.org", "192.0.2.3")
		_, err = users.Erase(adminCtx, doc.ID)
		require.NoError(t, err)
		_, err = e.verifier.Verify(context.Background(), c.AccessToken)
		requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
		sess, err := e.sessions.SessionByID(context.Background(), sessionOf(t, c.AccessToken))
		require.NoError(t, err)
		require.Equal(t, auth.ReasonErased, sess.RevokeReason)
		require.Empty(t, sess.IP, "erasure forgets the client address")

		reasons := map[string]int{}
		for _, ev := range validEvents(t, e.db, auth.EventSessionRevoked) {
			reasons[ev.Data["reason"].(string)]++
		}
		require.Equal(t, map[string]int{"suspended": 2, "erased": 1}, reasons)
		require.Equal(t, []string{nurse.ID, doc.ID}, e.devices.users, "suspension and erasure revoke the user's devices")

		_, err = e.verifier.Verify(context.Background(), b.AccessToken)
		require.Error(t, err)
		require.Error(t, auth.SessionRevoker{Service: e.svc}.RevokeAllForUser(context.Background(), nurse.ID, "bored"))
	})
}

// TestRevocationSetDown: a revocation whose set write fails still commits —
// the database is the record and answers for the set while it is down.
func TestRevocationSetDown(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	ta := e.tenant(t, "a")
	e.user(t, ta, "ada@example.org", user.StatusActive)
	loggedOut := e.login(t, "ada@example.org", "192.0.2.1")
	replayed := e.login(t, "ada@example.org", "192.0.2.1")
	ctx := e.as(t, loggedOut.AccessToken)

	e.set.broken.Store(true)
	require.NoError(t, e.svc.Logout(ctx, nil))
	next, err := e.svc.Refresh(ipCtx("192.0.2.1"), replayed.RefreshToken)
	require.NoError(t, err)
	_, err = e.svc.Refresh(ipCtx("192.0.2.1"), replayed.RefreshToken)
	requireCode(t, err, core.KindUnauthenticated, core.CodeRefreshReplay)
	require.Equal(t, 2, countEvents(t, e.db, auth.EventSessionRevoked))

	check := auth.TokenRevocation{Set: e.set, Fallback: e.sessions.SessionRevoked}
	for _, at := range []string{loggedOut.AccessToken, next.AccessToken} {
		revoked, err := e.sessions.SessionRevoked(context.Background(), sessionOf(t, at))
		require.NoError(t, err)
		require.True(t, revoked, "the revocation committed")
		revoked, err = check.IsRevoked(context.Background(), claims(t, at)["jti"].(string))
		require.NoError(t, err)
		require.True(t, revoked, "the fallback answers while the set is down")
	}
	_, err = auth.TokenRevocation{Set: e.set}.IsRevoked(context.Background(), core.NewID()+".x")
	require.True(t, errors.Is(err, errSetDown), "without a fallback the failure shows")
}

func TestTokenRevocation(t *testing.T) {
	clock := core.NewFixedClock(testT0)
	set := cache.NewLocalRevocations(clock)
	sid := core.NewID()
	require.NoError(t, set.Revoke(context.Background(), []string{sid}, time.Minute))
	check := auth.TokenRevocation{Set: set}
	for _, tc := range []struct {
		jti     string
		revoked bool
	}{
		{sid + ".abc", true},
		{sid + ".abc.def", true},
		{sid, false}, // no '.': not session-bound
		{core.NewID() + ".abc", false},
		{".abc", false},
	} {
		got, err := check.IsRevoked(context.Background(), tc.jti)
		require.NoError(t, err)
		require.Equal(t, tc.revoked, got, tc.jti)
	}
}

func TestWarmRevocations(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta := e.tenant(t, "a")
		e.user(t, ta, "ada@example.org", user.StatusActive)
		old := e.login(t, "ada@example.org", "192.0.2.1")
		require.NoError(t, e.svc.Logout(e.as(t, old.AccessToken), nil))
		e.clock.Advance(20 * time.Minute) // beyond access-token TTL + leeway
		recent := e.login(t, "ada@example.org", "192.0.2.1")
		require.NoError(t, e.svc.Logout(e.as(t, recent.AccessToken), nil))
		live := e.login(t, "ada@example.org", "192.0.2.1")

		// A restarted instance: empty in-process set.
		fresh := cache.NewLocalRevocations(e.clock)
		deps := e.deps
		deps.Revocations = fresh
		require.NoError(t, auth.NewService(deps, e.cfg).WarmRevocations(context.Background()))
		for _, tc := range []struct {
			resp    auth.TokenResponse
			revoked bool
		}{{recent, true}, {old, false}, {live, false}} {
			got, err := fresh.IsRevoked(context.Background(), sessionOf(t, tc.resp.AccessToken))
			require.NoError(t, err)
			require.Equal(t, tc.revoked, got)
		}
	})
}
