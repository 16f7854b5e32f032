package keys_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestInitCreatesActiveAndNextOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open dbtest.Opener) {
		ctx := context.Background()
		db := open(t)
		master := newMaster(t)
		clock := core.NewFixedClock(t0)
		svc := initService(t, db, master, clock)

		ks := listKeys(t, db)
		require.Len(t, ks[keys.StateActive], 1)
		require.Len(t, ks[keys.StateNext], 1)
		require.Empty(t, ks[keys.StateRetired])
		active, next := ks[keys.StateActive][0], ks[keys.StateNext][0]
		require.Equal(t, keys.AlgRS256, active.Algorithm)
		require.True(t, t0.Equal(*active.ActivatedAt))
		require.Nil(t, next.ActivatedAt)
		require.Zero(t, countEvents(t, db), "first creation emits no event")

		signer, err := svc.Signer()
		require.NoError(t, err)
		require.Equal(t, active.KID, signer.KID())
		doc, _ := svc.JWKS()
		require.Equal(t, []string{active.KID, next.KID}, jwksKids(t, doc), "next is published before it signs")

		// Init again, and a second instance on the same database, reuse the keys.
		require.NoError(t, svc.Init(ctx))
		other := initService(t, db, master, clock)
		otherDoc, otherTag := other.JWKS()
		_, tag := svc.JWKS()
		require.Equal(t, doc, otherDoc)
		require.Equal(t, tag, otherTag)
		require.Len(t, listKeys(t, db)[keys.StateActive], 1)
		require.Len(t, listKeys(t, db)[keys.StateNext], 1)
	})
}

func TestInitWithWrongMasterKeyFails(t *testing.T) {
	db := dbtest.SQLite(t)
	initService(t, db, newMaster(t), nil)
	svc := newService(t, persistence.NewKeyStore(db), newMaster(t), nil, keys.Config{})
	err := svc.Init(context.Background())
	require.Error(t, err)
	require.Equal(t, core.KindInternal, core.KindOf(err))
	_, err = svc.Signer()
	require.Error(t, err, "nothing loaded")
	doc, tag := svc.JWKS()
	require.Nil(t, doc)
	require.Empty(t, tag)
}

func TestRotate(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open dbtest.Opener) {
		ctx := context.Background()
		db := open(t)
		clock := core.NewFixedClock(t0)
		svc := initService(t, db, newMaster(t), clock)
		before := listKeys(t, db)
		oldActive, oldNext := before[keys.StateActive][0], before[keys.StateNext][0]
		_, oldTag := svc.JWKS()

		clock.Advance(90 * 24 * time.Hour)
		now := clock.Now()
		got, err := svc.Rotate(ctx)
		require.NoError(t, err)
		require.Equal(t, oldNext.KID, got.KID, "next becomes active")
		require.Equal(t, keys.StateActive, got.State)
		require.Equal(t, keys.AlgRS256, got.Algorithm)
		require.True(t, now.Equal(*got.ActivatedAt))

		after := listKeys(t, db)
		require.Len(t, after[keys.StateRetired], 1)
		retired := after[keys.StateRetired][0]
		require.Equal(t, oldActive.KID, retired.KID)
		require.True(t, now.Equal(*retired.RetiredAt))
		publishUntil := now.Add(keys.DefaultRetiredPublishFor)
		require.True(t, publishUntil.Equal(*retired.PublishUntil))
		require.Equal(t, oldNext.KID, after[keys.StateActive][0].KID)
		require.Len(t, after[keys.StateNext], 1)
		newNext := after[keys.StateNext][0].KID
		require.NotContains(t, []string{oldActive.KID, oldNext.KID}, newNext)

		// Memory follows: the new active key signs; JWKS lists all three.
		signer, err := svc.Signer()
		require.NoError(t, err)
		require.Equal(t, oldNext.KID, signer.KID())
		doc, tag := svc.JWKS()
		require.Equal(t, []string{oldNext.KID, newNext, oldActive.KID}, jwksKids(t, doc))
		require.NotEqual(t, oldTag, tag)
		for _, kid := range []string{oldActive.KID, oldNext.KID, newNext} {
			_, ok := svc.PublicKey(kid)
			require.True(t, ok, kid)
		}

		// The event is in the outbox, written by the rotation's transaction.
		evs := rotatedEvents(t, db)
		require.Len(t, evs, 1)
		require.Equal(t, oldNext.KID, evs[0].Subject, "subject is the new kid")
		require.Empty(t, evs[0].TenantID)
		var data map[string]any
		require.NoError(t, json.Unmarshal([]byte(evs[0].Data), &data))
		require.Equal(t, map[string]any{
			"newKid":               oldNext.KID,
			"previousKid":          oldActive.KID,
			"previousKeyRetiresAt": publishUntil.Format(time.RFC3339),
		}, data)

		// A second rotation retires the first promoted key too.
		clock.Advance(time.Hour)
		got2, err := svc.Rotate(ctx)
		require.NoError(t, err)
		require.Equal(t, newNext, got2.KID)
		require.Len(t, listKeys(t, db)[keys.StateRetired], 2)
		require.Len(t, rotatedEvents(t, db), 2)
	})
}

