package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/mfa"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testMFA(t *testing.T, open dbtest.Opener) {
	t.Run("factors", func(t *testing.T) { testMFAFactors(t, open(t)) })
	t.Run("recovery codes", func(t *testing.T) { testMFARecovery(t, open(t)) })
	t.Run("challenges", func(t *testing.T) { testMFAChallenges(t, open(t)) })
}

func testMFAFactors(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewMFAStore(db)
	u, _ := sessionFixture(t, db, "mfaf")
	f := mfa.Factor{ID: core.NewID(), UserID: u.ID, Type: mfa.TypeTOTP, SecretWrapped: []byte{1, 2, 3}, CreatedAt: userT0}
	require.NoError(t, s.InsertFactor(ctx, f))
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertFactor(ctx, mfa.Factor{ID: core.NewID(), UserID: core.NewID(), Type: mfa.TypeTOTP, CreatedAt: userT0})))
	got, err := s.FactorsOfUser(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, []mfa.Factor{f}, got)

	later := userT0.Add(time.Minute)
	ok, err := s.AdvanceTOTPStep(ctx, f.ID, 7, later)
	require.NoError(t, err)
	require.True(t, ok)
	for _, step := range []int64{7, 6} {
		ok, err = s.AdvanceTOTPStep(ctx, f.ID, step, later)
		require.NoError(t, err)
		require.False(t, ok, "the step only moves forward")
	}
	ok, err = s.MarkFactorVerified(ctx, f.ID, later)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.MarkFactorVerified(ctx, f.ID, later)
	require.NoError(t, err)
	require.False(t, ok)
	pending := mfa.Factor{ID: core.NewID(), UserID: u.ID, Type: mfa.TypeTOTP, CreatedAt: later}
	require.NoError(t, s.InsertFactor(ctx, pending))
	require.NoError(t, s.DeleteUnverifiedTOTP(ctx, u.ID, pending.ID))
	got, err = s.FactorsOfUser(ctx, u.ID)
	require.NoError(t, err)
	require.Len(t, got, 2, "keepID kept")
	require.NoError(t, s.DeleteUnverifiedTOTP(ctx, u.ID, ""))
	got, err = s.FactorsOfUser(ctx, u.ID)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, int64(7), got[0].LastUsedStep)
	require.Equal(t, &later, got[0].VerifiedAt)
	require.Equal(t, &later, got[0].LastUsedAt)
	n, err := s.DeleteFactorsOfUser(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
}

func testMFARecovery(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewMFAStore(db)
	u, _ := sessionFixture(t, db, "mfar")
	require.NoError(t, s.ReplaceRecoveryCodes(ctx, u.ID, []string{"a", "b"}, userT0))
	require.NoError(t, s.ReplaceRecoveryCodes(ctx, u.ID, []string{"c", "d"}, userT0))
	n, err := s.UnusedRecoveryCodes(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	for _, want := range []bool{true, false} {
		ok, err := s.UseRecoveryCode(ctx, u.ID, "c", userT0)
		require.NoError(t, err)
		require.Equal(t, want, ok)
	}
	ok, err := s.UseRecoveryCode(ctx, u.ID, "a", userT0)
	require.NoError(t, err)
	require.False(t, ok, "replaced")
	require.NoError(t, s.DeleteRecoveryCodes(ctx, u.ID))
	n, err = s.UnusedRecoveryCodes(ctx, u.ID)
	require.NoError(t, err)
	require.Zero(t, n)
}

func testMFAChallenges(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewMFAStore(db)
	u, _ := sessionFixture(t, db, "mfac")
	c := mfa.Challenge{ID: core.NewID(), UserID: u.ID, TenantID: u.TenantID, IP: "203.0.113.9", UserAgent: "ua",
		WebAuthnState: []byte("st"), CreatedAt: userT0, ExpiresAt: userT0.Add(5 * time.Minute)}
	require.NoError(t, s.InsertChallenge(ctx, c))
	got, err := s.ChallengeByID(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, c, got)
	_, err = s.ChallengeByID(ctx, "nope")
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	for want := 1; want <= 3; want++ {
		n, ok, err := s.RecordChallengeFailure(ctx, c.ID, 3, userT0)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, want, n)
	}
	_, ok, err := s.RecordChallengeFailure(ctx, c.ID, 3, userT0)
	require.NoError(t, err)
	require.False(t, ok, "burned at the limit")
	got, err = s.ChallengeByID(ctx, c.ID)
	require.NoError(t, err)
	require.NotNil(t, got.ConsumedAt)

	c2 := c
	c2.ID, c2.WebAuthnState = core.NewID(), nil
	require.NoError(t, s.InsertChallenge(ctx, c2))
	ok, err = s.ConsumeChallenge(ctx, c2.ID, c2.ExpiresAt)
	require.NoError(t, err)
	require.False(t, ok, "expired")
	for _, want := range []bool{true, false} {
		ok, err = s.ConsumeChallenge(ctx, c2.ID, userT0)
		require.NoError(t, err)
		require.Equal(t, want, ok)
	}
	c3 := c2
	c3.ID = core.NewID()
	require.NoError(t, s.InsertChallenge(ctx, c3))
	require.NoError(t, s.BurnChallengesOfUser(ctx, u.ID, userT0))
	ok, err = s.ConsumeChallenge(ctx, c3.ID, userT0)
	require.NoError(t, err)
	require.False(t, ok)
}
