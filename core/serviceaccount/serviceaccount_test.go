package serviceaccount_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/scope"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount/satest"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

var clientIDPattern = regexp.MustCompile(`^sa_[0-9A-Za-z]{20}$`)

func eachDialect(t *testing.T, fn func(t *testing.T, e *satest.Env)) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) { fn(t, satest.New(t, open)) })
	}
}

func requireOAuth(t *testing.T, err error, code string, status int) *serviceaccount.OAuthError {
	t.Helper()
	var oe *serviceaccount.OAuthError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, code, oe.Code, "error: %v", err)
	require.Equal(t, status, oe.Status)
	return oe
}

func grant(id, secret string) serviceaccount.ClientCredentialsInput {
	return serviceaccount.ClientCredentialsInput{GrantType: serviceaccount.GrantClientCredentials, ClientID: id, ClientSecret: secret}
}

func TestCreate(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *satest.Env) {
		tenant := e.Tenant(t, "clinic")
		in := serviceaccount.CreateInput{Name: " billing ", TenantID: tenant, Scopes: []string{scope.UsersRead, scope.LicensingRead, scope.UsersRead}}
		c, err := e.Svc.Create(e.SuperAdmin, in)
		require.NoError(t, err)
		require.Regexp(t, clientIDPattern, c.Account.ClientID)
		require.Len(t, c.ClientSecret, 43)
		require.Equal(t, "billing", c.Account.Name)
		require.Equal(t, []string{scope.LicensingRead, scope.UsersRead}, c.Account.Scopes)

		stored, err := e.Store.ServiceAccountByID(context.Background(), c.Account.ID)
		require.NoError(t, err)
		require.NotContains(t, stored.SecretHash, c.ClientSecret, "stored hashed")
		require.Len(t, stored.SecretHash, 64)

		envs := eventtest.RequireValidStored(t, e.DB, serviceaccount.EventCreated)
		require.Len(t, envs, 1)
		require.Equal(t, c.Account.ID, envs[0].Subject)
		require.Equal(t, tenant, envs[0].TenantID)
		var data map[string]any
		require.NoError(t, json.Unmarshal(envs[0].Data, &data))
		require.Equal(t, map[string]any{"serviceAccountId": c.Account.ID, "clientId": c.Account.ClientID, "tenantId": tenant}, data)
		require.NotContains(t, string(envs[0].Data), c.ClientSecret)
		require.NotContains(t, string(envs[0].Data), stored.SecretHash)

		// Authorization and validation.
		_, err = e.Svc.Create(e.Member(t, tenant, core.RoleTenantAdmin), in)
		require.Equal(t, core.CodeForbidden, core.CodeOf(err))
		_, err = e.Svc.Create(context.Background(), in)
		require.Equal(t, core.CodeUnauthenticated, core.CodeOf(err))
		_, err = e.Svc.Create(e.SuperAdmin, serviceaccount.CreateInput{TenantID: "x", Scopes: []string{"tenant:nope:read"}})
		require.Equal(t, core.CodeValidation, core.CodeOf(err))
		require.Equal(t, []string{"name", "scopes", "tenantId"}, sortedKeys(core.AsError(err).Fields))
		_, err = e.Svc.Create(e.SuperAdmin, serviceaccount.CreateInput{Name: "x", TenantID: core.NewID(), Scopes: []string{scope.UsersRead}})
		require.Equal(t, core.CodeNotFound, core.CodeOf(err))
	})
}

// TestCreateRefusesNamesNoDatabaseCanHold: a NUL byte (which Postgres
// refuses and SQLite stores), invalid UTF-8 or another control character in
// the name is IDENT_VALIDATION naming the field, on both databases.
func TestCreateRefusesNamesNoDatabaseCanHold(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *satest.Env) {
		tenant := e.Tenant(t, "clinic")
		for name, tc := range map[string]struct{ in, reason string }{
			"NUL":           {"bill\x00ing", "must not contain control characters"},
			"invalid UTF-8": {"bill\xffing", "must be valid UTF-8"},
			"line break":    {"bill\r\ning", "must not contain control characters"},
			"bell":          {"bill\aing", "must not contain control characters"},
		} {
			t.Run(name, func(t *testing.T) {
				_, err := e.Svc.Create(e.SuperAdmin, serviceaccount.CreateInput{Name: tc.in, TenantID: tenant, Scopes: []string{scope.UsersRead}})
				require.Equal(t, core.CodeValidation, core.CodeOf(err), "error: %v", err)
				require.Equal(t, map[string]string{"name": tc.reason}, core.AsError(err).Fields)
			})
		}
		accounts, err := e.Svc.List(e.SuperAdmin, tenant)
		require.NoError(t, err)
		require.Empty(t, accounts, "nothing stored")
	})
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