// failingEvents is the real store whose AddEvents writes the event and then
// fails, as a broken outbox would: everything in the transaction must roll back.
type failingEvents struct {
	*persistence.KeyStore
}

var errOutbox = errors.New("outbox broke")

func (f failingEvents) AddEvents(ctx context.Context, events ...core.Event) error {
	if err := f.KeyStore.AddEvents(ctx, events...); err != nil {
		return err
	}
	return errOutbox
}

func TestRotateRollbackLeavesNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open dbtest.Opener) {
		db := open(t)
		master := newMaster(t)
		svc := newService(t, failingEvents{persistence.NewKeyStore(db)}, master, core.NewFixedClock(t0), keys.Config{})
		require.NoError(t, svc.Init(context.Background()))
		before := listKeys(t, db)
		doc, tag := svc.JWKS()

		_, err := svc.Rotate(context.Background())
		require.ErrorIs(t, err, errOutbox)
		require.Equal(t, before, listKeys(t, db), "no transition and no new key survive")
		require.Zero(t, countEvents(t, db), "no event without its state change")
		gotDoc, gotTag := svc.JWKS()
		require.Equal(t, doc, gotDoc)
		require.Equal(t, tag, gotTag)
		signer, err := svc.Signer()
		require.NoError(t, err)
		require.Equal(t, before[keys.StateActive][0].KID, signer.KID())
	})
}

func TestRotateAfterAnotherInstanceRotatedConflicts(t *testing.T) {
	ctx := context.Background()
	db := dbtest.SQLite(t)
	master := newMaster(t)
	a := initService(t, db, master, nil)
	b := initService(t, db, master, nil)

	_, err := a.Rotate(ctx)
	require.NoError(t, err)
	_, err = b.Rotate(ctx)
	require.True(t, core.IsKind(err, core.KindConflict), "b still believes the old key is active: %v", err)
	require.Equal(t, core.CodeStateConflict, core.CodeOf(err))
	require.Len(t, rotatedEvents(t, db), 1)

	// The conflict reloaded b, so it now agrees with a and may rotate.
	docA, _ := a.JWKS()
	docB, _ := b.JWKS()
	require.Equal(t, docA, docB)
	_, err = b.Rotate(ctx)
	require.NoError(t, err)
	require.Len(t, rotatedEvents(t, db), 2)
}

func TestRotateBeforeInit(t *testing.T) {
	svc := newService(t, persistence.NewKeyStore(dbtest.SQLite(t)), newMaster(t), nil, keys.Config{})
	_, err := svc.Rotate(context.Background())
	require.Equal(t, core.KindInternal, core.KindOf(err))
	_, ok := svc.PublicKey("anything")
	require.False(t, ok)
}

