package device_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/device"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestRegisterKeyTypes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open dbtest.Opener) {
		e := newEnv(t, open, device.Config{})
		p256, _ := p256PEM(t)
		cases := []struct {
			name, pem string
			ok        bool
		}{
			{"ecdsa p-256", p256, true},
			{"rsa 2048", rsaPEM(t, 2048), true},
			{"rsa 1024", rsaPEM(t, 1024), false},
			{"ecdsa p-384", p384PEM(t), false},
			{"ed25519", ed25519PEM(t), false},
			{"garbage", "not a key", false},
			{"certificate block", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", false},
			{"bad der", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", false},
		}
		for i, c := range cases {
			d, err := e.svc.Register(e.ownerCtx(), device.RegisterInput{Fingerprint: fmt.Sprint("fp-", i), PublicKeyPEM: c.pem})
			if !c.ok {
				require.Equal(t, core.CodeValidation, core.CodeOf(err), c.name)
				require.Contains(t, core.AsError(err).Fields, "publicKey", c.name)
				continue
			}
			require.NoError(t, err, c.name)
			require.Equal(t, device.StatusUntrusted, d.Status)
			require.Equal(t, e.owner, d.UserID)
			require.Equal(t, e.tenantA, d.TenantID)
			block, _ := pem.Decode([]byte(c.pem))
			require.Equal(t, block.Bytes, d.PublicKey)
		}
		_, err := e.svc.Register(e.ownerCtx(), device.RegisterInput{Fingerprint: "fp-0", PublicKeyPEM: p256})
		require.Equal(t, core.CodeConflict, core.CodeOf(err), "duplicate fingerprint")
		require.Equal(t, core.KindConflict, core.KindOf(err))
		_, err = e.svc.Register(as(e.other, e.tenantA), device.RegisterInput{Fingerprint: "fp-0", PublicKeyPEM: p256})
		require.NoError(t, err, "same fingerprint, other user")
		_, err = e.svc.Register(e.ownerCtx(), device.RegisterInput{Fingerprint: " ", PublicKeyPEM: p256})
		require.Equal(t, core.CodeValidation, core.CodeOf(err))
		_, err = e.svc.Register(context.Background(), device.RegisterInput{Fingerprint: "x", PublicKeyPEM: p256})
		require.Equal(t, core.CodeUnauthenticated, core.CodeOf(err))
		require.Equal(t, 3, e.countEvents(t, device.EventRegistered))
		eventtest.RequireValidStored(t, e.db, device.EventRegistered)

		list, err := e.svc.List(e.ownerCtx())
		require.NoError(t, err)
		require.Len(t, list, 2)
	})
}

// TestRegisterRefusesTextNoDatabaseCanHold: NUL (refused by Postgres, stored
// by SQLite), invalid UTF-8 and control characters in the text fields are
// IDENT_VALIDATION naming the field, on both databases; nothing is stored.
func TestRegisterRefusesTextNoDatabaseCanHold(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open dbtest.Opener) {
		e := newEnv(t, open, device.Config{})
		p256, _ := p256PEM(t)
		for name, tc := range map[string]struct {
			in     device.RegisterInput
			field  string
			reason string
		}{
			"NUL in fingerprint":           {device.RegisterInput{Fingerprint: "fp\x001"}, "fingerprint", "must not contain control characters"},
			"invalid UTF-8 in fingerprint": {device.RegisterInput{Fingerprint: "fp\xff"}, "fingerprint", "must be valid UTF-8"},
			"NUL in name":                  {device.RegisterInput{Fingerprint: "fp-n", Name: "Tab\x00let"}, "name", "must not contain control characters"},
			"line break in name":           {device.RegisterInput{Fingerprint: "fp-n", Name: "Tab\r\nlet"}, "name", "must not contain control characters"},
			"NUL in platform":              {device.RegisterInput{Fingerprint: "fp-p", Platform: "and\x00roid"}, "platform", "must not contain control characters"},
			"invalid UTF-8 in platform":    {device.RegisterInput{Fingerprint: "fp-p", Platform: "\xfe\xff"}, "platform", "must be valid UTF-8"},
		} {
			t.Run(name, func(t *testing.T) {
				tc.in.PublicKeyPEM = p256
				_, err := e.svc.Register(e.ownerCtx(), tc.in)
				require.Equal(t, core.CodeValidation, core.CodeOf(err), "error: %v", err)
				require.Equal(t, map[string]string{tc.field: tc.reason}, core.AsError(err).Fields)
			})
		}
		require.Zero(t, e.countEvents(t, device.EventRegistered))
	})
}

