package storetest

import (
	"testing"

	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testKeys(t *testing.T, open dbtest.Opener) {
	_ = open(t)
}
