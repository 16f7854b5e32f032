package storetest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testUsers(t *testing.T, open dbtest.Opener) {
	t.Run("insert and read", func(t *testing.T) { testUserRoundTrip(t, open(t)) })
	t.Run("list", func(t *testing.T) { testUserList(t, open(t)) })
	t.Run("transitions", func(t *testing.T) { testUserTransitions(t, open(t)) })
	t.Run("erase", func(t *testing.T) { testUserErase(t, open(t)) })
	t.Run("verification tokens", func(t *testing.T) { testVerificationTokens(t, open(t)) })
	t.Run("redact events", func(t *testing.T) { testRedactEvents(t, open(t)) })
	t.Run("concurrent duplicate inserts", func(t *testing.T) { testConcurrentUserInserts(t, open(t)) })
}

var userT0 = time.Date(2025, 4, 1, 8, 0, 0, 123456000, time.UTC)

func userTestTenant(t *testing.T, db *persistence.DB, slug string, selfReg bool) string {
	t.Helper()
	tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: slug, SelfRegistration: selfReg, CreatedAt: userT0, UpdatedAt: userT0}
	require.NoError(t, persistence.NewDirectoryStore(db).CreateTenant(context.Background(), tn))
	return tn.ID
}

func userFixture(tenantID, email string, status user.Status) user.User {
	return user.User{ID: core.NewID(), TenantID: tenantID, Email: email, FirstName: "Ada", LastName: "Lovelace",
		Status: status, CreatedAt: userT0, UpdatedAt: userT0}
}

func testUserRoundTrip(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewUserStore(db)
	ta, tb := userTestTenant(t, db, "a", true), userTestTenant(t, db, "b", false)

	set, err := s.TenantSettings(ctx, ta)
	require.NoError(t, err)
	require.Equal(t, user.TenantSettings{ID: ta, SelfRegistration: true}, set)
	set, err = s.TenantSettings(ctx, tb)
	require.NoError(t, err)
	require.False(t, set.SelfRegistration)
	for _, id := range []string{core.NewID(), "nope"} {
		_, err = s.TenantSettings(ctx, id)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), id)
	}

	u := userFixture(ta, "ada@example.org", user.StatusPendingVerification)
	u.PasswordHash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$a2V5"
	require.NoError(t, s.InsertUser(ctx, u))
	got, err := s.UserByID(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, u, got)

	noPw := userFixture(ta, "bob@example.org", user.StatusActive)
	require.NoError(t, s.InsertUser(ctx, noPw))
	got, err = s.UserByID(ctx, noPw.ID)
	require.NoError(t, err)
	require.Empty(t, got.PasswordHash)
	require.Nil(t, got.DeactivatedAt)

	dup := userFixture(ta, "ada@example.org", user.StatusActive)
	err = s.InsertUser(ctx, dup)
	require.Equal(t, core.CodeEmailDuplicate, core.CodeOf(err))
	require.Equal(t, core.KindConflict, core.KindOf(err))
	require.NoError(t, s.InsertUser(ctx, userFixture(tb, "ada@example.org", user.StatusActive)), "same email, other tenant")
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertUser(ctx, userFixture(core.NewID(), "x@example.org", user.StatusActive))))

	taken, err := s.EmailTaken(ctx, ta, "ada@example.org")
	require.NoError(t, err)
	require.True(t, taken)
	taken, err = s.EmailTaken(ctx, ta, "eve@example.org")
	require.NoError(t, err)
	require.False(t, taken)

	for _, id := range []string{core.NewID(), "not-a-uuid", ""} {
		_, err = s.UserByID(ctx, id)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), id)
	}
}