func TestStateMachine(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open dbtest.Opener) {
		e := newEnv(t, open, device.Config{})
		// from state × operation → resulting status, or error code.
		cases := []struct {
			from device.Status
			op   string
			to   device.Status
			code string
		}{
			{device.StatusUntrusted, "trust", device.StatusTrusted, ""},
			{device.StatusUntrusted, "bind", "", core.CodeDeviceNotTrusted},
			{device.StatusUntrusted, "revoke", device.StatusRevoked, ""},
			{device.StatusTrusted, "trust", "", core.CodeStateConflict},
			{device.StatusTrusted, "bind", device.StatusOfflineBound, ""},
			{device.StatusTrusted, "revoke", device.StatusRevoked, ""},
			{device.StatusOfflineBound, "trust", "", core.CodeStateConflict},
			{device.StatusOfflineBound, "bind", device.StatusOfflineBound, ""},
			{device.StatusOfflineBound, "revoke", device.StatusRevoked, ""},
			{device.StatusRevoked, "trust", "", core.CodeStateConflict},
			{device.StatusRevoked, "bind", "", core.CodeDeviceNotTrusted},
			{device.StatusRevoked, "revoke", device.StatusRevoked, ""}, // idempotent
		}
		for i, c := range cases {
			name := string(c.from) + " " + c.op
			d := e.inState(t, fmt.Sprint("sm-", i), c.from)
			err := e.do(c.op, d.ID)
			got, gerr := e.store.DeviceByID(context.Background(), d.ID)
			require.NoError(t, gerr)
			if c.code != "" {
				require.Equal(t, c.code, core.CodeOf(err), name)
				status := map[string]int{core.CodeDeviceNotTrusted: 422, core.CodeStateConflict: 409}[c.code]
				require.Equal(t, map[int]core.Kind{422: core.KindUnprocessable, 409: core.KindConflict}[status], core.KindOf(err), name)
				require.Equal(t, c.from, got.Status, name+": unchanged")
				continue
			}
			require.NoError(t, err, name)
			require.Equal(t, c.to, got.Status, name)
		}
		_, err := e.svc.Trust(e.adminACtx(), core.NewID())
		require.Equal(t, core.CodeNotFound, core.CodeOf(err))
	})
}

func TestBindOfflineCertificate(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open dbtest.Opener) {
		e := newEnv(t, open, device.Config{})
		ctx := context.Background()
		d := e.inState(t, "bind", device.StatusTrusted)

		caPEM, err := e.svc.CACertificatePEM(ctx)
		require.NoError(t, err)
		block, _ := pem.Decode(caPEM)
		require.Equal(t, "CERTIFICATE", block.Type)
		ca, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		require.True(t, ca.IsCA)
		again, err := e.svc.CACertificatePEM(ctx)
		require.NoError(t, err)
		require.Equal(t, caPEM, again)

		_, err = e.svc.BindOffline(as(e.other, e.tenantA), d.ID)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), "not the owner")
		_, err = e.svc.BindOffline(e.adminACtx(), d.ID)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), "an admin is not the owner")

		roots := x509.NewCertPool()
		roots.AddCert(ca)
		seen := map[string]bool{}
		var bindings []device.Binding
		for range 3 {
			b, err := e.svc.BindOffline(e.ownerCtx(), d.ID)
			require.NoError(t, err)
			bindings = append(bindings, b)
			cb, _ := pem.Decode([]byte(b.CertificatePEM))
			require.Equal(t, "CERTIFICATE", cb.Type)
			cert, err := x509.ParseCertificate(cb.Bytes)
			require.NoError(t, err)
			_, err = cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0.Add(time.Hour),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			require.NoError(t, err)
			require.NoError(t, cert.CheckSignatureFrom(ca))
			pubDER, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
			require.NoError(t, err)
			require.Equal(t, d.PublicKey, pubDER, "certifies the registered key")
			require.Equal(t, 3, cert.Version)
			require.LessOrEqual(t, cert.NotAfter.Sub(e.clock.Now()), 30*24*time.Hour)
			require.LessOrEqual(t, cert.NotAfter.Sub(cert.NotBefore), 30*24*time.Hour)
			require.Equal(t, cert.NotAfter.UTC(), b.ExpiresAt)
			require.Equal(t, cert.SerialNumber.Text(16), b.SerialNumber)
			var uris []string
			for _, u := range cert.URIs {
				uris = append(uris, u.String())
			}
			require.ElementsMatch(t, []string{"urn:ghasi:device:" + d.ID, "urn:ghasi:user:" + e.owner, "urn:ghasi:tenant:" + e.tenantA}, uris)
			require.False(t, seen[b.SerialNumber], "unique serial")
			seen[b.SerialNumber] = true
			e.clock.Advance(time.Minute)
		}
		require.Equal(t, int64(3), e.binds(t))

		got, err := e.store.DeviceByID(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, device.StatusOfflineBound, got.Status)
		require.Equal(t, bindings[2].SerialNumber, got.Certificate.SerialNumber)
		require.Nil(t, got.Certificate.RevokedAt)

		// Re-binding revoked the two earlier certificates.
		crl := e.crl(t, ca)
		require.ElementsMatch(t, []string{bindings[0].SerialNumber, bindings[1].SerialNumber}, crl)

		// Revoking the device revokes the current one too.
		_, err = e.svc.Revoke(e.ownerCtx(), d.ID)
		require.NoError(t, err)
		got, err = e.store.DeviceByID(ctx, d.ID)
		require.NoError(t, err)
		require.NotNil(t, got.Certificate.RevokedAt)
		require.ElementsMatch(t, []string{bindings[0].SerialNumber, bindings[1].SerialNumber, bindings[2].SerialNumber}, e.crl(t, ca))

		envs := eventtest.RequireValidStored(t, e.db, device.EventBoundForOffline)
		require.Len(t, envs, 3)
		require.Contains(t, string(envs[2].Data), bindings[2].SerialNumber)
		eventtest.RequireValidStored(t, e.db, device.EventTrusted)
		eventtest.RequireValidStored(t, e.db, device.EventRevoked)
	})
}