func TestClientIDsNeverCollide(t *testing.T) {
	e := satest.New(t, dbtest.SQLite)
	tenant := e.Tenant(t, "many")
	seen := sync.Map{}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			c, err := e.Svc.Create(e.SuperAdmin, serviceaccount.CreateInput{Name: "n", TenantID: tenant, Scopes: []string{scope.UsersRead}})
			if err != nil {
				t.Error(err)
				return
			}
			_, dup := seen.LoadOrStore(c.Account.ClientID, true)
			if dup {
				t.Error("duplicate client id", c.Account.ClientID)
			}
		})
	}
	wg.Wait()
	all, err := e.Svc.List(e.SuperAdmin, tenant)
	require.NoError(t, err)
	require.Len(t, all, 20)
}

func TestClientCredentials(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *satest.Env) {
		ctx := context.Background()
		c := e.Create(t, e.Tenant(t, "lab"), scope.LicensingRead, scope.UsersRead)
		g, err := e.Svc.ClientCredentials(ctx, grant(c.Account.ClientID, c.ClientSecret))
		require.NoError(t, err)
		require.Equal(t, 15*time.Minute, g.ExpiresIn)
		require.Equal(t, scope.LicensingRead+" "+scope.UsersRead, g.Scope)
		p := e.RequireServiceToken(t, g.AccessToken, c.Account)

		// Two grants never share a jti.
		g2, err := e.Svc.ClientCredentials(ctx, grant(c.Account.ClientID, c.ClientSecret))
		require.NoError(t, err)
		require.NotEqual(t, p.TokenID, e.RequireServiceToken(t, g2.AccessToken, c.Account).TokenID)

		// A requested subset is accepted; a scope the account lacks is not.
		in := grant(c.Account.ClientID, c.ClientSecret)
		in.Scope = scope.UsersRead
		_, err = e.Svc.ClientCredentials(ctx, in)
		require.NoError(t, err)
		in.Scope = scope.UsersRead + " " + scope.UsersWrite
		requireOAuth(t, tokenErr(e.Svc.ClientCredentials(ctx, in)), serviceaccount.ErrInvalidScope, 400)

		for name, tc := range map[string]struct {
			in     serviceaccount.ClientCredentialsInput
			code   string
			status int
		}{
			"wrong secret":      {grant(c.Account.ClientID, satest.WrongSecret(c.ClientSecret)), serviceaccount.ErrInvalidClient, 401},
			"unknown client":    {grant("sa_AAAAAAAAAAAAAAAAAAAA", c.ClientSecret), serviceaccount.ErrInvalidClient, 401},
			"malformed client":  {grant("someone", c.ClientSecret), serviceaccount.ErrInvalidClient, 401},
			"no secret":         {grant(c.Account.ClientID, ""), serviceaccount.ErrInvalidClient, 401},
			"no grant type":     {serviceaccount.ClientCredentialsInput{ClientID: c.Account.ClientID, ClientSecret: c.ClientSecret}, serviceaccount.ErrInvalidRequest, 400},
			"unsupported grant": {serviceaccount.ClientCredentialsInput{GrantType: "password", ClientID: c.Account.ClientID, ClientSecret: c.ClientSecret}, serviceaccount.ErrUnsupportedGrantType, 400},
		} {
			t.Run(name, func(t *testing.T) {
				requireOAuth(t, tokenErr(e.Svc.ClientCredentials(ctx, tc.in)), tc.code, tc.status)
			})
		}

		// A disabled account cannot authenticate, and its tokens no longer enrich.
		_, err = e.Svc.Disable(e.SuperAdmin, c.Account.ID)
		require.NoError(t, err)
		requireOAuth(t, tokenErr(e.Svc.ClientCredentials(ctx, grant(c.Account.ClientID, c.ClientSecret))), serviceaccount.ErrInvalidClient, 401)
		require.Equal(t, core.CodeUnauthenticated, core.CodeOf(e.Svc.EnrichPrincipal(ctx, p)))
	})
}