func testUserList(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewUserStore(db)
	ta, tb := userTestTenant(t, db, "a", false), userTestTenant(t, db, "b", false)
	var ids []string
	for i, st := range []user.Status{user.StatusActive, user.StatusSuspended, user.StatusActive, user.StatusPendingVerification, user.StatusActive} {
		u := userFixture(ta, string(rune('a'+i))+"@example.org", st)
		require.NoError(t, s.InsertUser(ctx, u))
		ids = append(ids, u.ID)
	}
	require.NoError(t, s.InsertUser(ctx, userFixture(tb, "z@example.org", user.StatusActive)))

	idsOf := func(us []user.User) []string {
		out := make([]string, len(us))
		for i, u := range us {
			out[i] = u.ID
		}
		return out
	}
	all, err := s.ListUsers(ctx, user.ListQuery{TenantID: ta, Limit: 100})
	require.NoError(t, err)
	require.Equal(t, ids, idsOf(all))

	page, err := s.ListUsers(ctx, user.ListQuery{TenantID: ta, Limit: 2, AfterID: ids[1]})
	require.NoError(t, err)
	require.Equal(t, ids[2:4], idsOf(page))

	active, err := s.ListUsers(ctx, user.ListQuery{TenantID: ta, Status: user.StatusActive, Limit: 100})
	require.NoError(t, err)
	require.Equal(t, []string{ids[0], ids[2], ids[4]}, idsOf(active))

	none, err := s.ListUsers(ctx, user.ListQuery{TenantID: core.NewID(), Limit: 10})
	require.NoError(t, err)
	require.Empty(t, none)
}

func testUserTransitions(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewUserStore(db)
	ta := userTestTenant(t, db, "a", false)
	u := userFixture(ta, "a@example.org", user.StatusActive)
	require.NoError(t, s.InsertUser(ctx, u))
	later := userT0.Add(time.Hour)

	ok, err := s.TransitionUser(ctx, u.ID, user.StatusActive, user.StatusSuspended, later)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.TransitionUser(ctx, u.ID, user.StatusActive, user.StatusSuspended, later)
	require.NoError(t, err)
	require.False(t, ok, "no longer active")
	got, err := s.UserByID(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, user.StatusSuspended, got.Status)
	require.Equal(t, later, got.UpdatedAt)

	// Activation with a first password only while the user has none.
	p := userFixture(ta, "p@example.org", user.StatusPendingVerification)
	require.NoError(t, s.InsertUser(ctx, p))
	ok, err = s.ActivateUser(ctx, p.ID, "", later)
	require.NoError(t, err)
	require.False(t, ok, "no password to keep")
	ok, err = s.ActivateUser(ctx, p.ID, "hash-1", later)
	require.NoError(t, err)
	require.True(t, ok)
	got, err = s.UserByID(ctx, p.ID)
	require.NoError(t, err)
	require.Equal(t, user.StatusActive, got.Status)
	require.Equal(t, "hash-1", got.PasswordHash)
	ok, err = s.ActivateUser(ctx, p.ID, "", later)
	require.NoError(t, err)
	require.False(t, ok, "already active")

	q := userFixture(ta, "q@example.org", user.StatusPendingVerification)
	q.PasswordHash = "hash-q"
	require.NoError(t, s.InsertUser(ctx, q))
	ok, err = s.ActivateUser(ctx, q.ID, "hash-2", later)
	require.NoError(t, err)
	require.False(t, ok, "has a password already")
	ok, err = s.ActivateUser(ctx, q.ID, "", later)
	require.NoError(t, err)
	require.True(t, ok)
}

