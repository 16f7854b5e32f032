package passkey_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/mfa/passkey"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
	"github.com/ghasi-ehealth/identity-service/telemetry"
	"github.com/ghasi-ehealth/identity-service/telemetry/telemetrytest"
)

func TestNewServiceValidatesConfig(t *testing.T) {
	store := persistence.NewPasskeyStore(nil)
	clock := core.NewFixedClock(testT0())
	for name, cfg := range map[string]passkey.Config{
		"no rp id":      {RPOrigins: []string{testOrigin}},
		"no origins":    {RPID: testRPID},
		"origin path":   {RPID: testRPID, RPOrigins: []string{"http://localhost:8080/app"}},
		"origin scheme": {RPID: testRPID, RPOrigins: []string{"ftp://localhost"}},
		"bad rp id":     {RPID: "http://localhost", RPOrigins: []string{testOrigin}},
	} {
		_, err := passkey.NewService(store, clock, cfg)
		require.Error(t, err, name)
	}
	_, err := passkey.NewService(store, clock, passkey.Config{RPID: "identity.ghasi-ehealth.af",
		RPOrigins: []string{"https://identity.ghasi-ehealth.af", "https://admin.ghasi-ehealth.af/"}})
	require.NoError(t, err)
}

func TestRegisterAndAssert(t *testing.T) {
	forEachDialect(t, func(t *testing.T, f *fixture) {
		opts, err := f.svc.RegisterOptions(f.ctx)
		require.NoError(t, err)
		var doc struct {
			PublicKey struct {
				RP                     struct{ ID, Name string }
				User                   struct{ ID string }
				AuthenticatorSelection struct {
					ResidentKey      string `json:"residentKey"`
					UserVerification string `json:"userVerification"`
				} `json:"authenticatorSelection"`
				ExcludeCredentials []any `json:"excludeCredentials"`
			} `json:"publicKey"`
		}
		require.NoError(t, json.Unmarshal(opts, &doc))
		require.Equal(t, testRPID, doc.PublicKey.RP.ID)
		require.Equal(t, "Ghasi eHealth", doc.PublicKey.RP.Name)
		require.Equal(t, "preferred", doc.PublicKey.AuthenticatorSelection.ResidentKey, "discoverable credentials allowed")
		require.Equal(t, "preferred", doc.PublicKey.AuthenticatorSelection.UserVerification)
		require.Empty(t, doc.PublicKey.ExcludeCredentials)

		auth := virtualwebauthn.NewAuthenticator()
		cred := newCredential(t)
		factor, err := f.svc.Register(f.ctx, attest(t, opts, goodRP(), auth, cred))
		require.NoError(t, err)
		require.True(t, core.ValidID(factor.ID))
		require.Equal(t, f.clock.Now(), factor.VerifiedAt)
		auth.AddCredential(cred)

		n, err := f.svc.CredentialCount(context.Background(), f.user.ID)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		envs := eventtest.RequireValidStored(t, f.db, passkey.EventMFAEnrolled)
		require.Len(t, envs, 1)
		require.Equal(t, f.user.ID, envs[0].Subject)
		data := map[string]any{}
		raw, _ := json.Marshal(envs[0].Data)
		require.NoError(t, json.Unmarshal(raw, &data))
		require.Equal(t, map[string]any{"userId": f.user.ID, "tenantId": f.user.TenantID, "method": "webauthn"}, data)

		// The next options exclude the registered credential.
		opts, err = f.svc.RegisterOptions(f.ctx)
		require.NoError(t, err)
		parsed, err := virtualwebauthn.ParseAttestationOptions(string(opts))
		require.NoError(t, err)
		require.True(t, cred.IsExcludedForAttestation(*parsed))

		// Assertion: options allow the credential; the counter advances.
		aopts, state, err := f.svc.BeginAssertion(context.Background(), f.user.ID)
		require.NoError(t, err)
		require.Contains(t, string(aopts), `"publicKey"`)
		require.Contains(t, string(aopts), base64.RawURLEncoding.EncodeToString(cred.ID))
		auth.Credentials[0].Counter = 1
		require.NoError(t, f.svc.FinishAssertion(context.Background(), f.user.ID, state,
			assert(t, aopts, goodRP(), auth, auth.Credentials[0])))
		auth.Credentials[0].Counter = 2
		require.NoError(t, f.login(t, goodRP(), auth, auth.Credentials[0]))

		// An authenticator without a counter (always 0) keeps working.
		auth2 := virtualwebauthn.NewAuthenticator()
		cred2 := f.mustRegister(t, auth2)
		require.NoError(t, f.login(t, goodRP(), auth2, cred2))
		require.NoError(t, f.login(t, goodRP(), auth2, cred2))

		_, _, err = f.svc.BeginAssertion(context.Background(), newUser(t, f.db, "other").ID)
		requireCode(t, err, core.CodeNotFound, core.KindNotFound)
	})
}