func tokenErr(_ serviceaccount.TokenGrant, err error) error { return err }

func TestFailedAuthenticationsAreThrottled(t *testing.T) {
	e := satest.New(t, dbtest.SQLite)
	ctx := context.Background()
	c := e.Create(t, e.Tenant(t, "thr"), scope.UsersRead)
	wrong := grant(c.Account.ClientID, satest.WrongSecret(c.ClientSecret))
	for range serviceaccount.FailureLimit {
		oe := requireOAuth(t, tokenErr(e.Svc.ClientCredentials(ctx, wrong)), serviceaccount.ErrInvalidClient, 401)
		require.Zero(t, oe.RetryAfter)
	}
	oe := requireOAuth(t, tokenErr(e.Svc.ClientCredentials(ctx, grant(c.Account.ClientID, c.ClientSecret))), serviceaccount.ErrInvalidClient, 401)
	require.Equal(t, serviceaccount.FailureWindow, oe.RetryAfter, "blocked even with the right secret")
	e.Clock.Advance(serviceaccount.FailureWindow)
	_, err := e.Svc.ClientCredentials(ctx, grant(c.Account.ClientID, c.ClientSecret))
	require.NoError(t, err)
}

func TestRotateSecret(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *satest.Env) {
		ctx := context.Background()
		c := e.Create(t, e.Tenant(t, "rot"), scope.UsersRead)
		old := grant(c.Account.ClientID, c.ClientSecret)

		_, err := e.Svc.RotateSecret(e.Member(t, c.Account.TenantID, core.RoleTenantAdmin), c.Account.ID, nil)
		require.Equal(t, core.CodeForbidden, core.CodeOf(err))
		bad := -time.Second
		_, err = e.Svc.RotateSecret(e.SuperAdmin, c.Account.ID, &bad)
		require.Equal(t, core.CodeValidation, core.CodeOf(err))
		_, err = e.Svc.RotateSecret(e.SuperAdmin, core.NewID(), nil)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err))

		r, err := e.Svc.RotateSecret(e.SuperAdmin, c.Account.ID, nil)
		require.NoError(t, err)
		require.NotEqual(t, c.ClientSecret, r.ClientSecret)
		require.Equal(t, satest.T0.Add(serviceaccount.DefaultOverlap), *r.PreviousSecretExpiresAt)
		fresh := grant(c.Account.ClientID, r.ClientSecret)

		_, err = e.Svc.ClientCredentials(ctx, old)
		require.NoError(t, err, "old secret works within the overlap")
		_, err = e.Svc.ClientCredentials(ctx, fresh)
		require.NoError(t, err)
		e.Clock.Advance(serviceaccount.DefaultOverlap - time.Second)
		_, err = e.Svc.ClientCredentials(ctx, old)
		require.NoError(t, err)
		e.Clock.Advance(time.Second)
		requireOAuth(t, tokenErr(e.Svc.ClientCredentials(ctx, old)), serviceaccount.ErrInvalidClient, 401)
		_, err = e.Svc.ClientCredentials(ctx, fresh)
		require.NoError(t, err)

		// Overlap 0 ends the previous secret at once.
		zero := time.Duration(0)
		r2, err := e.Svc.RotateSecret(e.SuperAdmin, c.Account.ID, &zero)
		require.NoError(t, err)
		require.Nil(t, r2.PreviousSecretExpiresAt)
		requireOAuth(t, tokenErr(e.Svc.ClientCredentials(ctx, fresh)), serviceaccount.ErrInvalidClient, 401)
		_, err = e.Svc.ClientCredentials(ctx, grant(c.Account.ClientID, r2.ClientSecret))
		require.NoError(t, err)
	})
}