func testUserErase(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewUserStore(db)
	ta := userTestTenant(t, db, "a", false)
	u := userFixture(ta, "a@example.org", user.StatusSuspended)
	u.PasswordHash = "hash"
	require.NoError(t, s.InsertUser(ctx, u))
	at := userT0.Add(2 * time.Hour)

	changed, err := s.EraseUser(ctx, u.ID, at)
	require.NoError(t, err)
	require.True(t, changed)
	got, err := s.UserByID(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, user.StatusDeactivated, got.Status)
	require.Empty(t, got.Email+got.FirstName+got.LastName+got.PasswordHash)
	require.NotNil(t, got.DeactivatedAt)
	require.Equal(t, at, *got.DeactivatedAt)

	changed, err = s.EraseUser(ctx, u.ID, at.Add(time.Hour))
	require.NoError(t, err)
	require.False(t, changed)
	again, err := s.UserByID(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, got, again)

	// The address is free again in the tenant; several erased users coexist.
	require.NoError(t, s.InsertUser(ctx, userFixture(ta, "a@example.org", user.StatusActive)))
	other := userFixture(ta, "b@example.org", user.StatusActive)
	require.NoError(t, s.InsertUser(ctx, other))
	_, err = s.EraseUser(ctx, other.ID, at)
	require.NoError(t, err)
}

func testVerificationTokens(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewUserStore(db)
	ta := userTestTenant(t, db, "a", false)
	u := userFixture(ta, "a@example.org", user.StatusPendingVerification)
	require.NoError(t, s.InsertUser(ctx, u))

	tok := user.VerificationToken{ID: core.NewID(), UserID: u.ID, TokenHash: "h1", ExpiresAt: userT0.Add(24 * time.Hour), CreatedAt: userT0}
	require.NoError(t, s.InsertVerificationToken(ctx, tok))
	require.Equal(t, core.KindConflict, core.KindOf(s.InsertVerificationToken(ctx,
		user.VerificationToken{ID: core.NewID(), UserID: u.ID, TokenHash: "h1", ExpiresAt: userT0, CreatedAt: userT0})))
	got, err := s.VerificationTokenByHash(ctx, "h1")
	require.NoError(t, err)
	require.Equal(t, tok, got)
	_, err = s.VerificationTokenByHash(ctx, "nope")
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	// Expired at exactly expires_at.
	ok, err := s.RedeemVerificationToken(ctx, "h1", tok.ExpiresAt)
	require.NoError(t, err)
	require.False(t, ok)
	redeemAt := tok.ExpiresAt.Add(-time.Microsecond)
	ok, err = s.RedeemVerificationToken(ctx, "h1", redeemAt)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.RedeemVerificationToken(ctx, "h1", redeemAt)
	require.NoError(t, err)
	require.False(t, ok, "single use")
	got, err = s.VerificationTokenByHash(ctx, "h1")
	require.NoError(t, err)
	require.NotNil(t, got.UsedAt)
	require.Equal(t, redeemAt, *got.UsedAt)

	// Concurrent redemptions: exactly one wins.
	require.NoError(t, s.InsertVerificationToken(ctx,
		user.VerificationToken{ID: core.NewID(), UserID: u.ID, TokenHash: "h2", ExpiresAt: userT0.Add(time.Hour), CreatedAt: userT0}))
	won := make([]bool, 10)
	errs := make([]error, len(won))
	var wg sync.WaitGroup
	for i := range won {
		wg.Go(func() {
			errs[i] = db.InTx(ctx, func(ctx context.Context) error {
				var err error
				won[i], err = s.RedeemVerificationToken(ctx, "h2", userT0)
				return err
			})
		})
	}
	wg.Wait()
	wins := 0
	for i := range won {
		require.NoError(t, errs[i])
		if won[i] {
			wins++
		}
	}
	require.Equal(t, 1, wins)

	require.NoError(t, s.DeleteVerificationTokens(ctx, u.ID))
	_, err = s.VerificationTokenByHash(ctx, "h2")
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))
}

