package keys_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// countingStore counts the keyring reads (one per reload).
type countingStore struct {
	keys.Store
	lists atomic.Int64
}

func (s *countingStore) ListKeys(ctx context.Context, p keys.Purpose) ([]keys.StoredKey, error) {
	s.lists.Add(1)
	return s.Store.ListKeys(ctx, p)
}

// TestVerificationKeyCatchesUpWithAnotherInstance: two instances share a
// store; b learns of a's rotations from the kids of the tokens it verifies,
// not one refresh period later.
func TestVerificationKeyCatchesUpWithAnotherInstance(t *testing.T) {
	ctx := context.Background()
	db := dbtest.SQLite(t)
	master := newMaster(t)
	a := initService(t, db, master, nil)
	b := initService(t, db, master, nil)
	signerKID := func(s *keys.Service) string {
		sg, err := s.Signer()
		require.NoError(t, err)
		return sg.KID()
	}

	// One rotation: the new active key is b's next key, so b verifies it
	// anyway; seeing it used tells b to stop signing with the retired key.
	k1, err := a.Rotate(ctx)
	require.NoError(t, err)
	require.NotEqual(t, k1.KID, signerKID(b))
	_, ok := b.VerificationKey(ctx, k1.KID)
	require.True(t, ok)
	require.Equal(t, k1.KID, signerKID(b))

	// Two rotations: the second promotes a key b has never loaded.
	_, err = a.Rotate(ctx)
	require.NoError(t, err)
	k3, err := a.Rotate(ctx)
	require.NoError(t, err)
	_, ok = b.PublicKey(k3.KID)
	require.False(t, ok, "b has not reloaded")
	pub, ok := b.VerificationKey(ctx, k3.KID)
	require.True(t, ok)
	want, _ := a.PublicKey(k3.KID)
	require.True(t, want.Equal(pub))
	docA, _ := a.JWKS()
	docB, _ := b.JWKS()
	require.Equal(t, jwksKids(t, docA), jwksKids(t, docB), "b publishes what a does")
	require.Equal(t, k3.KID, signerKID(b))
}

// TestVerificationKeyThrottlesUnknownKids: a flood of unknown kids costs a
// bounded number of reloads, and a real new key still verifies right after.
func TestVerificationKeyThrottlesUnknownKids(t *testing.T) {
	ctx := context.Background()
	db := dbtest.SQLite(t)
	master := newMaster(t)
	a := initService(t, db, master, nil)
	store := &countingStore{Store: persistence.NewKeyStore(db)}
	b := newService(t, store, master, nil, keys.Config{})
	require.NoError(t, b.Init(ctx))
	before := store.lists.Load()

	const flood = 300 * time.Millisecond
	start := time.Now()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; time.Since(start) < flood; i++ {
				_, ok := b.VerificationKey(ctx, fmt.Sprintf("forged-%d-%d", g, i))
				assert.False(t, ok)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	reloads := store.lists.Load() - before
	// A burst of 5, then 10 a second.
	require.LessOrEqual(t, reloads, 5+int64(elapsed.Seconds()*10)+1, "reloads during %s", elapsed)
	require.GreaterOrEqual(t, reloads, int64(1))

	// Once the flood stops, the bucket refills: a real new key verifies.
	time.Sleep(150 * time.Millisecond)
	_, err := a.Rotate(ctx)
	require.NoError(t, err)
	k2, err := a.Rotate(ctx)
	require.NoError(t, err)
	_, ok := b.VerificationKey(ctx, k2.KID)
	require.True(t, ok)

	// Concurrent callers with the new kid all see it (sharing reloads).
	_, err = a.Rotate(ctx)
	require.NoError(t, err)
	k4, err := a.Rotate(ctx)
	require.NoError(t, err)
	before = store.lists.Load()
	var accepted atomic.Int64
	for range 20 {
		wg.Go(func() {
			if _, ok := b.VerificationKey(ctx, k4.KID); ok {
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 20, accepted.Load())
	require.LessOrEqual(t, store.lists.Load()-before, int64(5), "within the burst")
}
