package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// testKeys is the conformance suite of persistence.KeyStore (keys.Store).
func testKeys(t *testing.T, open dbtest.Opener) {
	t.Run("insert and list round-trip every column", func(t *testing.T) {
		ctx := context.Background()
		st := persistence.NewKeyStore(open(t))
		t0 := time.Date(2026, 3, 1, 12, 30, 45, 123456000, time.UTC)
		act := t0.Add(time.Hour)
		ret := t0.Add(2 * time.Hour)
		pu := t0.Add(7 * 24 * time.Hour)
		retired := storedKey(keys.PurposeJWT, keys.StateRetired, t0)
		retired.ActivatedAt, retired.RetiredAt, retired.PublishUntil = &act, &ret, &pu
		active := storedKey(keys.PurposeJWT, keys.StateActive, t0.Add(time.Minute))
		active.ActivatedAt = &act
		next := storedKey(keys.PurposeJWT, keys.StateNext, t0.Add(2*time.Minute))
		other := storedKey(keys.PurposeDeviceCA, keys.StateActive, t0)
		for _, k := range []keys.StoredKey{retired, active, next, other} {
			require.NoError(t, st.InsertKey(ctx, k))
		}

		got, err := st.ListKeys(ctx, keys.PurposeJWT)
		require.NoError(t, err)
		require.Len(t, got, 3)
		require.Equal(t, []keys.StoredKey{retired, active, next}, normalize(got), "oldest first, all columns intact")

		got, err = st.ListKeys(ctx, keys.PurposeDeviceCA)
		require.NoError(t, err)
		require.Equal(t, []keys.StoredKey{other}, normalize(got), "purposes are separate keyrings")

		none, err := st.ListKeys(ctx, keys.Purpose("unknown"))
		require.NoError(t, err)
		require.Empty(t, none)
	})

	t.Run("transition sets the state's timestamps", func(t *testing.T) {
		ctx := context.Background()
		st := persistence.NewKeyStore(open(t))
		t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		active := storedKey(keys.PurposeJWT, keys.StateActive, t0)
		active.ActivatedAt = &t0
		next := storedKey(keys.PurposeJWT, keys.StateNext, t0)
		require.NoError(t, st.InsertKey(ctx, active))
		require.NoError(t, st.InsertKey(ctx, next))

		at := t0.Add(90 * 24 * time.Hour)
		pu := at.Add(7 * 24 * time.Hour)
		err := st.InTx(ctx, func(ctx context.Context) error {
			ok, err := st.TransitionKey(ctx, active.KID, keys.StateActive, keys.StateRetired, at, &pu)
			require.NoError(t, err)
			require.True(t, ok)
			ok, err = st.TransitionKey(ctx, next.KID, keys.StateNext, keys.StateActive, at, nil)
			require.NoError(t, err)
			require.True(t, ok)
			return nil
		})
		require.NoError(t, err)

		got := byKID(t, st, keys.PurposeJWT)
		require.Equal(t, keys.StateRetired, got[active.KID].State)
		require.True(t, at.Equal(*got[active.KID].RetiredAt))
		require.True(t, pu.Equal(*got[active.KID].PublishUntil))
		require.True(t, t0.Equal(*got[active.KID].ActivatedAt), "activation time is kept")
		require.Equal(t, keys.StateActive, got[next.KID].State)
		require.True(t, at.Equal(*got[next.KID].ActivatedAt))
		require.Nil(t, got[next.KID].RetiredAt)
	})

	t.Run("conditional transition loses when the state changed", func(t *testing.T) {
		ctx := context.Background()
		st := persistence.NewKeyStore(open(t))
		now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		k := storedKey(keys.PurposeJWT, keys.StateActive, now)
		k.ActivatedAt = &now
		require.NoError(t, st.InsertKey(ctx, k))
		pu := now.Add(time.Hour)

		ok, err := st.TransitionKey(ctx, k.KID, keys.StateActive, keys.StateRetired, now, &pu)
		require.NoError(t, err)
		require.True(t, ok, "first transition wins")
		ok, err = st.TransitionKey(ctx, k.KID, keys.StateActive, keys.StateRetired, now.Add(time.Minute), &pu)
		require.NoError(t, err)
		require.False(t, ok, "second transition from the old state matches nothing")
		ok, err = st.TransitionKey(ctx, "no-such-kid", keys.StateNext, keys.StateActive, now, nil)
		require.NoError(t, err)
		require.False(t, ok, "unknown kid")

		got := byKID(t, st, keys.PurposeJWT)
		require.True(t, now.Equal(*got[k.KID].RetiredAt), "the losing call changed nothing")
	})

	t.Run("racing transitions: the second waits and then loses", func(t *testing.T) {
		ctx := context.Background()
		st := persistence.NewKeyStore(open(t))
		now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		k := storedKey(keys.PurposeJWT, keys.StateActive, now)
		require.NoError(t, st.InsertKey(ctx, k))
		pu := now.Add(time.Hour)

		firstDone := make(chan struct{})
		holding := make(chan struct{})
		results := make(chan bool, 2)
		errs := make(chan error, 2)
		go func() {
			defer close(firstDone)
			errs <- st.InTx(ctx, func(ctx context.Context) error {
				ok, err := st.TransitionKey(ctx, k.KID, keys.StateActive, keys.StateRetired, now, &pu)
				results <- ok
				close(holding)
				time.Sleep(100 * time.Millisecond) // keep the row locked while the other one starts
				return err
			})
		}()
		<-holding
		errs <- st.InTx(ctx, func(ctx context.Context) error {
			ok, err := st.TransitionKey(ctx, k.KID, keys.StateActive, keys.StateRetired, now.Add(time.Minute), &pu)
			results <- ok
			return err
		})
		<-firstDone
		require.NoError(t, <-errs)
		require.NoError(t, <-errs)
		require.True(t, <-results, "the first transition wins")
		require.False(t, <-results, "the second sees the committed state and matches nothing")
		require.True(t, now.Equal(*byKID(t, st, keys.PurposeJWT)[k.KID].RetiredAt))
	})

	t.Run("only one active and one next key per purpose", func(t *testing.T) {
		ctx := context.Background()
		st := persistence.NewKeyStore(open(t))
		now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		a1 := storedKey(keys.PurposeJWT, keys.StateActive, now)
		n1 := storedKey(keys.PurposeJWT, keys.StateNext, now)
		require.NoError(t, st.InsertKey(ctx, a1))
		require.NoError(t, st.InsertKey(ctx, n1))

		err := st.InsertKey(ctx, storedKey(keys.PurposeJWT, keys.StateActive, now))
		require.True(t, core.IsKind(err, core.KindConflict), "second active: %v", err)
		err = st.InsertKey(ctx, storedKey(keys.PurposeJWT, keys.StateNext, now))
		require.True(t, core.IsKind(err, core.KindConflict), "second next: %v", err)
		dup := storedKey(keys.PurposeJWT, keys.StateRetired, now)
		dup.KID = a1.KID
		err = st.InsertKey(ctx, dup)
		require.True(t, core.IsKind(err, core.KindConflict), "duplicate kid: %v", err)

		// Promoting next while the active key is still active breaks the index.
		err = st.InTx(ctx, func(ctx context.Context) error {
			_, err := st.TransitionKey(ctx, n1.KID, keys.StateNext, keys.StateActive, now, nil)
			return err
		})
		require.True(t, core.IsKind(err, core.KindConflict), "second active by transition: %v", err)

		// Other purposes and retired keys are not limited.
		require.NoError(t, st.InsertKey(ctx, storedKey(keys.PurposeDeviceCA, keys.StateActive, now)))
		require.NoError(t, st.InsertKey(ctx, storedKey(keys.PurposeJWT, keys.StateRetired, now)))
		require.NoError(t, st.InsertKey(ctx, storedKey(keys.PurposeJWT, keys.StateRetired, now)))
		require.Len(t, byKID(t, st, keys.PurposeJWT), 4)
	})

	t.Run("writes in a failed transaction roll back", func(t *testing.T) {
		ctx := context.Background()
		st := persistence.NewKeyStore(open(t))
		now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		boom := errors.New("boom")
		err := st.InTx(ctx, func(ctx context.Context) error {
			require.NoError(t, st.InsertKey(ctx, storedKey(keys.PurposeJWT, keys.StateActive, now)))
			require.NoError(t, st.AddEvents(ctx, core.NewEvent(now, keys.EventJWKSRotated, "kid", "", keys.RotatedData{})))
			return boom
		})
		require.ErrorIs(t, err, boom)
		require.Empty(t, byKID(t, st, keys.PurposeJWT))
		var n int
		require.NoError(t, st.Bun().NewRaw(`SELECT COUNT(*) FROM events`).Scan(ctx, &n))
		require.Zero(t, n)
	})
}

