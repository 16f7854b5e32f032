package auth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/telemetry"
	"github.com/ghasi-ehealth/identity-service/telemetry/telemetrytest"
)

func TestRefreshRotation(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta, tb := e.tenant(t, "a"), e.tenant(t, "b")
		u := e.user(t, ta, "ada@example.org", user.StatusActive)
		first := e.login(t, "ada@example.org", "192.0.2.1")
		sid := sessionOf(t, first.AccessToken)

		e.clock.Advance(time.Hour)
		e.member(t, u.ID, tb, "") // tids are recomputed on refresh
		second, err := e.svc.Refresh(ipCtx("192.0.2.1"), first.RefreshToken)
		require.NoError(t, err)
		require.NotEqual(t, first.RefreshToken, second.RefreshToken)
		require.NotEqual(t, first.AccessToken, second.AccessToken)
		require.Equal(t, sid, sessionOf(t, second.AccessToken), "same session")
		require.Equal(t, 15*time.Minute, second.ExpiresIn)
		require.Equal(t, 7*time.Hour, second.RefreshExpiresIn, "counts down to the session's end")
		require.Equal(t, u.ID, second.User.ID)
		require.Empty(t, second.User.PasswordHash)
		c := claims(t, second.AccessToken)
		require.Equal(t, []any{ta, tb}, c["tids"])
		require.Equal(t, []any{"pwd"}, c["amr"])
		require.NotEqual(t, claims(t, first.AccessToken)["jti"], c["jti"])
		_, err = e.verifier.Verify(context.Background(), second.AccessToken)
		require.NoError(t, err)
		sess, err := e.sessions.SessionByID(context.Background(), sid)
		require.NoError(t, err)
		require.Equal(t, testT0.Add(time.Hour), sess.LastUsedAt)

		// Near the session's end the access token ends with it.
		e.clock.Advance(6*time.Hour + 50*time.Minute)
		third, err := e.svc.Refresh(ipCtx("192.0.2.1"), second.RefreshToken)
		require.NoError(t, err)
		require.Equal(t, 10*time.Minute, third.ExpiresIn)
		require.Equal(t, 10*time.Minute, third.RefreshExpiresIn)
		require.Equal(t, float64(testT0.Add(8*time.Hour).Unix()), claims(t, third.AccessToken)["exp"])

		e.clock.Advance(10 * time.Minute)
		_, err = e.svc.Refresh(ipCtx("192.0.2.1"), third.RefreshToken)
		requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
		require.ErrorIs(t, err, auth.ErrSessionExpired)
	})
}

func TestRefreshUnknownToken(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	for _, raw := range []string{"", "short", core.RandomToken(32), core.RandomToken(32)[:42] + "!", core.RandomToken(64)} {
		_, err := e.svc.Refresh(ipCtx("192.0.2.1"), raw)
		requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
	}
	require.Zero(t, countEvents(t, e.db, auth.EventSecurityIncident))
}

func TestRefreshReplay(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta := e.tenant(t, "a")
		u := e.user(t, ta, "ada@example.org", user.StatusActive)
		first := e.login(t, "ada@example.org", "192.0.2.1")
		sid := sessionOf(t, first.AccessToken)
		second, err := e.svc.Refresh(ipCtx("192.0.2.1"), first.RefreshToken)
		require.NoError(t, err)

		_, err = e.svc.Refresh(ipCtx("2001:db8::7"), first.RefreshToken)
		requireCode(t, err, core.KindUnauthenticated, core.CodeRefreshReplay)

		sess, err := e.sessions.SessionByID(context.Background(), sid)
		require.NoError(t, err)
		require.NotNil(t, sess.RevokedAt, "the revocation committed although the call failed")
		require.Equal(t, auth.ReasonReplay, sess.RevokeReason)
		revoked := validEvents(t, e.db, auth.EventSessionRevoked)
		require.Len(t, revoked, 1)
		require.Equal(t, sid, revoked[0].Subject)
		require.Equal(t, map[string]any{"sessionId": sid, "userId": u.ID, "tenantId": ta, "reason": "replay"}, revoked[0].Data)
		incidents := validEvents(t, e.db, auth.EventSecurityIncident)
		require.Len(t, incidents, 1)
		require.Equal(t, u.ID, incidents[0].Subject)
		require.Equal(t, map[string]any{"userId": u.ID, "tenantId": ta, "kind": "refresh_replay", "sessionId": sid,
			"ip": "2001:db8::7"}, incidents[0].Data)

		for _, at := range []string{first.AccessToken, second.AccessToken} {
			_, err = e.verifier.Verify(context.Background(), at)
			requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
		}
		_, err = e.svc.Refresh(ipCtx("192.0.2.1"), second.RefreshToken)
		requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
		require.ErrorIs(t, err, auth.ErrSessionRevoked)

		// A further replay of a used token is still a replay (and an
		// incident), but the session is revoked only once.
		_, err = e.svc.Refresh(ipCtx("192.0.2.1"), first.RefreshToken)
		requireCode(t, err, core.KindUnauthenticated, core.CodeRefreshReplay)
		require.Equal(t, 1, countEvents(t, e.db, auth.EventSessionRevoked))
		require.Equal(t, 2, countEvents(t, e.db, auth.EventSecurityIncident))
	})
}

