package persistence_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// TestFetchUnpublishedSkipsLockedRows shows why several relays can share a
// Postgres outbox: rows one transaction fetched are invisible to another
// until the first ends, and the second does not wait for them.
func TestFetchUnpublishedSkipsLockedRows(t *testing.T) {
	db := dbtest.Postgres(t)
	ctx := context.Background()
	now := time.Now().UTC()
	require.NoError(t, db.InTx(ctx, func(ctx context.Context) error {
		for range 5 {
			if err := db.AddEvents(ctx, core.NewEvent(now, "identity.test.v1", "s", "", map[string]any{})); err != nil {
				return err
			}
		}
		return nil
	}))

	locked := make(chan []persistence.StoredEvent)
	release := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- db.InTx(ctx, func(ctx context.Context) error {
			evs, err := db.FetchUnpublished(ctx, 3)
			if err != nil {
				return err
			}
			locked <- evs
			<-release
			return nil
		})
	}()
	first := <-locked
	require.Len(t, first, 3)

	fetchCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, db.InTx(fetchCtx, func(ctx context.Context) error {
		second, err := db.FetchUnpublished(ctx, 10)
		require.NoError(t, err, "must not block on the locked rows")
		require.Len(t, second, 2)
		for _, e := range second {
			require.Greater(t, e.Seq, first[2].Seq)
		}
		return nil
	}))
	close(release)
	require.NoError(t, <-done)
}