func TestCredentialLimit(t *testing.T) {
	forEachDialect(t, func(t *testing.T, f *fixture) {
		auth := virtualwebauthn.NewAuthenticator()
		for range passkey.MaxCredentials - 1 {
			f.mustRegister(t, auth)
		}
		// Two option sets taken while the user still had 4 credentials.
		early, err := f.svc.RegisterOptions(f.ctx)
		require.NoError(t, err)
		f.mustRegister(t, auth) // the 5th

		_, err = f.svc.RegisterOptions(f.ctx)
		requireCode(t, err, core.CodeMFACredentialLimit, core.KindUnprocessable)
		// The limit is re-checked when the credential is stored.
		_, err = f.svc.Register(f.ctx, attest(t, early, goodRP(), auth, newCredential(t)))
		requireCode(t, err, core.CodeMFACredentialLimit, core.KindUnprocessable)

		n, err := f.svc.CredentialCount(context.Background(), f.user.ID)
		require.NoError(t, err)
		require.Equal(t, passkey.MaxCredentials, n)
	})
}

func TestRegisterRejections(t *testing.T) {
	forEachDialect(t, func(t *testing.T, f *fixture) {
		auth := virtualwebauthn.NewAuthenticator()
		cred := newCredential(t)

		// Wrong origin: rejected, and the challenge is spent.
		opts, err := f.svc.RegisterOptions(f.ctx)
		require.NoError(t, err)
		evil := goodRP()
		evil.Origin = "https://evil.example"
		_, err = f.svc.Register(f.ctx, attest(t, opts, evil, auth, cred))
		requireCode(t, err, core.CodeValidation, core.KindInvalid)
		_, err = f.svc.Register(f.ctx, attest(t, opts, goodRP(), auth, cred))
		requireCode(t, err, core.CodeValidation, core.KindInvalid)

		// Wrong RP ID.
		opts, err = f.svc.RegisterOptions(f.ctx)
		require.NoError(t, err)
		otherRP := goodRP()
		otherRP.ID = "evil.example"
		_, err = f.svc.Register(f.ctx, attest(t, opts, otherRP, auth, cred))
		requireCode(t, err, core.CodeValidation, core.KindInvalid)

		// Reused challenge: the same response, then a fresh credential on
		// the same options.
		opts, err = f.svc.RegisterOptions(f.ctx)
		require.NoError(t, err)
		resp := attest(t, opts, goodRP(), auth, cred)
		_, err = f.svc.Register(f.ctx, resp)
		require.NoError(t, err)
		_, err = f.svc.Register(f.ctx, resp)
		requireCode(t, err, core.CodeValidation, core.KindInvalid)
		require.Contains(t, core.AsError(err).Fields, "challenge")
		_, err = f.svc.Register(f.ctx, attest(t, opts, goodRP(), auth, newCredential(t)))
		requireCode(t, err, core.CodeValidation, core.KindInvalid)

		// Expired options.
		opts, err = f.svc.RegisterOptions(f.ctx)
		require.NoError(t, err)
		f.clock.Advance(passkey.CeremonyTTL + time.Second)
		_, err = f.svc.Register(f.ctx, attest(t, opts, goodRP(), auth, newCredential(t)))
		requireCode(t, err, core.CodeValidation, core.KindInvalid)

		// Another user's options cannot be finished by this user.
		other := newUser(t, f.db, "other")
		opts, err = f.svc.RegisterOptions(principalCtx(other, false))
		require.NoError(t, err)
		_, err = f.svc.Register(f.ctx, attest(t, opts, goodRP(), auth, newCredential(t)))
		requireCode(t, err, core.CodeValidation, core.KindInvalid)

		// The same authenticator credential registered again → 409.
		_, err = f.register(t, f.ctx, auth, cred)
		requireCode(t, err, core.CodeConflict, core.KindConflict)

		// Malformed bodies.
		for _, body := range []string{`{}`, `{"id":"x","type":"public-key"}`, `[]`, `not json`} {
			_, err = f.svc.Register(f.ctx, json.RawMessage(body))
			requireCode(t, err, core.CodeValidation, core.KindInvalid)
		}

		n, err := f.svc.CredentialCount(context.Background(), f.user.ID)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

func TestRegisterPrincipals(t *testing.T) {
	forEachDialect(t, func(t *testing.T, f *fixture) {
		auth := virtualwebauthn.NewAuthenticator()
		_, err := f.register(t, principalCtx(f.user, true), auth, virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeRSA))
		require.NoError(t, err, "a restricted (MFA-enrolment) credential may register")

		_, err = f.svc.RegisterOptions(context.Background())
		requireCode(t, err, core.CodeUnauthenticated, core.KindUnauthenticated)
		_, err = f.svc.Register(context.Background(), json.RawMessage(`{}`))
		requireCode(t, err, core.CodeUnauthenticated, core.KindUnauthenticated)

		sa := core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalServiceAccount, ID: core.NewID(),
			TenantID: f.user.TenantID, TenantIDs: []string{f.user.TenantID}})
		_, err = f.svc.RegisterOptions(sa)
		requireCode(t, err, core.CodeForbidden, core.KindForbidden)
		_, err = f.svc.Register(sa, json.RawMessage(`{}`))
		requireCode(t, err, core.CodeForbidden, core.KindForbidden)
	})
}