func TestListAndEnrich(t *testing.T) {
	e := satest.New(t, dbtest.SQLite)
	ctx := context.Background()
	ta, tb := e.Tenant(t, "ta"), e.Tenant(t, "tb")
	a := e.Create(t, ta, scope.LicensingRead, scope.ServiceAccountsRead)
	b := e.Create(t, tb, scope.UsersRead)

	all, err := e.Svc.List(e.SuperAdmin, "")
	require.NoError(t, err)
	require.Len(t, all, 2)
	adminA := e.Member(t, ta, core.RoleTenantAdmin)
	got, err := e.Svc.List(adminA, "")
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, a.Account.ID, got[0].ID)
	_, err = e.Svc.List(adminA, tb)
	require.Equal(t, core.CodeCrossTenant, core.CodeOf(err))
	_, err = e.Svc.List(e.Member(t, ta, "nurse"), ta)
	require.Equal(t, core.CodeForbidden, core.CodeOf(err))

	g, err := e.Svc.ClientCredentials(ctx, grant(a.Account.ClientID, a.ClientSecret))
	require.NoError(t, err)
	p, err := e.Verifier.Verify(ctx, g.AccessToken)
	require.NoError(t, err)
	require.NoError(t, e.Svc.EnrichPrincipal(ctx, p))
	require.Equal(t, []string{scope.LicensingRead, scope.ServiceAccountsRead}, p.Scopes)
	require.True(t, p.HasScope(scope.LicensingRead))
	got, err = e.Svc.List(core.WithPrincipal(ctx, p), "")
	require.NoError(t, err, "a service credential with tenant:service_accounts:read lists its tenant")
	require.Len(t, got, 1)
	_, err = e.Svc.List(core.WithPrincipal(ctx, p), tb)
	require.Equal(t, core.CodeForbidden, core.CodeOf(err))

	scopes, err := e.Svc.ScopesOf(ctx, b.Account.ID)
	require.NoError(t, err)
	require.Equal(t, []string{scope.UsersRead}, scopes)
	_, err = e.Svc.ScopesOf(ctx, core.NewID())
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	// Unknown accounts and forged tenants do not enrich; users are untouched.
	ghost := &core.Principal{Type: core.PrincipalServiceAccount, ID: core.NewID(), TenantID: ta}
	require.Equal(t, core.CodeUnauthenticated, core.CodeOf(e.Svc.EnrichPrincipal(ctx, ghost)))
	wrongTenant := &core.Principal{Type: core.PrincipalServiceAccount, ID: a.Account.ID, TenantID: tb}
	require.Equal(t, core.CodeUnauthenticated, core.CodeOf(e.Svc.EnrichPrincipal(ctx, wrongTenant)))
	u := &core.Principal{Type: core.PrincipalUser, ID: core.NewID()}
	require.NoError(t, e.Svc.EnrichPrincipal(ctx, u))
	require.Nil(t, u.Scopes)

	// The cache serves a disable done elsewhere until CacheTTL passes.
	_, err = e.Store.DisableServiceAccount(ctx, b.Account.ID, satest.T0)
	require.NoError(t, err)
	_, err = e.Svc.ScopesOf(ctx, b.Account.ID)
	require.NoError(t, err, "cached")
	e.Clock.Advance(serviceaccount.CacheTTL)
	_, err = e.Svc.ScopesOf(ctx, b.Account.ID)
	require.Equal(t, core.CodeUnauthenticated, core.CodeOf(err))
}

func TestDependencyFailureIsNotInvalidClient(t *testing.T) {
	e := satest.New(t, dbtest.SQLite)
	c := e.Create(t, e.Tenant(t, "down"), scope.UsersRead)
	require.NoError(t, e.DB.Close())
	_, err := e.Svc.ClientCredentials(context.Background(), grant(c.Account.ClientID, c.ClientSecret))
	var oe *serviceaccount.OAuthError
	require.False(t, errors.As(err, &oe), "a database failure is not the client's fault: %v", err)
	require.Error(t, err)
}
