package apikey_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/apikey"
	"github.com/ghasi-ehealth/identity-service/core/scope"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
)

func TestCreateAndAuthenticate(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ctx := as(e.adminA, e.tenantA)
		c := e.create(t, ctx, apikey.CreateInput{Name: " ci ", Scopes: []string{scope.UsersRead, scope.DevicesRead, scope.UsersRead}})
		prefix, _, ok := apikey.ParseAPIKey(c.Secret)
		require.True(t, ok, c.Secret)
		require.Equal(t, prefix, c.Key.Prefix)
		require.True(t, strings.HasPrefix(c.Secret, c.Key.Prefix+"_"))
		require.Equal(t, "ci", c.Key.Name)
		require.Equal(t, e.tenantA, c.Key.TenantID, "the caller's tenant by default")
		require.Equal(t, []string{scope.DevicesRead, scope.UsersRead}, c.Key.Scopes)
		require.Equal(t, e.adminA, c.Key.CreatedBy)
		require.Empty(t, c.Key.SecretHash)

		keys, err := e.svc.List(ctx, "")
		require.NoError(t, err)
		require.Len(t, keys, 1)
		require.Equal(t, c.Key.Prefix, keys[0].Prefix)
		require.Empty(t, keys[0].SecretHash)
		require.NotContains(t, mustJSON(t, keys), c.Secret[len(prefix)+1:])

		p, err := e.svc.AuthenticateAPIKey(context.Background(), c.Secret)
		require.NoError(t, err)
		require.Equal(t, &core.Principal{Type: core.PrincipalAPIKey, ID: c.Key.ID, TenantID: e.tenantA,
			TenantIDs: []string{e.tenantA}, Scopes: c.Key.Scopes}, p)

		// A SUPER_ADMIN issues for any tenant.
		cb := e.create(t, as(e.superAdmin, e.platform), apikey.CreateInput{Name: "b", Scopes: []string{scope.UsersWrite}, TenantID: e.tenantB})
		require.Equal(t, e.tenantB, cb.Key.TenantID)

		// The secret is stored only as an HMAC.
		stored, err := e.store.APIKeyByID(context.Background(), c.Key.ID)
		require.NoError(t, err)
		require.Len(t, stored.SecretHash, 64)
		require.NotContains(t, stored.SecretHash, c.Secret[len(prefix)+1:])

		envs := eventtest.RequireValidStored(t, e.db, apikey.EventIssued)
		require.Len(t, envs, 2)
		require.Equal(t, c.Key.ID, envs[0].Subject)
		for _, ev := range e.events(t, apikey.EventIssued) {
			require.NotContains(t, string(ev.Data), "ghk_")
			require.NotContains(t, string(ev.Data), c.Secret[len(prefix)+1:])
			require.NotContains(t, string(ev.Data), cb.Secret[len(prefix)+1:])
		}
	})
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	ctx := as(e.adminA, e.tenantA)
	past := testT0.Add(-time.Second)
	_, err := e.svc.Create(ctx, apikey.CreateInput{Name: "x", Scopes: []string{scope.UsersRead, "tenant:users:destroy"}})
	requireCode(t, core.CodeValidation, err)
	require.Contains(t, core.AsError(err).Fields, "scopes")
	require.Contains(t, core.AsError(err).Fields["scopes"], "tenant:users:destroy")

	_, err = e.svc.Create(ctx, apikey.CreateInput{Name: " ", Scopes: nil, ExpiresAt: &past})
	requireCode(t, core.CodeValidation, err)
	require.Equal(t, []string{"expiresAt", "name", "scopes"}, sortedKeys(core.AsError(err).Fields))

	for name, bad := range map[string]string{"NUL": "a\x00b", "invalid UTF-8": "a\xffb", "control": "a\ab", "line break": "a\r\nb"} {
		_, err = e.svc.Create(ctx, apikey.CreateInput{Name: bad, Scopes: []string{scope.UsersRead}})
		requireCode(t, core.CodeValidation, err)
		require.Equal(t, []string{"name"}, sortedKeys(core.AsError(err).Fields), name)
	}

	_, err = e.svc.Create(as(e.superAdmin, e.platform), apikey.CreateInput{Name: "x", Scopes: []string{scope.UsersRead}, TenantID: core.NewID()})
	requireCode(t, core.CodeNotFound, err)
	require.Empty(t, e.events(t, apikey.EventIssued))
}