func TestAssertionRejections(t *testing.T) {
	forEachDialect(t, func(t *testing.T, f *fixture) {
		auth := virtualwebauthn.NewAuthenticator()
		auth.AddCredential(f.mustRegister(t, auth))
		cred := &auth.Credentials[0]
		bad := func(err error) { requireCode(t, err, core.CodeMFAInvalidCode, core.KindUnauthenticated) }

		evil := goodRP()
		evil.Origin = "https://evil.example"
		cred.Counter = 1
		bad(f.login(t, evil, auth, *cred))
		otherRP := goodRP()
		otherRP.ID = "evil.example"
		cred.Counter = 2
		bad(f.login(t, otherRP, auth, *cred))

		// A state that does not belong to the options answered.
		opts, _, err := f.svc.BeginAssertion(context.Background(), f.user.ID)
		require.NoError(t, err)
		_, otherState, err := f.svc.BeginAssertion(context.Background(), f.user.ID)
		require.NoError(t, err)
		cred.Counter = 3
		resp := assert(t, opts, goodRP(), auth, *cred)
		bad(f.svc.FinishAssertion(context.Background(), f.user.ID, otherState, resp))
		bad(f.svc.FinishAssertion(context.Background(), f.user.ID, []byte("garbage"), resp))
		bad(f.svc.FinishAssertion(context.Background(), f.user.ID, nil, resp))

		// Another user's state or identity.
		other := newUser(t, f.db, "other")
		oauth := virtualwebauthn.NewAuthenticator()
		ocred := newCredential(t)
		_, err = f.register(t, principalCtx(other, false), oauth, ocred)
		require.NoError(t, err)
		oopts, ostate, err := f.svc.BeginAssertion(context.Background(), other.ID)
		require.NoError(t, err)
		_, state, err := f.svc.BeginAssertion(context.Background(), f.user.ID)
		require.NoError(t, err)
		oresp := assert(t, oopts, goodRP(), oauth, ocred)
		bad(f.svc.FinishAssertion(context.Background(), f.user.ID, ostate, oresp))
		bad(f.svc.FinishAssertion(context.Background(), f.user.ID, state, oresp))
		bad(f.svc.FinishAssertion(context.Background(), "nope", state, oresp))

		// Garbage assertions.
		_, state, err = f.svc.BeginAssertion(context.Background(), f.user.ID)
		require.NoError(t, err)
		for _, body := range []string{``, `{}`, `not json`} {
			bad(f.svc.FinishAssertion(context.Background(), f.user.ID, state, json.RawMessage(body)))
		}

		// None of this raised an incident, and the good path still works.
		cred.Counter = 4
		require.NoError(t, f.login(t, goodRP(), auth, *cred))
		events, err := f.db.ListStoredEvents(context.Background(), auditQuery(passkey.EventSecurityIncident))
		require.NoError(t, err)
		require.Empty(t, events)
	})
}

