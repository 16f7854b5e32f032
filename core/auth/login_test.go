package auth_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/password"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/telemetry"
	"github.com/ghasi-ehealth/identity-service/telemetry/telemetrytest"
)

func TestLoginSuccess(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		home, other := e.tenant(t, "home"), e.tenant(t, "other")
		u := e.user(t, home, "ada@example.org", user.StatusActive)
		e.member(t, u.ID, home, "")
		e.member(t, u.ID, other, "")
		e.member(t, u.ID, other, e.node(t, other, nil)) // same tenant twice: one tids entry

		resp, err := e.svc.Login(ipCtx("203.0.113.7"), auth.LoginInput{Email: "  ADA@Example.org ", Password: goodPassword})
		require.NoError(t, err)
		require.Equal(t, 900*time.Second, resp.ExpiresIn)
		require.Equal(t, 8*time.Hour, resp.RefreshExpiresIn)
		require.Len(t, resp.RefreshToken, 43, "256 random bits, base64url")
		want := u
		want.PasswordHash = ""
		require.Equal(t, want, resp.User, "the user without its hash")

		c := claims(t, resp.AccessToken)
		keys := make([]string, 0, len(c))
		for k := range c {
			keys = append(keys, k)
		}
		require.ElementsMatch(t, []string{"sub", "tid", "tids", "jti", "amr", "exp", "iat", "iss", "aud"}, keys,
			"frozen claim set F01 (no context_node_id without one)")
		require.Equal(t, u.ID, c["sub"])
		require.Equal(t, home, c["tid"])
		require.Equal(t, []any{home, other}, c["tids"])
		require.Equal(t, []any{"pwd"}, c["amr"])
		require.Equal(t, float64(testT0.Unix()), c["iat"])
		require.Equal(t, float64(testT0.Add(15*time.Minute).Unix()), c["exp"])
		require.Equal(t, testIssuer, c["iss"])
		require.Equal(t, testAudience, c["aud"])
		jti := c["jti"].(string)
		require.Regexp(t, regexp.MustCompile(`^[0-9a-f-]{36}\.[A-Za-z0-9_-]+$`), jti)

		sid := sessionOf(t, resp.AccessToken)
		sess, err := e.sessions.SessionByID(context.Background(), sid)
		require.NoError(t, err)
		require.Equal(t, auth.Session{ID: sid, UserID: u.ID, TenantID: home, AMR: []string{"pwd"}, IP: "203.0.113.7",
			CreatedAt: testT0, ExpiresAt: testT0.Add(8 * time.Hour), LastUsedAt: testT0}, sess)

		p, err := e.verifier.Verify(context.Background(), resp.AccessToken)
		require.NoError(t, err, "the token verifies and is not revoked")
		require.Equal(t, jti, p.TokenID)

		created := validEvents(t, e.db, auth.EventSessionCreated)
		require.Len(t, created, 1)
		require.Equal(t, sid, created[0].Subject)
		require.Equal(t, map[string]any{"sessionId": sid, "userId": u.ID, "tenantId": home, "reason": "login"}, created[0].Data)
		logged := validEvents(t, e.db, auth.EventLoggedIn)
		require.Len(t, logged, 1)
		require.Equal(t, u.ID, logged[0].Subject)
		require.Equal(t, map[string]any{"userId": u.ID, "tenantId": home, "sessionId": sid, "amr": []any{"pwd"},
			"ip": "203.0.113.7"}, logged[0].Data)
	})
}