func TestExpiry(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	exp := testT0.Add(time.Hour)
	c := e.create(t, as(e.adminA, e.tenantA), apikey.CreateInput{Name: "x", Scopes: []string{scope.UsersRead}, ExpiresAt: &exp})
	require.Equal(t, exp, *c.Key.ExpiresAt)
	p, err := e.svc.AuthenticateAPIKey(context.Background(), c.Secret)
	require.NoError(t, err)
	require.Equal(t, exp, p.ExpiresAt)
	e.clock.Advance(time.Hour)
	_, err = e.svc.AuthenticateAPIKey(context.Background(), c.Secret)
	requireCode(t, core.CodeUnauthenticated, err)
	_, err = e.svc.Rotate(as(e.adminA, e.tenantA), c.Key.ID, nil)
	requireCode(t, core.CodeStateConflict, err)
}

func TestRotateOverlap(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ctx := as(e.adminA, e.tenantA)
		bg := context.Background()
		c := e.create(t, ctx, apikey.CreateInput{Name: "x", Scopes: []string{scope.UsersRead}})
		_, err := e.svc.AuthenticateAPIKey(bg, c.Secret) // warm the cache
		require.NoError(t, err)

		overlap := 10 * time.Minute
		r, err := e.svc.Rotate(ctx, c.Key.ID, &overlap)
		require.NoError(t, err)
		require.Equal(t, c.Key.ID, r.ID)
		require.Equal(t, testT0.Add(overlap), r.PreviousSecretExpiresAt)
		require.NotEqual(t, c.Secret, r.Secret)
		require.True(t, strings.HasPrefix(r.Secret, c.Key.Prefix+"_"), "the lookup id stays")
		require.Equal(t, c.Key.Prefix, r.Key.Prefix)
		require.Empty(t, r.Key.SecretHash)
		require.Empty(t, r.Key.PreviousSecretHash)
		require.Equal(t, r.PreviousSecretExpiresAt, *r.Key.PreviousExpiresAt)

		other := e.newService() // a second replica sees both secrets too
		for _, s := range []*apikey.Service{e.svc, other} {
			for _, key := range []string{c.Secret, r.Secret} {
				p, err := s.AuthenticateAPIKey(bg, key)
				require.NoError(t, err)
				require.Equal(t, c.Key.ID, p.ID)
			}
		}
		e.clock.Advance(overlap - time.Microsecond)
		_, err = e.svc.AuthenticateAPIKey(bg, c.Secret)
		require.NoError(t, err, "old secret just before previousSecretExpiresAt")
		e.clock.Advance(time.Microsecond)
		for _, s := range []*apikey.Service{e.svc, other} {
			_, err = s.AuthenticateAPIKey(bg, c.Secret)
			requireCode(t, core.CodeUnauthenticated, err)
			_, err = s.AuthenticateAPIKey(bg, r.Secret)
			require.NoError(t, err)
		}

		// Zero overlap ends the previous secret at once; default is 24 h.
		zero := time.Duration(0)
		r2, err := e.svc.Rotate(ctx, c.Key.ID, &zero)
		require.NoError(t, err)
		_, err = e.svc.AuthenticateAPIKey(bg, r.Secret)
		requireCode(t, core.CodeUnauthenticated, err)
		r3, err := e.svc.Rotate(ctx, c.Key.ID, nil)
		require.NoError(t, err)
		require.Equal(t, e.clock.Now().Add(apikey.DefaultOverlap), r3.PreviousSecretExpiresAt)
		_, err = e.svc.AuthenticateAPIKey(bg, r2.Secret)
		require.NoError(t, err)

		for _, bad := range []time.Duration{-time.Second, apikey.MaxOverlap + time.Second} {
			_, err = e.svc.Rotate(ctx, c.Key.ID, &bad)
			requireCode(t, core.CodeValidation, err)
			require.Contains(t, core.AsError(err).Fields, "overlapSeconds")
		}

		envs := eventtest.RequireValidStored(t, e.db, apikey.EventRotated)
		require.Len(t, envs, 3)
		for _, ev := range e.events(t, apikey.EventRotated) {
			require.Equal(t, c.Key.ID, ev.Subject)
			for _, s := range []string{c.Secret, r.Secret, r2.Secret, r3.Secret} {
				require.NotContains(t, string(ev.Data), s[len(c.Key.Prefix)+1:])
			}
		}
	})
}