// crl fetches the CRL, checks it is signed by ca, and returns its serials.
func (e *env) crl(t *testing.T, ca *x509.Certificate) []string {
	t.Helper()
	der, err := e.svc.CRL(context.Background())
	require.NoError(t, err)
	rl, err := x509.ParseRevocationList(der)
	require.NoError(t, err)
	require.NoError(t, rl.CheckSignatureFrom(ca))
	var out []string
	for _, r := range rl.RevokedCertificateEntries {
		require.False(t, r.RevocationTime.IsZero())
		out = append(out, r.SerialNumber.Text(16))
	}
	return out
}

func TestCertLifetimeConfigurable(t *testing.T) {
	e := newEnv(t, dbtest.SQLite, device.Config{CertLifetime: 7 * 24 * time.Hour})
	d := e.inState(t, "life", device.StatusTrusted)
	b, err := e.svc.BindOffline(e.ownerCtx(), d.ID)
	require.NoError(t, err)
	require.Equal(t, t0.Add(7*24*time.Hour), b.ExpiresAt)

	e2 := newEnv(t, dbtest.SQLite, device.Config{CertLifetime: 90 * 24 * time.Hour})
	d2 := e2.inState(t, "life", device.StatusTrusted)
	b, err = e2.svc.BindOffline(e2.ownerCtx(), d2.ID)
	require.NoError(t, err)
	require.Equal(t, t0.Add(device.MaxCertLifetime), b.ExpiresAt, "capped at 30 days")
}

