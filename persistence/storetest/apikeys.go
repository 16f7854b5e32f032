package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/apikey"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testAPIKeys(t *testing.T, open dbtest.Opener) {
	t.Run("round trip", func(t *testing.T) { testAPIKeyRoundTrip(t, open(t)) })
	t.Run("rotate and revoke", func(t *testing.T) { testAPIKeyRotateRevoke(t, open(t)) })
	t.Run("list and tenant slug", func(t *testing.T) { testAPIKeyList(t, open(t)) })
}

func apiKeyFixture(tenantID, prefix string) apikey.Key {
	return apikey.Key{ID: core.NewID(), TenantID: tenantID, Name: "ci", Prefix: prefix, SecretHash: "h0",
		Scopes: []string{"tenant:users:read"}, CreatedBy: core.NewID(), CreatedAt: userT0}
}

func testAPIKeyRoundTrip(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewAPIKeyStore(db)
	tenant := userTestTenant(t, db, "ak", false)
	k := apiKeyFixture(tenant, "ghk_AAAAAAAAAAAA")
	exp := userT0.Add(48 * time.Hour)
	k.ExpiresAt = &exp
	require.NoError(t, s.InsertAPIKey(ctx, k))

	got, err := s.APIKeyByID(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, k, got)
	got, err = s.APIKeyByPrefix(ctx, k.Prefix)
	require.NoError(t, err)
	require.Equal(t, k, got)

	dup := apiKeyFixture(tenant, k.Prefix)
	require.Equal(t, core.KindConflict, core.KindOf(s.InsertAPIKey(ctx, dup)), "duplicate prefix")
	orphan := apiKeyFixture(core.NewID(), "ghk_BBBBBBBBBBBB")
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertAPIKey(ctx, orphan)), "unknown tenant")
	for _, id := range []string{core.NewID(), "nope"} {
		_, err = s.APIKeyByID(ctx, id)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), id)
	}
	_, err = s.APIKeyByPrefix(ctx, "ghk_CCCCCCCCCCCC")
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))
}

func testAPIKeyRotateRevoke(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewAPIKeyStore(db)
	k := apiKeyFixture(userTestTenant(t, db, "akr", false), "ghk_DDDDDDDDDDDD")
	require.NoError(t, s.InsertAPIKey(ctx, k))

	until := userT0.Add(time.Hour)
	ok, err := s.RotateAPIKey(ctx, k.ID, "h1", until)
	require.NoError(t, err)
	require.True(t, ok)
	got, err := s.APIKeyByID(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, "h1", got.SecretHash)
	require.Equal(t, "h0", got.PreviousSecretHash)
	require.Equal(t, until, *got.PreviousExpiresAt)

	ok, err = s.RotateAPIKey(ctx, k.ID, "h2", until.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok)
	got, err = s.APIKeyByID(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"h2", "h1"}, []string{got.SecretHash, got.PreviousSecretHash})

	at := userT0.Add(2 * time.Hour)
	ok, err = s.RevokeAPIKey(ctx, k.ID, at)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.RevokeAPIKey(ctx, k.ID, at.Add(time.Minute))
	require.NoError(t, err)
	require.False(t, ok, "second revocation changes nothing")
	got, err = s.APIKeyByID(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, at, *got.RevokedAt)

	ok, err = s.RotateAPIKey(ctx, k.ID, "h3", until)
	require.NoError(t, err)
	require.False(t, ok, "a revoked key is not rotated")
	for _, id := range []string{core.NewID(), "nope"} {
		ok, err = s.RevokeAPIKey(ctx, id, at)
		require.NoError(t, err)
		require.False(t, ok)
	}
}

func testAPIKeyList(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewAPIKeyStore(db)
	a, b := userTestTenant(t, db, "platform", false), userTestTenant(t, db, "akl", false)
	k1 := apiKeyFixture(b, "ghk_EEEEEEEEEEEE")
	k2 := apiKeyFixture(b, "ghk_FFFFFFFFFFFF")
	k2.CreatedAt = userT0.Add(time.Minute)
	k3 := apiKeyFixture(a, "ghk_GGGGGGGGGGGG")
	for _, k := range []apikey.Key{k1, k2, k3} {
		require.NoError(t, s.InsertAPIKey(ctx, k))
	}
	got, err := s.ListAPIKeys(ctx, b)
	require.NoError(t, err)
	require.Equal(t, []apikey.Key{k2, k1}, got)
	got, err = s.ListAPIKeys(ctx, "nope")
	require.NoError(t, err)
	require.Empty(t, got)

	id, err := s.TenantIDBySlug(ctx, core.PlatformTenantSlug)
	require.NoError(t, err)
	require.Equal(t, a, id)
	_, err = s.TenantIDBySlug(ctx, "missing")
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))
}
