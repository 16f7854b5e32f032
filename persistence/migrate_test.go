package persistence_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestMigrateIsIdempotent(t *testing.T) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) {
			db := open(t) // applies every migration once
			again, err := db.Migrate(context.Background())
			require.NoError(t, err)
			require.Empty(t, again, "a second run applies nothing")
		})
	}
}