// storedKey returns a key row with random (unparsed) key material; the store
// treats key bytes as opaque.
func storedKey(p keys.Purpose, s keys.State, created time.Time) keys.StoredKey {
	pub := make([]byte, 294)
	wrapped := make([]byte, 1250)
	_, _ = rand.Read(pub)
	_, _ = rand.Read(wrapped)
	return keys.StoredKey{
		KID:               core.RandomToken(32),
		Purpose:           p,
		Algorithm:         keys.AlgRS256,
		State:             s,
		PublicKey:         pub,
		PrivateKeyWrapped: wrapped,
		CreatedAt:         created,
	}
}

// normalize drops location differences so rows compare with require.Equal.
func normalize(ks []keys.StoredKey) []keys.StoredKey {
	for i := range ks {
		ks[i].CreatedAt = ks[i].CreatedAt.UTC()
		for _, p := range []**time.Time{&ks[i].ActivatedAt, &ks[i].RetiredAt, &ks[i].PublishUntil} {
			if *p != nil {
				u := (**p).UTC()
				*p = &u
			}
		}
	}
	return ks
}

func byKID(t *testing.T, st *persistence.KeyStore, p keys.Purpose) map[string]keys.StoredKey {
	t.Helper()
	ks, err := st.ListKeys(context.Background(), p)
	require.NoError(t, err)
	m := make(map[string]keys.StoredKey, len(ks))
	for _, k := range ks {
		m[k.KID] = k
	}
	return m
}
