package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/device"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testDevices(t *testing.T, open dbtest.Opener) {
	t.Run("round trip and list", func(t *testing.T) { testDeviceRoundTrip(t, open(t)) })
	t.Run("transitions and certificates", func(t *testing.T) { testDeviceTransitions(t, open(t)) })
}

func deviceFixture(userID, tenantID, fp string) device.Device {
	return device.Device{ID: core.NewID(), UserID: userID, TenantID: tenantID, Fingerprint: fp, Name: "phone",
		Platform: "android", PublicKey: []byte{0x30, 0x01, 0x02}, Status: device.StatusUntrusted, CreatedAt: userT0, UpdatedAt: userT0}
}

func deviceUser(t *testing.T, db *persistence.DB, slug string) (tenantID, userID string) {
	t.Helper()
	tenantID = userTestTenant(t, db, slug, false)
	u := userFixture(tenantID, slug+"@example.org", user.StatusActive)
	require.NoError(t, persistence.NewUserStore(db).InsertUser(context.Background(), u))
	return tenantID, u.ID
}

func testDeviceRoundTrip(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewDeviceStore(db)
	ta, ua := deviceUser(t, db, "dva")
	tb, ub := deviceUser(t, db, "dvb")
	d := deviceFixture(ua, ta, "fp-1")
	require.NoError(t, s.InsertDevice(ctx, d))
	got, err := s.DeviceByID(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, d, got)

	require.Equal(t, core.KindConflict, core.KindOf(s.InsertDevice(ctx, deviceFixture(ua, ta, "fp-1"))), "duplicate fingerprint")
	require.NoError(t, s.InsertDevice(ctx, deviceFixture(ub, tb, "fp-1")), "same fingerprint, other user")
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertDevice(ctx, deviceFixture(core.NewID(), ta, "fp-x"))), "unknown user")
	for _, id := range []string{core.NewID(), "nope"} {
		_, err = s.DeviceByID(ctx, id)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), id)
	}

	d2 := deviceFixture(ua, ta, "fp-2")
	d2.CreatedAt = userT0.Add(time.Second)
	require.NoError(t, s.InsertDevice(ctx, d2))
	ok, err := s.TrustDevice(ctx, d2.ID, userT0, ua)
	require.NoError(t, err)
	require.True(t, ok)
	ids := func(ds []device.Device) []string {
		out := []string{}
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	list, err := s.ListDevices(ctx, device.ListQuery{UserID: ua})
	require.NoError(t, err)
	require.Equal(t, []string{d.ID, d2.ID}, ids(list))
	list, err = s.ListDevices(ctx, device.ListQuery{UserID: ua, Status: device.StatusTrusted})
	require.NoError(t, err)
	require.Equal(t, []string{d2.ID}, ids(list))
	list, err = s.ListDevices(ctx, device.ListQuery{TenantID: tb})
	require.NoError(t, err)
	require.Len(t, list, 1)
	list, err = s.ListDevices(ctx, device.ListQuery{})
	require.NoError(t, err)
	require.Len(t, list, 3)
	list, err = s.ListDevices(ctx, device.ListQuery{UserID: "nope"})
	require.NoError(t, err)
	require.Empty(t, list)
}

func testDeviceTransitions(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewDeviceStore(db)
	ta, ua := deviceUser(t, db, "dvt")
	d := deviceFixture(ua, ta, "fp")
	require.NoError(t, s.InsertDevice(ctx, d))
	at := userT0.Add(time.Hour)

	ok, err := s.MarkDeviceBound(ctx, d.ID, at)
	require.NoError(t, err)
	require.False(t, ok, "untrusted cannot be bound")
	ok, err = s.TrustDevice(ctx, d.ID, at, "admin")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.TrustDevice(ctx, d.ID, at, "admin")
	require.NoError(t, err)
	require.False(t, ok, "already trusted")
	got, err := s.DeviceByID(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, device.StatusTrusted, got.Status)
	require.Equal(t, at, *got.TrustedAt)
	require.Equal(t, "admin", got.TrustedBy)
	require.Nil(t, got.Certificate)

	for i, serial := range []string{"0a", "0b"} {
		ok, err = s.MarkDeviceBound(ctx, d.ID, at)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, s.RevokeDeviceCertificates(ctx, d.ID, at.Add(time.Duration(i)*time.Minute)))
		c := device.IssuedCertificate{Serial: serial, DeviceID: d.ID, DER: []byte{1, byte(i)}, NotBefore: at, NotAfter: at.Add(24 * time.Hour)}
		require.NoError(t, s.InsertCertificate(ctx, c))
		der, err := s.CertificateDER(ctx, serial)
		require.NoError(t, err)
		require.Equal(t, c.DER, der)
	}
	require.Equal(t, core.KindConflict, core.KindOf(s.InsertCertificate(ctx,
		device.IssuedCertificate{Serial: "0b", DeviceID: d.ID, DER: []byte{9}, NotBefore: at, NotAfter: at})))
	got, err = s.DeviceByID(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, device.StatusOfflineBound, got.Status)
	require.Equal(t, &device.Certificate{SerialNumber: "0b", ExpiresAt: at.Add(24 * time.Hour)}, got.Certificate)
	revoked, err := s.RevokedCertificates(ctx)
	require.NoError(t, err)
	require.Equal(t, []device.RevokedCertificate{{Serial: "0a", RevokedAt: at.Add(time.Minute)}}, revoked)

	end := at.Add(2 * time.Hour)
	ok, err = s.RevokeDevice(ctx, d.ID, end)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, s.RevokeDeviceCertificates(ctx, d.ID, end))
	ok, err = s.RevokeDevice(ctx, d.ID, end)
	require.NoError(t, err)
	require.False(t, ok, "already revoked")
	got, err = s.DeviceByID(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, device.StatusRevoked, got.Status)
	require.Equal(t, end, *got.RevokedAt)
	require.Equal(t, end, *got.Certificate.RevokedAt)
	revoked, err = s.RevokedCertificates(ctx)
	require.NoError(t, err)
	require.Len(t, revoked, 2)
	ok, err = s.MarkDeviceBound(ctx, d.ID, end)
	require.NoError(t, err)
	require.False(t, ok, "revoked cannot be bound")
}
