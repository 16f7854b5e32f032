package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/mfa/passkey"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testPasskeys(t *testing.T, open dbtest.Opener) {
	t.Run("credentials", func(t *testing.T) { testPasskeyCredentials(t, open(t)) })
	t.Run("counter", func(t *testing.T) { testPasskeyCounter(t, open(t)) })
	t.Run("ceremonies", func(t *testing.T) { testPasskeyCeremonies(t, open(t)) })
	t.Run("concurrent ceremony consume", func(t *testing.T) { testPasskeyConcurrentConsume(t, open(t)) })
}

func passkeyUser(t *testing.T, db *persistence.DB, slug string) user.User {
	t.Helper()
	u := userFixture(userTestTenant(t, db, slug, false), slug+"@example.org", user.StatusActive)
	require.NoError(t, persistence.NewUserStore(db).InsertUser(context.Background(), u))
	return u
}

func passkeyCredential(userID string, id byte, at time.Time) passkey.Credential {
	return passkey.Credential{FactorID: core.NewID(), UserID: userID, CredentialID: []byte{id, 1, 2, 3},
		PublicKey: []byte{0xa5, id}, SignCount: 7, AAGUID: make([]byte, 16), Transports: []string{"internal", "hybrid"},
		AttestationType: "self", CreatedAt: at, VerifiedAt: at}
}

func testPasskeyCredentials(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewPasskeyStore(db)
	u := passkeyUser(t, db, "pk")

	acc, err := s.PasskeyAccount(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, passkey.Account{ID: u.ID, TenantID: u.TenantID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName}, acc)
	for _, id := range []string{core.NewID(), "nope"} {
		_, err = s.PasskeyAccount(ctx, id)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err))
	}

	a, b := passkeyCredential(u.ID, 1, userT0), passkeyCredential(u.ID, 2, userT0.Add(time.Minute))
	b.Transports = nil
	eligible := true
	b.BackupEligible, b.BackupState = &eligible, true // a synced passkey; a keeps unknown flags
	require.NoError(t, s.InTx(ctx, func(ctx context.Context) error {
		require.NoError(t, s.LockPasskeys(ctx, u.ID))
		require.NoError(t, s.InsertPasskey(ctx, a))
		return s.InsertPasskey(ctx, b)
	}))
	got, err := s.PasskeyCredentials(ctx, u.ID)
	require.NoError(t, err)
	b.Transports = []string{}
	require.Equal(t, []passkey.Credential{a, b}, got)
	n, err := s.CountPasskeys(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	dup := passkeyCredential(u.ID, 1, userT0)
	require.Equal(t, core.KindConflict, core.KindOf(s.InsertPasskey(ctx, dup)), "credential id is unique")
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertPasskey(ctx, passkeyCredential(core.NewID(), 3, userT0))))

	require.Equal(t, core.KindInternal, core.KindOf(s.LockPasskeys(ctx, u.ID)), "outside a transaction")
	err = s.InTx(ctx, func(ctx context.Context) error { return s.LockPasskeys(ctx, core.NewID()) })
	require.Equal(t, core.KindNotFound, core.KindOf(err))

	// Other users and TOTP factors do not count.
	other := passkeyUser(t, db, "pk2")
	n, err = s.CountPasskeys(ctx, other.ID)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = db.Bun().ExecContext(ctx, `INSERT INTO mfa_factors (id, user_id, type, created_at, verified_at) VALUES (?, ?, 'totp', ?, ?)`,
		core.NewID(), u.ID, userT0, userT0)
	require.NoError(t, err)
	n, err = s.CountPasskeys(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

func testPasskeyCounter(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewPasskeyStore(db)
	u := passkeyUser(t, db, "ctr")
	c := passkeyCredential(u.ID, 9, userT0)
	c.SignCount = 0
	require.NoError(t, s.InsertPasskey(ctx, c))
	later := userT0.Add(time.Hour)

	flags := passkey.Flags{BackupEligible: true, BackupState: true}
	advance := func(count uint32) bool {
		ok, err := s.AdvancePasskeyCounter(ctx, c.FactorID, count, flags, later)
		require.NoError(t, err)
		return ok
	}
	require.True(t, advance(0), "0 → 0: no counter")
	require.True(t, advance(3))
	require.False(t, advance(3), "equal")
	require.False(t, advance(2), "lower")
	require.False(t, advance(0), "reset")
	// Unknown backup eligibility is recorded once; the backup state follows
	// every accepted assertion.
	flags = passkey.Flags{BackupEligible: false, BackupState: false}
	require.True(t, advance(4))
	ok, err := s.AdvancePasskeyCounter(ctx, core.NewID(), 10, flags, later)
	require.NoError(t, err)
	require.False(t, ok)

	got, err := s.PasskeyCredentials(ctx, u.ID)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, uint32(4), got[0].SignCount)
	require.NotNil(t, got[0].BackupEligible)
	require.True(t, *got[0].BackupEligible, "recorded by the first accepted assertion, then kept")
	require.False(t, got[0].BackupState, "follows the last accepted assertion")
	require.NotNil(t, got[0].LastUsedAt)
	require.Equal(t, later, *got[0].LastUsedAt)
}

func testPasskeyCeremonies(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewPasskeyStore(db)
	u, other := passkeyUser(t, db, "cer"), passkeyUser(t, db, "cer2")
	c := passkey.Ceremony{ID: core.NewID(), UserID: u.ID, State: []byte(`{"challenge":"x"}`), CreatedAt: userT0,
		ExpiresAt: userT0.Add(5 * time.Minute)}
	require.NoError(t, s.InsertPasskeyCeremony(ctx, c))
	require.Equal(t, core.KindConflict, core.KindOf(s.InsertPasskeyCeremony(ctx, c)))
	orphan := c
	orphan.ID, orphan.UserID = core.NewID(), core.NewID()
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertPasskeyCeremony(ctx, orphan)))

	_, err := s.ConsumePasskeyCeremony(ctx, c.ID, other.ID, userT0)
	require.Equal(t, core.CodeNotFound, core.CodeOf(err), "someone else's")
	_, err = s.ConsumePasskeyCeremony(ctx, c.ID, u.ID, c.ExpiresAt)
	require.Equal(t, core.CodeNotFound, core.CodeOf(err), "expired")
	state, err := s.ConsumePasskeyCeremony(ctx, c.ID, u.ID, userT0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, c.State, state)
	_, err = s.ConsumePasskeyCeremony(ctx, c.ID, u.ID, userT0.Add(time.Minute))
	require.Equal(t, core.CodeNotFound, core.CodeOf(err), "used")
	for _, id := range []string{core.NewID(), "nope"} {
		_, err = s.ConsumePasskeyCeremony(ctx, id, u.ID, userT0)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err))
	}
}

func testPasskeyConcurrentConsume(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewPasskeyStore(db)
	u := passkeyUser(t, db, "cc")
	c := passkey.Ceremony{ID: core.NewID(), UserID: u.ID, State: []byte(`{}`), CreatedAt: userT0, ExpiresAt: userT0.Add(time.Hour)}
	require.NoError(t, s.InsertPasskeyCeremony(ctx, c))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.ConsumePasskeyCeremony(ctx, c.ID, u.ID, userT0); err == nil {
				wins.Add(1)
			} else if core.KindOf(err) != core.KindNotFound {
				t.Errorf("consume: %v", err)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int32(1), wins.Load())
}