func testRedactEvents(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewUserStore(db)
	ta, tb := userTestTenant(t, db, "a", false), userTestTenant(t, db, "b", false)
	victim := userFixture(ta, "v.ictim_1@example.org", user.StatusActive)
	twin := userFixture(tb, "v.ictim_1@example.org", user.StatusActive) // same address, other account
	bystander := userFixture(ta, "by@example.org", user.StatusActive)
	for _, u := range []user.User{victim, twin, bystander} {
		require.NoError(t, s.InsertUser(ctx, u))
	}
	sessionID := core.NewID()
	events := []core.Event{
		core.NewEvent(userT0, "identity.user.registered.v1", victim.ID, ta, map[string]any{
			"userId": victim.ID, "tenantId": ta, "email": victim.Email, "status": "pending_verification",
			"verificationUrl": "https://id.example.org/api/v1/auth/verify-email?token=abc", "n": 12345678901234567}),
		core.NewEvent(userT0, "identity.session.created.v1", sessionID, ta, map[string]any{
			"sessionId": sessionID, "userId": victim.ID, "profile": map[string]any{"firstName": "Ada", "lastName": "L"}}),
		core.NewEvent(userT0, "identity.test.v1", core.NewID(), ta, map[string]any{
			"note": "contact V.ICTIM_1@example.org please", "list": []any{"v.ictim_1@example.org", 1}}),
		core.NewEvent(userT0, "identity.user.registered.v1", twin.ID, tb, map[string]any{"userId": twin.ID, "email": twin.Email}),
		core.NewEvent(userT0, "identity.user.registered.v1", bystander.ID, ta, map[string]any{
			"userId": bystander.ID, "email": bystander.Email, "firstName": "Ada"}),
	}
	addEvents(t, db, events...)

	var n int
	require.NoError(t, db.InTx(ctx, func(ctx context.Context) error {
		var err error
		n, err = s.RedactEvents(ctx, user.Erasure{UserID: victim.ID, Email: victim.Email})
		return err
	}))
	require.Equal(t, 3, n)

	data := map[string]map[string]any{}
	for _, e := range allEvents(t, db) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(e.Data, &m), "valid JSON after redaction")
		data[e.ID] = m
	}
	reg := data[events[0].ID]
	require.Equal(t, "", reg["email"])
	require.Equal(t, victim.ID, reg["userId"])
	require.Equal(t, "https://id.example.org/api/v1/auth/verify-email?token=abc", reg["verificationUrl"])
	require.Equal(t, "12345678901234567", storedMember(t, db, events[0].ID, "n"), "numbers kept exactly")
	require.Equal(t, map[string]any{"firstName": "", "lastName": ""}, data[events[1].ID]["profile"])
	require.Equal(t, "contact  please", data[events[2].ID]["note"])
	require.Equal(t, []any{"", float64(1)}, data[events[2].ID]["list"])
	require.Equal(t, twin.Email, data[events[3].ID]["email"], "the other account keeps its address")
	require.Equal(t, "Ada", data[events[4].ID]["firstName"], "names stay in other users' events")

	// Nothing left to do: a second pass rewrites nothing.
	require.NoError(t, db.InTx(ctx, func(ctx context.Context) error {
		var err error
		n, err = s.RedactEvents(ctx, user.Erasure{UserID: victim.ID, Email: victim.Email})
		return err
	}))
	require.Zero(t, n)
}

// storedMember returns member key of the stored event id as its literal JSON text.
func storedMember(t *testing.T, db *persistence.DB, id, key string) string {
	t.Helper()
	evs, err := db.ListStoredEvents(context.Background(), audit.Query{AllTenants: true})
	require.NoError(t, err)
	for _, e := range evs {
		if e.ID == id {
			var m map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(e.Data, &m))
			return string(m[key])
		}
	}
	t.Fatalf("event %s not found", id)
	return ""
}

func testConcurrentUserInserts(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewUserStore(db)
	ta := userTestTenant(t, db, "a", false)
	const n = 5
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.InTx(ctx, func(ctx context.Context) error {
				return s.InsertUser(ctx, userFixture(ta, "race@example.org", user.StatusPendingVerification))
			})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		require.Equal(t, core.CodeEmailDuplicate, core.CodeOf(err), "%v", err)
	}
	require.Equal(t, 1, ok)
}