// TestRefreshReplayMetrics: every committed refresh_replay incident is
// counted in identity.security_incident.total, the session revocation once.
func TestRefreshReplayMetrics(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	reader := sdkmetric.NewManualReader()
	m, err := telemetry.NewMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	require.NoError(t, err)
	e.withMetrics(m)
	ta := e.tenant(t, "a")
	e.user(t, ta, "ada@example.org", user.StatusActive)
	first := e.login(t, "ada@example.org", "192.0.2.1")
	_, err = e.svc.Refresh(ipCtx("192.0.2.1"), first.RefreshToken)
	require.NoError(t, err)
	require.Contains(t, telemetry.SecurityIncidentKinds, auth.IncidentRefreshReplay, "pre-initialised at 0")
	require.Zero(t, telemetrytest.CounterByAttr(t, reader, telemetry.MetricSecurityIncident, telemetry.AttrKind)[auth.IncidentRefreshReplay],
		"a rotation is no incident")

	for range 2 {
		_, err = e.svc.Refresh(ipCtx("192.0.2.1"), first.RefreshToken)
		requireCode(t, err, core.KindUnauthenticated, core.CodeRefreshReplay)
	}
	require.Equal(t, int64(2), telemetrytest.CounterByAttr(t, reader, telemetry.MetricSecurityIncident, telemetry.AttrKind)[auth.IncidentRefreshReplay])
	require.Equal(t, map[string]int64{auth.ReasonReplay: 1},
		telemetrytest.CounterByAttr(t, reader, telemetry.MetricSessionRevoke, telemetry.AttrReason))
	require.Equal(t, 2, countEvents(t, e.db, auth.EventSecurityIncident), "one count per event")
}

// TestRefreshConcurrent: of 50 simultaneous refreshes with one token exactly
// one succeeds, the rest are replays, and the session ends revoked.
func TestRefreshConcurrent(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta := e.tenant(t, "a")
		e.user(t, ta, "ada@example.org", user.StatusActive)
		first := e.login(t, "ada@example.org", "192.0.2.1")

		const n = 50
		results := make(chan error, n)
		wins := make(chan auth.TokenResponse, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				<-start
				resp, err := e.svc.Refresh(ipCtx("192.0.2.1"), first.RefreshToken)
				if err == nil {
					wins <- resp
				}
				results <- err
			})
		}
		close(start)
		wg.Wait()
		close(results)
		close(wins)
		ok, replays := 0, 0
		for err := range results {
			switch core.CodeOf(err) {
			case "":
				ok++
			case core.CodeRefreshReplay:
				replays++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		require.Equal(t, 1, ok)
		require.Equal(t, n-1, replays)

		sess, err := e.sessions.SessionByID(context.Background(), sessionOf(t, first.AccessToken))
		require.NoError(t, err)
		require.NotNil(t, sess.RevokedAt)
		require.Equal(t, auth.ReasonReplay, sess.RevokeReason)
		require.Equal(t, 1, countEvents(t, e.db, auth.EventSessionRevoked))
		require.Equal(t, n-1, countEvents(t, e.db, auth.EventSecurityIncident))
		winner := <-wins
		_, err = e.svc.Refresh(ipCtx("192.0.2.1"), winner.RefreshToken)
		requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
		_, err = e.verifier.Verify(context.Background(), winner.AccessToken)
		requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
	})
}

// TestRefreshInactiveUser: a user suspended (or erased) behind the session's
// back cannot refresh, and the session is revoked.
func TestRefreshInactiveUser(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta := e.tenant(t, "a")
		cases := []struct {
			email  string
			change func(ctx context.Context, id string) error
			reason string
		}{
			{"suspended@example.org", func(ctx context.Context, id string) error {
				_, err := e.users.TransitionUser(ctx, id, user.StatusActive, user.StatusSuspended, testT0)
				return err
			}, auth.ReasonSuspended},
			{"erased@example.org", func(ctx context.Context, id string) error {
				_, err := e.users.EraseUser(ctx, id, testT0)
				return err
			}, auth.ReasonErased},
		}
		for _, tc := range cases {
			u := e.user(t, ta, tc.email, user.StatusActive)
			resp := e.login(t, tc.email, "192.0.2.1")
			require.NoError(t, tc.change(context.Background(), u.ID))
			_, err := e.svc.Refresh(ipCtx("192.0.2.1"), resp.RefreshToken)
			requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
			require.ErrorIs(t, err, auth.ErrUserInactive)
			sess, err := e.sessions.SessionByID(context.Background(), sessionOf(t, resp.AccessToken))
			require.NoError(t, err)
			require.NotNil(t, sess.RevokedAt, tc.email)
			require.Equal(t, tc.reason, sess.RevokeReason)
			_, err = e.verifier.Verify(context.Background(), resp.AccessToken)
			requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
		}
		reasons := map[string]bool{}
		for _, ev := range validEvents(t, e.db, auth.EventSessionRevoked) {
			reasons[ev.Data["reason"].(string)] = true
		}
		require.Equal(t, map[string]bool{"suspended": true, "erased": true}, reasons)
	})
}

// TestRefreshContextNodeLost: a session whose context node is no longer
// covered by the user's memberships cannot refresh.
func TestRefreshContextNodeLost(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	ta := e.tenant(t, "a")
	node := e.node(t, ta, nil)
	u := e.user(t, ta, "ada@example.org", user.StatusActive)
	e.member(t, u.ID, ta, node)
	resp, err := e.svc.Login(ipCtx("192.0.2.1"), auth.LoginInput{Email: "ada@example.org", Password: goodPassword, ContextNodeID: node})
	require.NoError(t, err)
	next, err := e.svc.Refresh(ipCtx("192.0.2.1"), resp.RefreshToken)
	require.NoError(t, err)
	require.Equal(t, node, claims(t, next.AccessToken)["context_node_id"])

	_, err = e.dir.DeleteMembership(context.Background(), u.ID, ta, node)
	require.NoError(t, err)
	_, err = e.svc.Refresh(ipCtx("192.0.2.1"), next.RefreshToken)
	requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
	require.ErrorIs(t, err, auth.ErrContextNode)
}
