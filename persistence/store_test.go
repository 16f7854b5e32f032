package persistence_test

import (
	"testing"

	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
	"github.com/ghasi-ehealth/identity-service/persistence/storetest"
)

// TestConformance runs the storage conformance suite on every dialect.
func TestConformance(t *testing.T) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) { storetest.Run(t, open) })
	}
}
