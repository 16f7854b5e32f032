package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/federation"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testFederation(t *testing.T, open dbtest.Opener) {
	t.Run("provider upsert and lookup", func(t *testing.T) { testProviderUpsert(t, open(t)) })
	t.Run("external identities", func(t *testing.T) { testExternalIdentities(t, open(t)) })
	t.Run("users", func(t *testing.T) { testFederationUsers(t, open(t)) })
	t.Run("erasure removes external identities", func(t *testing.T) { testFederationErasure(t, open(t)) })
}

func providerFixture(tenantID, slug string) federation.Provider {
	return federation.Provider{ID: core.NewID(), TenantID: tenantID, Slug: slug, Issuer: "https://idp.example.org/" + slug,
		ClientID: "client-" + slug, ClientSecret: []byte{0x01, 0x02, 0x03, 0xff},
		Scopes: []string{"openid", "email", "profile"}, AllowedEmailDomains: []string{"example.org"},
		ReturnURLs: []string{"https://app.example.org/after-login"}, CreatedAt: userT0, UpdatedAt: userT0}
}

// federationLink inserts a tenant, an active user, a provider and returns
// them with an unsaved external identity of the user at that provider.
func federationLink(t *testing.T, db *persistence.DB, slug string) (federation.Provider, user.User, federation.ExternalIdentity) {
	t.Helper()
	ctx := context.Background()
	s := persistence.NewFederationStore(db)
	tenant := userTestTenant(t, db, slug, false)
	u := userFixture(tenant, slug+"@example.org", user.StatusActive)
	require.NoError(t, s.InsertUser(ctx, u))
	pf := providerFixture(tenant, "corp")
	pf.Issuer = "https://" + slug + ".idp.example.org"
	p, err := s.UpsertProvider(ctx, pf)
	require.NoError(t, err)
	e := federation.ExternalIdentity{ID: core.NewID(), UserID: u.ID, TenantID: tenant, ProviderID: p.ID,
		Issuer: p.Issuer, Subject: "sub-" + slug, CreatedAt: userT0}
	return p, u, e
}

func testProviderUpsert(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewFederationStore(db)
	ta, tb := userTestTenant(t, db, "fpa", false), userTestTenant(t, db, "fpb", false)

	p := providerFixture(ta, "corp")
	got, err := s.UpsertProvider(ctx, p)
	require.NoError(t, err)
	require.Equal(t, p, got, "insert returns the stored row")
	byID, err := s.ProviderByID(ctx, p.ID)
	require.NoError(t, err)
	require.Equal(t, p, byID)
	bySlug, err := s.ProviderBySlug(ctx, ta, "corp")
	require.NoError(t, err)
	require.Equal(t, p, bySlug)

	// An update by (tenant, slug) keeps the id and created_at and takes
	// everything else; nil lists come back as empty, non-nil lists.
	upd := federation.Provider{ID: core.NewID(), TenantID: ta, Slug: "corp", Issuer: "https://login.example.com",
		ClientID: "client-2", ClientSecret: []byte("sealed-2"), CreatedAt: userT0.Add(time.Hour), UpdatedAt: userT0.Add(2 * time.Hour)}
	got, err = s.UpsertProvider(ctx, upd)
	require.NoError(t, err)
	want := upd
	want.ID, want.CreatedAt = p.ID, p.CreatedAt
	want.Scopes, want.AllowedEmailDomains, want.ReturnURLs = []string{}, []string{}, []string{}
	require.Equal(t, want, got)
	require.NotNil(t, got.Scopes)
	require.NotNil(t, got.AllowedEmailDomains)
	require.NotNil(t, got.ReturnURLs)
	bySlug, err = s.ProviderBySlug(ctx, ta, "corp")
	require.NoError(t, err)
	require.Equal(t, want, bySlug)
	_, err = s.ProviderByID(ctx, upd.ID)
	require.Equal(t, core.CodeNotFound, core.CodeOf(err), "the update did not take the new id")

	// Empty (non-nil) lists read back the same as nil ones.
	empty := providerFixture(ta, "empty")
	empty.Scopes, empty.AllowedEmailDomains, empty.ReturnURLs = []string{}, nil, []string{}
	got, err = s.UpsertProvider(ctx, empty)
	require.NoError(t, err)
	require.Equal(t, []string{}, got.Scopes)
	require.Equal(t, []string{}, got.AllowedEmailDomains)
	require.Equal(t, []string{}, got.ReturnURLs)

	// The same slug in another tenant is another provider; an upsert joins
	// the transaction of ctx.
	other := providerFixture(tb, "corp")
	require.NoError(t, s.InTx(ctx, func(ctx context.Context) error {
		got, err = s.UpsertProvider(ctx, other)
		return err
	}))
	require.Equal(t, other, got)
	bySlug, err = s.ProviderBySlug(ctx, tb, "corp")
	require.NoError(t, err)
	require.Equal(t, other.ID, bySlug.ID)
	bySlug, err = s.ProviderBySlug(ctx, ta, "corp")
	require.NoError(t, err)
	require.Equal(t, p.ID, bySlug.ID)

	// A rolled-back upsert leaves nothing.
	rolled := providerFixture(tb, "rolled")
	errBoom := errors.New("boom")
	require.ErrorIs(t, s.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.UpsertProvider(ctx, rolled); err != nil {
			return err
		}
		return errBoom
	}), errBoom)
	_, err = s.ProviderBySlug(ctx, tb, "rolled")
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	for _, tenant := range []string{core.NewID(), "nope", ""} {
		_, err = s.UpsertProvider(ctx, providerFixture(tenant, "corp"))
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), "unknown tenant %q", tenant)
		require.Equal(t, core.KindNotFound, core.KindOf(err))
	}
	for _, c := range []struct{ tenant, slug string }{{ta, "missing"}, {core.NewID(), "corp"}, {"nope", "corp"}, {"", "corp"}, {ta, ""}} {
		_, err = s.ProviderBySlug(ctx, c.tenant, c.slug)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), "%q/%q", c.tenant, c.slug)
	}
	for _, id := range []string{core.NewID(), "nope", ""} {
		_, err = s.ProviderByID(ctx, id)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), id)
	}
}

