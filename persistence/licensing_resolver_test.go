package persistence_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestLicensingResolverStoreSmoke(t *testing.T) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := persistence.NewLicensingResolverStore(open(t))
			mods, err := s.Modules(ctx)
			require.NoError(t, err)
			require.Len(t, mods, 3)
			for _, m := range mods {
				require.True(t, m.IsAlwaysOn)
			}
			as, err := s.AssignmentsAt(ctx, "11111111-1111-4111-8111-111111111111", []string{"a", "b"})
			require.NoError(t, err)
			require.Empty(t, as)
		})
	}
}
