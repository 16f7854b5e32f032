package storetest

import (
	"testing"

	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testDirectory(t *testing.T, open dbtest.Opener) {
	_ = open(t)
}