// TestBackupFlags: the backup-eligible flag is fixed at registration (an
// assertion that changes it is refused, WebAuthn L3 §7.2), the backup state
// may change; a credential registered before the flags were kept takes its
// eligibility from its first accepted assertion.
func TestBackupFlags(t *testing.T) {
	forEachDialect(t, func(t *testing.T, f *fixture) {
		bad := func(err error) { requireCode(t, err, core.CodeMFAInvalidCode, core.KindUnauthenticated) }
		stored := func() passkey.Credential {
			creds, err := persistence.NewPasskeyStore(f.db).PasskeyCredentials(context.Background(), f.user.ID)
			require.NoError(t, err)
			require.Len(t, creds, 1)
			return creds[0]
		}

		synced := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{BackupEligible: true, BackupState: true})
		synced.AddCredential(f.mustRegister(t, synced))
		cred := &synced.Credentials[0]
		got := stored()
		require.NotNil(t, got.BackupEligible)
		require.True(t, *got.BackupEligible)
		require.True(t, got.BackupState)

		cred.Counter = 1
		synced.Options.BackupState = false // the passkey stopped syncing: fine
		require.NoError(t, f.login(t, goodRP(), synced, *cred))
		require.False(t, stored().BackupState)

		cred.Counter = 2
		synced.Options.BackupEligible = false // now claims to be device-bound
		bad(f.login(t, goodRP(), synced, *cred))

		// A credential registered before the flags were kept.
		_, err := f.db.Bun().ExecContext(context.Background(), `UPDATE mfa_factors SET backup_eligible = NULL WHERE user_id = ?`, f.user.ID)
		require.NoError(t, err)
		require.Nil(t, stored().BackupEligible)
		cred.Counter = 3
		require.NoError(t, f.login(t, goodRP(), synced, *cred), "the first assertion records the flag")
		require.NotNil(t, stored().BackupEligible)
		require.False(t, *stored().BackupEligible)
		cred.Counter = 4
		synced.Options.BackupEligible = true
		bad(f.login(t, goodRP(), synced, *cred))
	})
}

func TestCounterRegression(t *testing.T) {
	forEachDialect(t, func(t *testing.T, f *fixture) {
		auth := virtualwebauthn.NewAuthenticator()
		auth.AddCredential(f.mustRegister(t, auth))
		cred := &auth.Credentials[0]
		cred.Counter = 5
		require.NoError(t, f.login(t, goodRP(), auth, *cred))

		for _, c := range []uint32{5, 3, 0} { // equal, lower, reset to 0
			cred.Counter = c
			requireCode(t, f.login(t, goodRP(), auth, *cred), core.CodeMFAInvalidCode, core.KindUnauthenticated)
		}
		envs := eventtest.RequireValidStored(t, f.db, passkey.EventSecurityIncident)
		require.Len(t, envs, 3)
		raw, _ := json.Marshal(envs[0].Data)
		data := map[string]any{}
		require.NoError(t, json.Unmarshal(raw, &data))
		require.Equal(t, map[string]any{"userId": f.user.ID, "tenantId": f.user.TenantID,
			"kind": passkey.IncidentCounterRegression, "sessionId": "", "ip": "198.51.100.4"}, data)
		require.Equal(t, f.user.ID, envs[0].Subject)

		// The stored counter did not move back: 6 works, 5 still does not.
		cred.Counter = 6
		require.NoError(t, f.login(t, goodRP(), auth, *cred))
	})
}

// TestCounterRegressionMetric: each committed incident is counted by kind.
func TestCounterRegressionMetric(t *testing.T) {
	f := newFixture(t, dbtest.SQLite(t))
	reader := sdkmetric.NewManualReader()
	m, err := telemetry.NewMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	require.NoError(t, err)
	require.Same(t, f.svc, f.svc.WithMetrics(m))
	auth := virtualwebauthn.NewAuthenticator()
	auth.AddCredential(f.mustRegister(t, auth))
	cred := &auth.Credentials[0]
	cred.Counter = 5
	require.NoError(t, f.login(t, goodRP(), auth, *cred))
	for _, c := range []uint32{5, 3} {
		cred.Counter = c
		requireCode(t, f.login(t, goodRP(), auth, *cred), core.CodeMFAInvalidCode, core.KindUnauthenticated)
	}

	kinds := telemetrytest.CounterByAttr(t, reader, telemetry.MetricSecurityIncident, telemetry.AttrKind)
	require.Contains(t, telemetry.SecurityIncidentKinds, passkey.IncidentCounterRegression, "pre-initialised at 0")
	require.Equal(t, int64(2), kinds[passkey.IncidentCounterRegression])
}

func TestConcurrentRegistrationsRespectLimit(t *testing.T) {
	forEachDialect(t, func(t *testing.T, f *fixture) {
		auth := virtualwebauthn.NewAuthenticator()
		for range passkey.MaxCredentials - 1 {
			f.mustRegister(t, auth)
		}
		const racers = 3
		responses := make([]json.RawMessage, racers)
		for i := range responses {
			opts, err := f.svc.RegisterOptions(f.ctx)
			require.NoError(t, err)
			responses[i] = attest(t, opts, goodRP(), auth, newCredential(t))
		}
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range responses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = f.svc.Register(f.ctx, responses[i])
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			requireCode(t, err, core.CodeMFACredentialLimit, core.KindUnprocessable)
		}
		require.Equal(t, 1, ok)
		n, err := f.svc.CredentialCount(context.Background(), f.user.ID)
		require.NoError(t, err)
		require.Equal(t, passkey.MaxCredentials, n)
	})
}