// TestLoginFailuresIdentical: every reason gives the same error, and every
// attempt computes exactly one hash (a dummy one without a single user).
func TestLoginFailuresIdentical(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta, tb := e.tenant(t, "a"), e.tenant(t, "b")
		active := e.user(t, ta, "active@example.org", user.StatusActive)
		e.member(t, active.ID, ta, e.node(t, ta, nil))
		e.user(t, ta, "suspended@example.org", user.StatusSuspended)
		e.user(t, ta, "deactivated@example.org", user.StatusDeactivated)
		e.user(t, ta, "pending@example.org", user.StatusPendingVerification)
		noPw := user.User{ID: core.NewID(), TenantID: ta, Email: "nopw@example.org", Status: user.StatusPendingVerification,
			CreatedAt: testT0, UpdatedAt: testT0}
		require.NoError(t, e.users.InsertUser(context.Background(), noPw))
		e.user(t, ta, "twice@example.org", user.StatusActive)
		e.user(t, tb, "twice@example.org", user.StatusActive)
		foreignNode := e.node(t, tb, nil)

		cases := []struct {
			name  string
			in    auth.LoginInput
			dummy bool
		}{
			{"unknown email", auth.LoginInput{Email: "nobody@example.org", Password: goodPassword}, true},
			{"empty email", auth.LoginInput{Password: goodPassword}, true},
			{"wrong password", auth.LoginInput{Email: "active@example.org", Password: "wrong"}, false},
			{"empty password", auth.LoginInput{Email: "active@example.org"}, false},
			{"suspended", auth.LoginInput{Email: "suspended@example.org", Password: goodPassword}, false},
			{"deactivated", auth.LoginInput{Email: "deactivated@example.org", Password: goodPassword}, false},
			{"pending", auth.LoginInput{Email: "pending@example.org", Password: goodPassword}, false},
			{"no password yet", auth.LoginInput{Email: "nopw@example.org", Password: goodPassword}, true},
			{"ambiguous without tenantId", auth.LoginInput{Email: "twice@example.org", Password: goodPassword}, true},
			{"other tenant", auth.LoginInput{Email: "active@example.org", Password: goodPassword, TenantID: tb}, true},
			{"malformed tenantId", auth.LoginInput{Email: "active@example.org", Password: goodPassword, TenantID: "x"}, true},
			{"node of another tenant", auth.LoginInput{Email: "active@example.org", Password: goodPassword, ContextNodeID: foreignNode}, false},
			{"unknown node", auth.LoginInput{Email: "active@example.org", Password: goodPassword, ContextNodeID: core.NewID()}, false},
			{"malformed node", auth.LoginInput{Email: "active@example.org", Password: goodPassword, ContextNodeID: "root"}, false},
		}
		var first *core.Error
		for i, tc := range cases {
			verifies, dummies := e.hasher.verifies.Load(), e.hasher.dummies.Load()
			_, err := e.svc.Login(ipCtx(fmt.Sprintf("192.0.2.%d", i+1)), tc.in)
			ce := requireCode(t, err, core.KindUnauthenticated, core.CodeInvalidCredentials)
			if first == nil {
				first = ce
			}
			require.Equal(t, first.Msg, ce.Msg, tc.name)
			require.Zero(t, ce.RetryAfter, tc.name)
			require.Empty(t, ce.Fields, tc.name)
			if tc.dummy {
				require.Equal(t, dummies+1, e.hasher.dummies.Load(), "%s: one dummy hash", tc.name)
				require.Equal(t, verifies, e.hasher.verifies.Load(), tc.name)
			} else {
				require.Equal(t, verifies+1, e.hasher.verifies.Load(), "%s: one real hash", tc.name)
				require.Equal(t, dummies, e.hasher.dummies.Load(), tc.name)
			}
		}
		require.Zero(t, countEvents(t, e.db, auth.EventSessionCreated))
	})
}

func TestLoginTenantID(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta, tb := e.tenant(t, "a"), e.tenant(t, "b")
		e.user(t, ta, "twice@example.org", user.StatusActive)
		ub := e.user(t, tb, "twice@example.org", user.StatusActive)
		resp, err := e.svc.Login(ipCtx("192.0.2.1"), auth.LoginInput{Email: "twice@example.org", Password: goodPassword, TenantID: tb})
		require.NoError(t, err)
		require.Equal(t, ub.ID, resp.User.ID)
		require.Equal(t, tb, claims(t, resp.AccessToken)["tid"])
	})
}

func TestLoginContextNode(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta, tb := e.tenant(t, "a"), e.tenant(t, "b")
		root := e.node(t, ta, nil)
		district := e.node(t, ta, &root)
		facility := e.node(t, ta, &district)
		sibling := e.node(t, ta, &root)
		bRoot := e.node(t, tb, nil)
		bChild := e.node(t, tb, &bRoot)

		wide := e.user(t, ta, "wide@example.org", user.StatusActive)
		e.member(t, wide.ID, ta, "") // tenant-wide in A
		scoped := e.user(t, ta, "scoped@example.org", user.StatusActive)
		e.member(t, scoped.ID, ta, district) // district of A only
		e.member(t, scoped.ID, tb, bChild)   // and one node of B

		cases := []struct {
			email, node string
			ok          bool
		}{
			{"wide@example.org", root, true},
			{"wide@example.org", facility, true},
			{"wide@example.org", bRoot, false},
			{"wide@example.org", bChild, false},
			{"scoped@example.org", district, true},
			{"scoped@example.org", facility, true},
			{"scoped@example.org", root, false},
			{"scoped@example.org", sibling, false},
			{"scoped@example.org", bChild, true},
			{"scoped@example.org", bRoot, false},
		}
		for i, tc := range cases {
			resp, err := e.svc.Login(ipCtx(fmt.Sprintf("192.0.2.%d", i+1)),
				auth.LoginInput{Email: tc.email, Password: goodPassword, ContextNodeID: tc.node})
			if !tc.ok {
				requireCode(t, err, core.KindUnauthenticated, core.CodeInvalidCredentials)
				continue
			}
			require.NoError(t, err, "%s at %s", tc.email, tc.node)
			c := claims(t, resp.AccessToken)
			require.Equal(t, tc.node, c["context_node_id"])
			require.Equal(t, ta, c["tid"])
		}
		require.Equal(t, []any{ta, tb}, claims(t, e.login(t, "scoped@example.org", "192.0.2.99").AccessToken)["tids"])
	})
}