func TestRevoke(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ctx := as(e.adminA, e.tenantA)
		bg := context.Background()
		c := e.create(t, ctx, apikey.CreateInput{Name: "x", Scopes: []string{scope.UsersRead}})
		other := e.newService()
		for _, s := range []*apikey.Service{e.svc, other} { // both replicas cache the row
			_, err := s.AuthenticateAPIKey(bg, c.Secret)
			require.NoError(t, err)
		}

		k, err := e.svc.Revoke(ctx, c.Key.ID)
		require.NoError(t, err)
		require.Equal(t, testT0, *k.RevokedAt)
		_, err = e.svc.AuthenticateAPIKey(bg, c.Secret)
		requireCode(t, core.CodeUnauthenticated, err)

		// The other replica may serve its cached row for less than CacheTTL.
		e.clock.Advance(apikey.CacheTTL)
		_, err = other.AuthenticateAPIKey(bg, c.Secret)
		requireCode(t, core.CodeUnauthenticated, err)

		// Idempotent: a second revocation succeeds without a second event.
		k2, err := e.svc.Revoke(ctx, c.Key.ID)
		require.NoError(t, err)
		require.Equal(t, k.RevokedAt, k2.RevokedAt)
		envs := eventtest.RequireValidStored(t, e.db, apikey.EventRevoked)
		require.Len(t, envs, 1)
		require.Equal(t, c.Key.ID, envs[0].Subject)

		_, err = e.svc.Rotate(ctx, c.Key.ID, nil)
		requireCode(t, core.CodeStateConflict, err)
		_, err = e.svc.Revoke(ctx, core.NewID())
		requireCode(t, core.CodeNotFound, err)
		_, err = e.svc.Revoke(ctx, "nope")
		requireCode(t, core.CodeNotFound, err)
	})
}

func TestAuthorization(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		bg := context.Background()
		in := apikey.CreateInput{Name: "x", Scopes: []string{scope.UsersRead}, TenantID: e.tenantA}
		_, err := e.svc.Create(as(e.adminB, e.tenantB), in)
		requireCode(t, core.CodeCrossTenant, err)
		_, err = e.svc.Create(as(e.memberA, e.tenantA), in)
		requireCode(t, core.CodeForbidden, err)
		_, err = e.svc.Create(bg, in)
		requireCode(t, core.CodeUnauthenticated, err)
		keys, err := e.svc.List(as(e.adminA, e.tenantA), "")
		require.NoError(t, err)
		require.Empty(t, keys, "no side effect")
		require.Empty(t, e.events(t, apikey.EventIssued))

		c := e.create(t, as(e.adminA, e.tenantA), in)
		_, err = e.svc.Rotate(as(e.adminB, e.tenantB), c.Key.ID, nil)
		requireCode(t, core.CodeCrossTenant, err)
		_, err = e.svc.Revoke(as(e.adminB, e.tenantB), c.Key.ID)
		requireCode(t, core.CodeCrossTenant, err)
		_, err = e.svc.List(as(e.adminB, e.tenantB), e.tenantA)
		requireCode(t, core.CodeCrossTenant, err)
		_, err = e.svc.Revoke(as(e.memberA, e.tenantA), c.Key.ID)
		requireCode(t, core.CodeForbidden, err)

		// An API key is no administrator, whatever its scopes.
		keyCtx := core.WithPrincipal(bg, mustAuth(t, e.svc, c.Secret))
		_, err = e.svc.Create(keyCtx, in)
		requireCode(t, core.CodeForbidden, err)

		_, err = e.svc.AuthenticateAPIKey(bg, c.Secret)
		require.NoError(t, err, "still valid after refused changes")
		require.Len(t, e.events(t, apikey.EventIssued), 1)
		require.Empty(t, e.events(t, apikey.EventRotated))
		require.Empty(t, e.events(t, apikey.EventRevoked))

		_, err = e.svc.Revoke(as(e.superAdmin, e.platform), c.Key.ID)
		require.NoError(t, err)
	})
}

func TestAuthenticateRejects(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	c := e.create(t, as(e.adminA, e.tenantA), apikey.CreateInput{Name: "x", Scopes: []string{scope.UsersRead}})
	wrong := c.Key.Prefix + "_" + strings.Repeat("A", 43)
	unknown := "ghk_ZZZZZZZZZZZZ" + c.Secret[len(c.Key.Prefix):]
	for _, raw := range []string{"", "ghk_", "Bearer x", c.Secret + "x", c.Secret[:len(c.Secret)-1], wrong, unknown, " " + c.Secret} {
		_, err := e.svc.AuthenticateAPIKey(context.Background(), raw)
		requireCode(t, core.CodeUnauthenticated, err)
	}
}

func mustAuth(t testing.TB, s *apikey.Service, raw string) *core.Principal {
	t.Helper()
	p, err := s.AuthenticateAPIKey(context.Background(), raw)
	require.NoError(t, err)
	return p
}