func TestAdminOperationsNeedSuperAdmin(t *testing.T) {
	db := dbtest.SQLite(t)
	clock := core.NewFixedClock(t0)
	svc := initService(t, db, newMaster(t), clock)
	user := core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser, ID: core.NewID(), TenantID: "t1"})
	cases := []struct {
		name string
		ctx  context.Context
		code string
	}{
		{"anonymous", context.Background(), core.CodeUnauthenticated},
		{"plain user", user, core.CodeForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.SigningKeys(tc.ctx)
			require.Equal(t, tc.code, core.CodeOf(err))
			_, err = svc.RotateAsAdmin(tc.ctx)
			require.Equal(t, tc.code, core.CodeOf(err))
			require.Empty(t, rotatedEvents(t, db))
		})
	}

	noAuthz, err := keys.NewService(persistence.NewKeyStore(db), newMaster(t), clock, nil, nil, keys.Config{})
	require.NoError(t, err)
	_, err = noAuthz.SigningKeys(adminCtx())
	require.Equal(t, core.CodeForbidden, core.CodeOf(err), "no authorizer fails closed")

	clock.Advance(time.Hour)
	rotated, err := svc.RotateAsAdmin(adminCtx())
	require.NoError(t, err)
	list, err := svc.SigningKeys(adminCtx())
	require.NoError(t, err)
	require.Len(t, list, 3)
	require.Equal(t, keys.StateNext, list[0].State, "newest first")
	require.Equal(t, rotated.KID, list[1].KID)
	require.Equal(t, keys.StateActive, list[1].State)
	require.Equal(t, keys.StateRetired, list[2].State)
	require.NotNil(t, list[2].PublishUntil)
	for _, k := range list {
		require.Equal(t, keys.AlgRS256, k.Algorithm)
	}
}

func TestNewServiceValidatesCron(t *testing.T) {
	store := persistence.NewKeyStore(dbtest.SQLite(t))
	for _, expr := range []string{"bogus", "0 0 1 */3", "61 * * * *", "0 0 1 */3 * *", "0 0 32 * *", "@sometimes"} {
		t.Run(expr, func(t *testing.T) {
			_, err := keys.NewService(store, newMaster(t), nil, nil, nil, keys.Config{RotationCron: expr})
			require.Error(t, err)
			require.Equal(t, core.KindInvalid, core.KindOf(err))
			require.Contains(t, core.AsError(err).Fields, "IDENTITY_KEY_ROTATION_CRON")
			require.Contains(t, err.Error(), "IDENTITY_KEY_ROTATION_CRON")
		})
	}
	for _, expr := range []string{"", keys.DefaultRotationCron, "@monthly", "30 2 * * 1", "CRON_TZ=UTC 0 0 1 1 *"} {
		_, err := keys.NewService(store, newMaster(t), nil, nil, nil, keys.Config{RotationCron: expr})
		require.NoError(t, err, expr)
	}
	_, err := keys.NewService(nil, newMaster(t), nil, nil, nil, keys.Config{})
	require.Error(t, err)
}

func TestActiveKeyAge(t *testing.T) {
	db := dbtest.SQLite(t)
	clock := core.NewFixedClock(t0)
	master := newMaster(t)
	svc := newService(t, persistence.NewKeyStore(db), master, clock, keys.Config{})
	_, ok := svc.ActiveKeyAge()
	require.False(t, ok, "nothing loaded before Init")
	require.NoError(t, svc.Init(context.Background()))

	age, ok := svc.ActiveKeyAge()
	require.True(t, ok)
	require.Zero(t, age)
	clock.Advance(40 * 24 * time.Hour)
	age, _ = svc.ActiveKeyAge()
	require.Equal(t, 40*24*time.Hour, age)

	// Rotation promotes the next key: the age starts again.
	_, err := svc.Rotate(context.Background())
	require.NoError(t, err)
	clock.Advance(time.Hour)
	age, _ = svc.ActiveKeyAge()
	require.Equal(t, time.Hour, age)

	// Another instance reads the same keyring.
	other := initService(t, db, master, clock)
	age, _ = other.ActiveKeyAge()
	require.Equal(t, time.Hour, age)
}