func testExternalIdentities(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewFederationStore(db)
	p, u, e := federationLink(t, db, "fea")
	require.NoError(t, s.InsertExternalIdentity(ctx, e))
	got, err := s.ExternalIdentity(ctx, e.Issuer, e.Subject)
	require.NoError(t, err)
	require.Equal(t, e, got)

	// (issuer, subject) is unique across all tenants.
	p2, u2, _ := federationLink(t, db, "feb")
	dup := federation.ExternalIdentity{ID: core.NewID(), UserID: u2.ID, TenantID: u2.TenantID, ProviderID: p2.ID,
		Issuer: e.Issuer, Subject: e.Subject, CreatedAt: userT0}
	err = s.InsertExternalIdentity(ctx, dup)
	require.Equal(t, core.KindConflict, core.KindOf(err))
	require.Equal(t, core.CodeConflict, core.CodeOf(err))
	sameID := e
	sameID.Subject = "another"
	require.Equal(t, core.KindConflict, core.KindOf(s.InsertExternalIdentity(ctx, sameID)), "duplicate id")

	// The same subject at another issuer, and another subject of the same
	// user, are other links.
	otherIss := federation.ExternalIdentity{ID: core.NewID(), UserID: u2.ID, TenantID: u2.TenantID, ProviderID: p2.ID,
		Issuer: p2.Issuer, Subject: e.Subject, CreatedAt: userT0.Add(time.Second)}
	require.NoError(t, s.InsertExternalIdentity(ctx, otherIss))
	second := federation.ExternalIdentity{ID: core.NewID(), UserID: u.ID, TenantID: u.TenantID, ProviderID: p.ID,
		Issuer: p.Issuer, Subject: "sub-2", CreatedAt: userT0}
	require.NoError(t, s.InsertExternalIdentity(ctx, second))
	got, err = s.ExternalIdentity(ctx, p2.Issuer, e.Subject)
	require.NoError(t, err)
	require.Equal(t, otherIss, got)

	// References must exist.
	orphan := second
	orphan.ID, orphan.Subject, orphan.UserID = core.NewID(), "sub-3", core.NewID()
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertExternalIdentity(ctx, orphan)), "unknown user")
	orphan.UserID, orphan.ProviderID = u.ID, core.NewID()
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertExternalIdentity(ctx, orphan)), "unknown provider")

	for _, c := range []struct{ iss, sub string }{{e.Issuer, "missing"}, {"https://other.example", e.Subject}, {"", e.Subject}, {e.Issuer, ""}} {
		_, err = s.ExternalIdentity(ctx, c.iss, c.sub)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), "%q/%q", c.iss, c.sub)
	}
}

