package keys_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/persistence"
)

var sharedDialects = []string{"postgres", "sqlite"}

// TestConcurrentRotateOneWins starts two instances on one database and has
// them rotate at the same moment: exactly one rotation may happen.
func TestConcurrentRotateOneWins(t *testing.T) {
	for _, dialect := range sharedDialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			dbA, dbB := sharedDBs(t, dialect)
			master := newMaster(t)
			a := initService(t, dbA, master, nil)
			b := initService(t, dbB, master, nil)

			for round := 1; round <= 3; round++ {
				var wg sync.WaitGroup
				start := make(chan struct{})
				errs := make([]error, 2)
				for i, svc := range []*keys.Service{a, b} {
					wg.Go(func() {
						<-start
						_, errs[i] = svc.Rotate(ctx)
					})
				}
				close(start)
				wg.Wait()

				wins := 0
				for _, err := range errs {
					if err == nil {
						wins++
						continue
					}
					require.True(t, core.IsKind(err, core.KindConflict), "loser gets a conflict: %v", err)
					require.Equal(t, core.CodeStateConflict, core.CodeOf(err))
				}
				require.Equal(t, 1, wins, "round %d", round)
				ks := listKeys(t, dbA)
				require.Len(t, ks[keys.StateActive], 1)
				require.Len(t, ks[keys.StateNext], 1)
				require.Len(t, ks[keys.StateRetired], round)
				require.Len(t, rotatedEvents(t, dbA), round)

				// Both instances end on the same keyring (the loser reloaded).
				docA, tagA := a.JWKS()
				docB, tagB := b.JWKS()
				require.Equal(t, docA, docB)
				require.Equal(t, tagA, tagB)
			}
		})
	}
}

// TestConcurrentInitCreatesOneKeyring starts two instances on an empty
// database at once: one creates the keys, the other adopts them.
func TestConcurrentInitCreatesOneKeyring(t *testing.T) {
	for _, dialect := range sharedDialects {
		t.Run(dialect, func(t *testing.T) {
			dbA, dbB := sharedDBs(t, dialect)
			master := newMaster(t)
			svcs := []*keys.Service{
				newService(t, persistence.NewKeyStore(dbA), master, nil, keys.Config{}),
				newService(t, persistence.NewKeyStore(dbB), master, nil, keys.Config{}),
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, svc := range svcs {
				wg.Go(func() { errs[i] = svc.Init(context.Background()) })
			}
			wg.Wait()
			require.NoError(t, errs[0])
			require.NoError(t, errs[1])
			ks := listKeys(t, dbA)
			require.Len(t, ks[keys.StateActive], 1)
			require.Len(t, ks[keys.StateNext], 1)
			require.Empty(t, ks[keys.StateRetired])
			docA, _ := svcs[0].JWKS()
			docB, _ := svcs[1].JWKS()
			require.Equal(t, docA, docB)
		})
	}
}

// TestScheduledRotationHappensOnce runs two instances' Run loops on one
// database and moves the clock past the cron time.
func TestScheduledRotationHappensOnce(t *testing.T) {
	cases := []struct {
		name     string
		start    time.Time     // when the keyring is created and Run starts
		advance  time.Duration // then the clock jumps by this much
		rotation int           // rotations expected
	}{
		// Quarterly cron: the next firing after 2025-11-01 is 2026-01-01.
		{"due after two months", time.Date(2025, 11, 1, 9, 0, 0, 0, time.UTC), 61*24*time.Hour - 9*time.Hour + 30*time.Second, 1},
		// Keys created 12 days before the firing: younger than half a period.
		{"skipped for a recent key", time.Date(2025, 12, 20, 0, 0, 0, 0, time.UTC), 12*24*time.Hour + 30*time.Second, 0},
	}
	for _, dialect := range sharedDialects {
		for _, tc := range cases {
			t.Run(dialect+"/"+tc.name, func(t *testing.T) {
				dbA, dbB := sharedDBs(t, dialect)
				master := newMaster(t)
				clock := core.NewFixedClock(tc.start)
				cfg := keys.Config{RefreshEvery: 5 * time.Millisecond}
				var svcs []*keys.Service
				for _, db := range []*persistence.DB{dbA, dbB} {
					svc := newService(t, persistence.NewKeyStore(db), master, clock, cfg)
					require.NoError(t, svc.Init(context.Background()))
					svcs = append(svcs, svc)
				}
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				for _, svc := range svcs {
					wg.Go(func() { svc.Run(ctx) })
				}
				t.Cleanup(func() { cancel(); wg.Wait() })

				time.Sleep(50 * time.Millisecond) // both loops have computed their first firing
				clock.Advance(tc.advance)
				if tc.rotation > 0 {
					require.Eventually(t, func() bool { return len(rotatedEvents(t, dbA)) >= tc.rotation },
						10*time.Second, 10*time.Millisecond)
				}
				time.Sleep(200 * time.Millisecond) // give a duplicate rotation every chance to appear
				require.Len(t, rotatedEvents(t, dbA), tc.rotation)
				require.Len(t, listKeys(t, dbA)[keys.StateRetired], tc.rotation)

				// Periodic refresh makes both instances converge.
				require.Eventually(t, func() bool {
					a, _ := svcs[0].JWKS()
					b, _ := svcs[1].JWKS()
					return string(a) == string(b)
				}, 10*time.Second, 10*time.Millisecond)
			})
		}
	}
}