func TestCrossTenant(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open dbtest.Opener) {
		e := newEnv(t, open, device.Config{})
		ctx := context.Background()
		d := e.register(t, "ct")

		_, err := e.svc.Trust(e.adminBCtx(), d.ID)
		require.Equal(t, core.CodeCrossTenant, core.CodeOf(err))
		require.Equal(t, core.KindForbidden, core.KindOf(err))
		_, err = e.svc.Trust(as(e.other, e.tenantA), d.ID)
		require.Equal(t, core.CodeForbidden, core.CodeOf(err))
		_, err = e.svc.Trust(e.ownerCtx(), d.ID)
		require.Equal(t, core.CodeForbidden, core.CodeOf(err), "an owner cannot trust its own device")
		got, err := e.store.DeviceByID(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, device.StatusUntrusted, got.Status)
		require.Equal(t, 0, e.countEvents(t, device.EventTrusted))

		tr, err := e.svc.Trust(e.adminACtx(), d.ID)
		require.NoError(t, err)
		require.Equal(t, device.StatusTrusted, tr.Status)
		require.Equal(t, t0, *tr.TrustedAt)
		require.Equal(t, e.adminA, tr.TrustedBy)

		_, err = e.svc.Revoke(e.adminBCtx(), d.ID)
		require.Equal(t, core.CodeCrossTenant, core.CodeOf(err))
		_, err = e.svc.Revoke(as(e.other, e.tenantA), d.ID)
		require.Equal(t, core.CodeForbidden, core.CodeOf(err))
		got, err = e.store.DeviceByID(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, device.StatusTrusted, got.Status)
		require.Equal(t, 0, e.countEvents(t, device.EventRevoked))

		_, err = e.svc.Revoke(e.adminACtx(), d.ID)
		require.NoError(t, err, "an admin of the tenant may revoke")
		d2 := e.register(t, "ct2")
		_, err = e.svc.Revoke(as(e.super, "platform"), d2.ID)
		require.NoError(t, err, "a SUPER_ADMIN may revoke")
		require.Equal(t, 2, e.countEvents(t, device.EventRevoked))

		// ListForAdmin: admins see their tenants only.
		ds, err := e.svc.ListForAdmin(e.adminBCtx(), e.owner, "")
		require.NoError(t, err)
		require.Empty(t, ds)
		ds, err = e.svc.ListForAdmin(e.adminACtx(), e.owner, device.StatusRevoked)
		require.NoError(t, err)
		require.Len(t, ds, 2)
		ds, err = e.svc.ListForAdmin(e.ownerCtx(), e.owner, "")
		require.NoError(t, err)
		require.Len(t, ds, 2)
		_, err = e.svc.ListForAdmin(as(e.other, e.tenantA), e.owner, "")
		require.Equal(t, core.CodeForbidden, core.CodeOf(err))
		_, err = e.svc.ListForAdmin(e.adminACtx(), "", "bogus")
		require.Equal(t, core.CodeValidation, core.CodeOf(err))
	})
}

func TestRevokeAllDevicesOfUser(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open dbtest.Opener) {
		e := newEnv(t, open, device.Config{})
		ctx := context.Background()
		var ds []device.Device
		for i, st := range []device.Status{device.StatusUntrusted, device.StatusTrusted, device.StatusOfflineBound, device.StatusRevoked} {
			ds = append(ds, e.inState(t, fmt.Sprint("all-", i), st))
		}
		p, _ := p256PEM(t)
		foreign, err := e.svc.Register(as(e.other, e.tenantA), device.RegisterInput{Fingerprint: "x", PublicKeyPEM: p})
		require.NoError(t, err)
		before := e.countEvents(t, device.EventRevoked)
		bound := ds[2].Certificate.SerialNumber

		// Rolled back with the caller's transaction.
		errBoom := fmt.Errorf("boom")
		err = e.db.InTx(ctx, func(ctx context.Context) error {
			require.NoError(t, e.svc.RevokeAllDevicesOfUser(ctx, e.owner))
			return errBoom
		})
		require.ErrorIs(t, err, errBoom)
		got, err := e.store.DeviceByID(ctx, ds[1].ID)
		require.NoError(t, err)
		require.Equal(t, device.StatusTrusted, got.Status)

		require.NoError(t, e.db.InTx(ctx, func(ctx context.Context) error {
			return e.svc.RevokeAllDevicesOfUser(ctx, e.owner)
		}))
		for _, d := range ds {
			got, err := e.store.DeviceByID(ctx, d.ID)
			require.NoError(t, err)
			require.Equal(t, device.StatusRevoked, got.Status)
		}
		require.Equal(t, before+3, e.countEvents(t, device.EventRevoked), "one event per device revoked now")
		got, err = e.store.DeviceByID(ctx, foreign.ID)
		require.NoError(t, err)
		require.Equal(t, device.StatusUntrusted, got.Status, "another user's device is untouched")

		caPEM, err := e.svc.CACertificatePEM(ctx)
		require.NoError(t, err)
		block, _ := pem.Decode(caPEM)
		ca, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		require.Contains(t, e.crl(t, ca), bound)
		require.NoError(t, e.svc.RevokeAllDevicesOfUser(ctx, "nope"))
		eventtest.RequireValidStored(t, e.db, device.EventRevoked)
	})
}

func TestCRLEmpty(t *testing.T) {
	e := newEnv(t, dbtest.SQLite, device.Config{})
	der, err := e.svc.CRL(context.Background())
	require.NoError(t, err)
	rl, err := x509.ParseRevocationList(der)
	require.NoError(t, err)
	require.Empty(t, rl.RevokedCertificateEntries)
	require.Equal(t, 1, rl.Number.Cmp(big.NewInt(0)))
}
