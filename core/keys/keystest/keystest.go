// Package keystest builds the signing keyring tests need: a random master
// key and an initialised keys.Service on a test database.
package keystest

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/persistence"
)

// New returns an initialised keyring on db (active and next keys) sealed by
// a fresh random master key, which it returns too (for derived secrets).
func New(tb testing.TB, db *persistence.DB, clock core.Clock) (*keys.Service, *keys.MasterKey) {
	tb.Helper()
	b := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(b)
	master, err := keys.NewMasterKey(b)
	require.NoError(tb, err)
	ks, err := keys.NewService(persistence.NewKeyStore(db), master, clock, nil, nil, keys.Config{})
	require.NoError(tb, err)
	require.NoError(tb, ks.Init(context.Background()))
	return ks, master
}