func testFederationUsers(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewFederationStore(db)
	ta, tb := userTestTenant(t, db, "fua", false), userTestTenant(t, db, "fub", false)
	u := userFixture(ta, "jit@example.org", user.StatusActive)
	require.NoError(t, s.InsertUser(ctx, u))
	got, err := s.UserByID(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, u, got)
	require.Empty(t, got.PasswordHash)
	got, err = s.UserByEmailInTenant(ctx, ta, "jit@example.org")
	require.NoError(t, err)
	require.Equal(t, u, got)

	err = s.InsertUser(ctx, userFixture(ta, "jit@example.org", user.StatusActive))
	require.Equal(t, core.CodeEmailDuplicate, core.CodeOf(err))
	require.Equal(t, core.KindConflict, core.KindOf(err))
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertUser(ctx, userFixture(core.NewID(), "x@example.org", user.StatusActive))))

	for _, c := range []struct{ tenant, email string }{
		{tb, "jit@example.org"}, {ta, "other@example.org"}, {"nope", "jit@example.org"},
		{core.NewID(), "jit@example.org"}, {ta, ""},
		{"jit@example.org", ta}, // swapped arguments find nothing
	} {
		_, err = s.UserByEmailInTenant(ctx, c.tenant, c.email)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), "%q/%q", c.tenant, c.email)
	}
	for _, id := range []string{core.NewID(), "nope", ""} {
		_, err = s.UserByID(ctx, id)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), id)
	}
}

func testFederationErasure(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewFederationStore(db)
	users := persistence.NewUserStore(db)
	p, u, e := federationLink(t, db, "fer")
	require.NoError(t, s.InsertExternalIdentity(ctx, e))
	e2 := e
	e2.ID, e2.Subject = core.NewID(), "fer-second-subject"
	require.NoError(t, s.InsertExternalIdentity(ctx, e2))
	_, other, keep := federationLink(t, db, "fek")
	require.NoError(t, s.InsertExternalIdentity(ctx, keep))

	require.NoError(t, s.InTx(ctx, func(ctx context.Context) error {
		changed, err := users.EraseUser(ctx, u.ID, userT0.Add(time.Hour))
		if err == nil && !changed {
			err = errors.New("erasure changed no row")
		}
		return err
	}))
	for _, sub := range []string{e.Subject, e2.Subject} {
		_, err := s.ExternalIdentity(ctx, e.Issuer, sub)
		require.Equal(t, core.CodeNotFound, core.CodeOf(err), sub)
		require.Empty(t, dbtest.FindEverywhere(t, db, sub), "no trace of the IdP subject %s", sub)
	}
	got, err := s.ExternalIdentity(ctx, keep.Issuer, keep.Subject)
	require.NoError(t, err, "another user's link stays")
	require.Equal(t, other.ID, got.UserID)

	// The subject is free again, e.g. for a new account of the person.
	fresh := userFixture(u.TenantID, "again@example.org", user.StatusActive)
	require.NoError(t, s.InsertUser(ctx, fresh))
	relink := e
	relink.ID, relink.UserID, relink.ProviderID = core.NewID(), fresh.ID, p.ID
	require.NoError(t, s.InsertExternalIdentity(ctx, relink))

	// Outside a transaction the erasure is atomic on its own, and a second
	// erasure (which changes no row) still leaves no link behind.
	changed, err := users.EraseUser(ctx, fresh.ID, userT0.Add(2*time.Hour))
	require.NoError(t, err)
	require.True(t, changed)
	_, err = s.ExternalIdentity(ctx, relink.Issuer, relink.Subject)
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))
	changed, err = users.EraseUser(ctx, fresh.ID, userT0.Add(3*time.Hour))
	require.NoError(t, err)
	require.False(t, changed)
}