func TestLoginRehash(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta := e.tenant(t, "a")
		old := password.Params{Memory: 32, Time: 1, Threads: 1}
		u := e.userWith(t, ta, "old@example.org", user.StatusActive, old)

		e.login(t, "old@example.org", "192.0.2.1")
		require.Equal(t, int32(1), e.hasher.new.Load(), "rehashed once")
		stored, err := e.users.UserByID(context.Background(), u.ID)
		require.NoError(t, err)
		require.NotEqual(t, u.PasswordHash, stored.PasswordHash)
		ok, rehash, err := e.hasher.inner.Verify(context.Background(), goodPassword, stored.PasswordHash)
		require.NoError(t, err)
		require.True(t, ok)
		require.False(t, rehash, "now with the current parameters")

		e.login(t, "old@example.org", "192.0.2.1")
		require.Equal(t, int32(1), e.hasher.new.Load(), "no second rehash")

		_, err = e.svc.Login(ipCtx("192.0.2.2"), auth.LoginInput{Email: "old@example.org", Password: "wrong"})
		requireCode(t, err, core.KindUnauthenticated, core.CodeInvalidCredentials)
	})
}

func TestLoginOverloaded(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	ta := e.tenant(t, "a")
	e.user(t, ta, "ada@example.org", user.StatusActive)
	overloaded := core.E(core.KindUnavailable, core.CodeOverloaded, "busy")
	overloaded.RetryAfter = time.Second
	e.hasher.fail = overloaded
	for range 10 {
		_, err := e.svc.Login(ipCtx("192.0.2.1"), auth.LoginInput{Email: "ada@example.org", Password: goodPassword})
		ce := requireCode(t, err, core.KindUnavailable, core.CodeOverloaded)
		require.Equal(t, time.Second, ce.RetryAfter)
	}
	n, _, err := e.limiter.Peek(context.Background(), "login:ip:192.0.2.1")
	require.NoError(t, err)
	require.Zero(t, n, "an overloaded attempt is not a failure")
}

func TestLoginSpansAndMetrics(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	reader := sdkmetric.NewManualReader()
	m, err := telemetry.NewMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	require.NoError(t, err)
	e.withMetrics(m)
	ta := e.tenant(t, "a")
	e.user(t, ta, "ada@example.org", user.StatusActive)

	e.login(t, "ada@example.org", "192.0.2.1")
	_, err = e.svc.Login(ipCtx("192.0.2.1"), auth.LoginInput{Email: "ada@example.org", Password: "nope"})
	require.Error(t, err)

	spans := e.spans.Ended()
	var login, create []int
	for i, s := range spans {
		switch s.Name() {
		case auth.SpanLogin:
			login = append(login, i)
		case auth.SpanSessionCreate:
			create = append(create, i)
		}
	}
	require.Len(t, login, 2)
	require.Len(t, create, 1, "only the successful login creates a session")
	parent := spans[login[0]]
	child := spans[create[0]]
	require.Equal(t, parent.SpanContext().SpanID(), child.Parent().SpanID())
	require.Equal(t, parent.SpanContext().TraceID(), child.SpanContext().TraceID())

	outcomes := telemetrytest.CounterByAttr(t, reader, telemetry.MetricLoginOutcome, telemetry.AttrOutcome)
	require.Equal(t, map[string]int64{telemetry.OutcomeSuccess: 1, telemetry.OutcomeInvalidCredentials: 1}, outcomes)
}

func TestWhoami(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	ta, tb := e.tenant(t, "a"), e.tenant(t, "b")
	u := e.user(t, ta, "ada@example.org", user.StatusActive)
	e.member(t, u.ID, tb, "")
	resp := e.login(t, "ada@example.org", "192.0.2.1")
	id, err := e.svc.Whoami(e.as(t, resp.AccessToken))
	require.NoError(t, err)
	require.Equal(t, auth.Identity{Type: core.PrincipalUser, ID: u.ID, TenantID: ta, TenantIDs: []string{ta, tb},
		AMR: []string{"pwd"}}, id)

	key := &core.Principal{Type: core.PrincipalAPIKey, ID: core.NewID(), TenantID: ta, Scopes: []string{"tenant:users:read"}}
	id, err = e.svc.Whoami(core.WithPrincipal(context.Background(), key))
	require.NoError(t, err)
	require.Equal(t, core.PrincipalAPIKey, id.Type)
	require.Equal(t, []string{ta}, id.TenantIDs)
	require.True(t, slices.Equal(key.Scopes, id.Scopes))

	_, err = e.svc.Whoami(context.Background())
	requireCode(t, err, core.KindUnauthenticated, core.CodeUnauthenticated)
}
