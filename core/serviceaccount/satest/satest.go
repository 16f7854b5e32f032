// Package satest builds a service-account service over a real database,
// keyring, issuer and verifier for the tests of serviceaccount and of the
// transports that call it.
package satest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/cache"
	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys/keystest"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// Issuer and Audience of the test tokens.
const (
	Issuer   = "https://identity.test"
	Audience = "ghasi-platform"
)

// T0 is the start of the fixed clock.
var T0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// Env is one database with a service-account service on real stores.
type Env struct {
	DB       *persistence.DB
	Store    *persistence.ServiceAccountStore
	Dir      *persistence.TenancyStore
	Clock    *core.FixedClock
	Limiter  *cache.LocalLimiter
	Issuer   *token.Issuer
	Verifier *token.Verifier
	Svc      *serviceaccount.Service
	// Platform is the platform tenant; SuperAdmin is a context of its SUPER_ADMIN.
	Platform   string
	SuperAdmin context.Context
}

// New opens a database with open and builds the service.
func New(t testing.TB, open dbtest.Opener) *Env {
	t.Helper()
	db := open(t)
	clock := core.NewFixedClock(T0)
	ks, master := keystest.New(t, db, clock)
	e := &Env{
		DB: db, Store: persistence.NewServiceAccountStore(db), Dir: persistence.NewTenancyStore(db), Clock: clock,
		Limiter:  cache.NewLocalLimiter(clock),
		Issuer:   token.NewIssuer(ks, Issuer, Audience, clock, 0),
		Verifier: token.NewVerifier(ks, Issuer, Audience, clock, nil),
	}
	e.Svc = serviceaccount.NewService(e.Store, core.NewAuthorizer(e.Dir), e.Issuer, clock,
		master.DeriveSecret(serviceaccount.SecretKeyLabel), e.Limiter, nil)
	e.Platform = e.Tenant(t, core.PlatformTenantSlug)
	e.SuperAdmin = e.Member(t, e.Platform, core.RoleSuperAdmin)
	return e
}

// Tenant stores a tenant and returns its id.
func (e *Env) Tenant(t testing.TB, slug string) string {
	t.Helper()
	tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: slug, CreatedAt: T0, UpdatedAt: T0}
	require.NoError(t, e.Dir.CreateTenant(context.Background(), tn))
	return tn.ID
}

// Member stores a user of tenantID with role and returns a context
// authenticated as that user.
func (e *Env) Member(t testing.TB, tenantID, role string) context.Context {
	t.Helper()
	ctx := context.Background()
	u := user.User{ID: core.NewID(), TenantID: tenantID, Email: core.NewID() + "@example.org", Status: user.StatusActive,
		CreatedAt: T0, UpdatedAt: T0}
	require.NoError(t, persistence.NewUserStore(e.DB).InsertUser(ctx, u))
	require.NoError(t, e.Dir.UpsertMembership(ctx, core.Membership{UserID: u.ID, TenantID: tenantID, Roles: []string{role}}, T0))
	return core.WithPrincipal(ctx, &core.Principal{Type: core.PrincipalUser, ID: u.ID, TenantID: tenantID,
		TenantIDs: []string{tenantID}, AMR: []string{token.AMRPassword}})
}

// Create creates a service account of tenantID with scopes as SUPER_ADMIN.
func (e *Env) Create(t testing.TB, tenantID string, scopes ...string) serviceaccount.Created {
	t.Helper()
	c, err := e.Svc.Create(e.SuperAdmin, serviceaccount.CreateInput{Name: "sync", TenantID: tenantID, Scopes: scopes})
	require.NoError(t, err)
	return c
}

// Claims decodes the payload of a JWT without verifying it.
func Claims(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	require.Len(t, parts, 3)
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

// RequireServiceToken verifies raw and checks it is a service-account
// token of a with exactly the frozen claim set.
func (e *Env) RequireServiceToken(t testing.TB, raw string, a serviceaccount.Account) *core.Principal {
	t.Helper()
	p, err := e.Verifier.Verify(context.Background(), raw)
	require.NoError(t, err)
	require.Equal(t, core.PrincipalServiceAccount, p.Type)
	require.Equal(t, a.ID, p.ID)
	require.Equal(t, a.TenantID, p.TenantID)
	require.Equal(t, []string{token.AMRClient}, p.AMR)
	require.NotContains(t, p.TokenID, ".", "service-account tokens are bound to no session")
	c := Claims(t, raw)
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	require.ElementsMatch(t, []string{"sub", "tid", "tids", "jti", "amr", "exp", "iat", "iss", "aud"}, keys)
	require.Equal(t, []any{a.TenantID}, c["tids"])
	require.EqualValues(t, 15*60, c["exp"].(float64)-c["iat"].(float64))
	return p
}

// WrongSecret returns secret with its first character replaced by a
// different one, so the result is never the secret itself (replacing it
// with a fixed character would be a no-op whenever the random secret
// already starts with that character).
func WrongSecret(secret string) string {
	first := byte('A')
	if secret != "" && secret[0] == first {
		first = 'B'
	}
	if secret == "" {
		return string(first)
	}
	return string(first) + secret[1:]
}
