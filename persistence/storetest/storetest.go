// Package storetest is the storage conformance suite: the same tests run
// against every backend (SQLite always, Postgres when reachable), so the
// dialects cannot drift apart. Each area adds a function to suites.
package storetest

import (
	"testing"

	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// suites lists the conformance tests by area.
var suites = []struct {
	name string
	run  func(t *testing.T, open dbtest.Opener)
}{
	{"keys", testKeys},
	{"events", testEvents},
	{"directory", testDirectory},
	{"users", testUsers},
	{"tenancy", testTenancy},
	{"sessions", testSessions},
	{"mfa", testMFA},
	{"passkeys", testPasskeys},
	{"apikeys", testAPIKeys},
	{"service accounts", testServiceAccounts},
	{"licensing", testLicensing},
	{"devices", testDevices},
	{"federation", testFederation},
	{"retention", testRetention},
}

// Run runs the whole conformance suite against the backend open returns.
func Run(t *testing.T, open dbtest.Opener) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) { s.run(t, open) })
	}
}
