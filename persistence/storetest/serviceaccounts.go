package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testServiceAccounts(t *testing.T, open dbtest.Opener) {
	t.Run("round trip", func(t *testing.T) { testServiceAccountRoundTrip(t, open(t)) })
	t.Run("rotate and disable", func(t *testing.T) { testServiceAccountRotate(t, open(t)) })
}

func serviceAccountFixture(tenantID, clientID string) serviceaccount.Account {
	return serviceaccount.Account{ID: core.NewID(), TenantID: tenantID, Name: "billing sync", ClientID: clientID,
		SecretHash: "h1", Scopes: []string{"tenant:licensing:read", "tenant:users:read"}, CreatedBy: core.NewID(),
		CreatedAt: userT0}
}

func testServiceAccountRoundTrip(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewServiceAccountStore(db)
	ta, tb := userTestTenant(t, db, "sa-a", false), userTestTenant(t, db, "sa-b", false)

	ok, err := s.TenantExists(ctx, ta)
	require.NoError(t, err)
	require.True(t, ok)
	for _, id := range []string{core.NewID(), "nope"} {
		ok, err = s.TenantExists(ctx, id)
		require.NoError(t, err)
		require.False(t, ok)
	}

	a := serviceAccountFixture(ta, "sa_AAAAAAAAAAAAAAAAAAAA")
	require.NoError(t, s.InsertServiceAccount(ctx, a))
	got, err := s.ServiceAccountByID(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, a, got)
	got, err = s.ServiceAccountByClientID(ctx, a.ClientID)
	require.NoError(t, err)
	require.Equal(t, a, got)

	dup := serviceAccountFixture(tb, a.ClientID)
	err = s.InsertServiceAccount(ctx, dup)
	require.Equal(t, core.KindConflict, core.KindOf(err), "client id is globally unique")
	require.True(t, persistence.IsUniqueViolation(err))
	require.Equal(t, core.KindConflict, core.KindOf(s.InsertServiceAccount(ctx, a)), "duplicate id")
	orphan := serviceAccountFixture(core.NewID(), "sa_BBBBBBBBBBBBBBBBBBBB")
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertServiceAccount(ctx, orphan)), "unknown tenant")

	b := serviceAccountFixture(tb, "sa_CCCCCCCCCCCCCCCCCCCC")
	require.NoError(t, s.InsertServiceAccount(ctx, b))
	for _, id := range []string{core.NewID(), "nope"} {
		_, err = s.ServiceAccountByID(ctx, id)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), id)
	}
	_, err = s.ServiceAccountByClientID(ctx, "sa_DDDDDDDDDDDDDDDDDDDD")
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	all, err := s.ListServiceAccounts(ctx, "")
	require.NoError(t, err)
	require.Equal(t, []serviceaccount.Account{a, b}, all)
	onlyB, err := s.ListServiceAccounts(ctx, tb)
	require.NoError(t, err)
	require.Equal(t, []serviceaccount.Account{b}, onlyB)
	none, err := s.ListServiceAccounts(ctx, "nope")
	require.NoError(t, err)
	require.Empty(t, none)
}

func testServiceAccountRotate(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewServiceAccountStore(db)
	a := serviceAccountFixture(userTestTenant(t, db, "sa-r", false), "sa_EEEEEEEEEEEEEEEEEEEE")
	require.NoError(t, s.InsertServiceAccount(ctx, a))

	until := userT0.Add(24 * time.Hour)
	changed, err := s.RotateServiceAccountSecret(ctx, a.ID, "h1", "h2", &a.SecretHash, &until)
	require.NoError(t, err)
	require.True(t, changed)
	changed, err = s.RotateServiceAccountSecret(ctx, a.ID, "h1", "h3", nil, nil)
	require.NoError(t, err)
	require.False(t, changed, "stale expected hash")
	got, err := s.ServiceAccountByID(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, "h2", got.SecretHash)
	require.Equal(t, "h1", got.PreviousSecretHash)
	require.Equal(t, until, *got.PreviousExpiresAt)

	changed, err = s.RotateServiceAccountSecret(ctx, a.ID, "h2", "h3", nil, nil)
	require.NoError(t, err)
	require.True(t, changed)
	got, err = s.ServiceAccountByID(ctx, a.ID)
	require.NoError(t, err)
	require.Empty(t, got.PreviousSecretHash)
	require.Nil(t, got.PreviousExpiresAt)

	changed, err = s.DisableServiceAccount(ctx, a.ID, userT0.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, changed)
	changed, err = s.DisableServiceAccount(ctx, a.ID, userT0.Add(2*time.Hour))
	require.NoError(t, err)
	require.False(t, changed)
	got, err = s.ServiceAccountByID(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, userT0.Add(time.Hour), *got.DisabledAt)
	changed, err = s.RotateServiceAccountSecret(ctx, a.ID, "h3", "h4", nil, nil)
	require.NoError(t, err)
	require.False(t, changed, "a disabled account is not rotated")
	changed, err = s.DisableServiceAccount(ctx, "nope", userT0)
	require.NoError(t, err)
	require.False(t, changed)
}
