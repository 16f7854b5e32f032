package federation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

const testIssuer = "https://idp.example.org"

func aliceClaims() claims {
	return claims{Issuer: testIssuer, Subject: "sub-alice", Email: "alice@a.example.org", EmailVerified: true,
		GivenName: "Alice", FamilyName: "Liddell"}
}

// linkTx runs link in a transaction, as Callback does.
func (f *fixture) linkTx(p Provider, c claims) (string, error) {
	var id string
	err := f.store.InTx(context.Background(), func(ctx context.Context) error {
		var err error
		id, err = f.svc.link(ctx, p, c)
		return err
	})
	return id, err
}

func (f *fixture) addLink(userID, tenantID, providerID string, c claims) {
	f.store.mu.Lock()
	defer f.store.mu.Unlock()
	f.store.exts[extKey(c.Issuer, c.Subject)] = ExternalIdentity{ID: core.NewID(), UserID: userID, TenantID: tenantID,
		ProviderID: providerID, Issuer: c.Issuer, Subject: c.Subject, CreatedAt: fedT0}
}

// requireLinked checks the one link of c and its one linked event.
func requireLinked(t *testing.T, f *fixture, p Provider, c claims, userID string) {
	t.Helper()
	exts, _, events := f.store.snapshot()
	require.Len(t, exts, 1)
	e := exts[0]
	require.True(t, core.ValidID(e.ID))
	require.Equal(t, ExternalIdentity{ID: e.ID, UserID: userID, TenantID: p.TenantID, ProviderID: p.ID,
		Issuer: c.Issuer, Subject: c.Subject, CreatedAt: f.clock.Now()}, e)

	require.Len(t, events, 1)
	ev := events[0]
	require.Equal(t, EventExternalIdentityLinked, ev.Type)
	require.Equal(t, "identity.external_identity.linked.v1", ev.Type)
	require.Equal(t, userID, ev.Subject)
	require.Equal(t, p.TenantID, ev.TenantID)
	require.Equal(t, f.clock.Now(), ev.Time)
	require.True(t, core.ValidID(ev.ID))
	require.Equal(t, LinkedData{UserID: userID, TenantID: p.TenantID, Issuer: c.Issuer, Subject: c.Subject,
		Provider: p.Slug}, ev.Data)
}

func TestLinkExistingLinkSameTenant(t *testing.T) {
	f := newFixture(t)
	p := f.seedProvider(t, f.tenantA, "okta", testIssuer)
	u := f.store.addUser(f.tenantA, "someone-else@a.example.org")
	c := aliceClaims()
	f.addLink(u.ID, f.tenantA, p.ID, c)

	// The link wins over the email, verified or not.
	c.EmailVerified = false
	id, err := f.linkTx(p, c)
	require.NoError(t, err)
	require.Equal(t, u.ID, id)
	exts, users, events := f.store.snapshot()
	require.Len(t, exts, 1)
	require.Len(t, users, 1)
	require.Empty(t, events)
}

func TestLinkLinkedInAnotherTenant(t *testing.T) {
	f := newFixture(t)
	pa := f.seedProvider(t, f.tenantA, "okta", testIssuer)
	pb := f.seedProvider(t, f.tenantB, "okta", testIssuer)
	ub := f.store.addUser(f.tenantB, "alice@a.example.org")
	f.store.addUser(f.tenantA, "alice@a.example.org")
	f.addLink(ub.ID, f.tenantB, pb.ID, aliceClaims())

	_, err := f.linkTx(pa, aliceClaims())
	requireCode(t, core.CodeExtIdentityMismatch, err)
	require.Equal(t, core.KindConflict, core.KindOf(err))
	exts, users, events := f.store.snapshot()
	require.Len(t, exts, 1)
	require.Len(t, users, 2)
	require.Empty(t, events)
}

func TestLinkExistingUserVerifiedEmail(t *testing.T) {
	f := newFixture(t)
	p := f.seedProvider(t, f.tenantA, "okta", testIssuer)
	u := f.store.addUser(f.tenantA, "alice@a.example.org")
	f.store.addUser(f.tenantB, "alice@a.example.org") // same email, other tenant
	f.clock.Advance(time.Hour)

	id, err := f.linkTx(p, aliceClaims())
	require.NoError(t, err)
	require.Equal(t, u.ID, id)
	requireLinked(t, f, p, aliceClaims(), u.ID)
	_, users, _ := f.store.snapshot()
	require.Len(t, users, 2, "no user provisioned")

	// The next login finds the link: same user, no new event.
	id, err = f.linkTx(p, aliceClaims())
	require.NoError(t, err)
	require.Equal(t, u.ID, id)
	_, _, events := f.store.snapshot()
	require.Len(t, events, 1)
}

func TestLinkExistingUserUnverifiedEmail(t *testing.T) {
	f := newFixture(t)
	p := f.seedProvider(t, f.tenantA, "okta", testIssuer)
	f.store.addUser(f.tenantA, "alice@a.example.org")
	c := aliceClaims()
	c.EmailVerified = false

	_, err := f.linkTx(p, c)
	requireCode(t, core.CodeEmailDuplicate, err)
	exts, users, events := f.store.snapshot()
	require.Empty(t, exts, "nothing linked")
	require.Len(t, users, 1, "nothing provisioned")
	require.Empty(t, events)
}

func TestLinkJITProvisioning(t *testing.T) {
	long := strings.Repeat("x", 101)
	cases := []struct {
		name        string
		edit        func(c *claims)
		first, last string
	}{
		{"names from claims", func(c *claims) {}, "Alice", "Liddell"},
		{"names trimmed", func(c *claims) { c.GivenName, c.FamilyName = "  Alice ", " Liddell  " }, "Alice", "Liddell"},
		{"given_name missing", func(c *claims) { c.GivenName = "" }, "alice", "Liddell"},
		{"given_name blank", func(c *claims) { c.GivenName = "   " }, "alice", "Liddell"},
		{"given_name too long", func(c *claims) { c.GivenName = long }, "alice", "Liddell"},
		{"given_name with a control character", func(c *claims) { c.GivenName = "Al\x00ice" }, "alice", "Liddell"},
		{"family_name missing", func(c *claims) { c.FamilyName = "" }, "Alice", "-"},
		{"family_name too long", func(c *claims) { c.FamilyName = long }, "Alice", "-"},
		{"both missing", func(c *claims) { c.GivenName, c.FamilyName = "", "" }, "alice", "-"},
		{"local part unusable too", func(c *claims) {
			c.GivenName, c.Email = "", strings.Repeat("l", 101)+"@a.example.org"
		}, "User", "Liddell"},
		{"unicode names", func(c *claims) { c.GivenName, c.FamilyName = "Zoë", "Ångström" }, "Zoë", "Ångström"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.seedProvider(t, f.tenantA, "okta", testIssuer)
			f.store.addUser(f.tenantB, "alice@a.example.org") // other tenant: not a match
			c := aliceClaims()
			c.EmailVerified = false // JIT does not need a verified email
			tc.edit(&c)
			f.clock.Advance(time.Minute)

			id, err := f.linkTx(p, c)
			require.NoError(t, err)
			u, err := f.store.UserByID(context.Background(), id)
			require.NoError(t, err)
			now := f.clock.Now()
			require.Equal(t, user.User{ID: id, TenantID: f.tenantA, Email: c.Email, FirstName: tc.first, LastName: tc.last,
				Status: user.StatusActive, CreatedAt: now, UpdatedAt: now}, u)
			require.Empty(t, u.PasswordHash)
			requireLinked(t, f, p, c, id)
		})
	}
}

// A failure after provisioning rolls the whole link back.
func TestLinkFailuresRollBack(t *testing.T) {
	t.Run("link insert conflicts", func(t *testing.T) {
		f := newFixture(t)
		p := f.seedProvider(t, f.tenantA, "okta", testIssuer)
		f.store.insertExtErr = core.E(core.KindConflict, core.CodeConflict, "raced")
		_, err := f.linkTx(p, aliceClaims())
		requireCode(t, core.CodeConflict, err)
		exts, users, events := f.store.snapshot()
		require.Empty(t, exts)
		require.Empty(t, users, "the JIT user is rolled back")
		require.Empty(t, events)
	})
	t.Run("lookup of the link fails", func(t *testing.T) {
		f := newFixture(t)
		p := f.seedProvider(t, f.tenantA, "okta", testIssuer)
		f.store.extErr = core.Unavailable(errors.New("db down"))
		_, err := f.linkTx(p, aliceClaims())
		requireCode(t, core.CodeUnavailable, err)
	})
	t.Run("lookup of the user fails", func(t *testing.T) {
		f := newFixture(t)
		p := f.seedProvider(t, f.tenantA, "okta", testIssuer)
		f.store.userByEmail = core.Unavailable(errors.New("db down"))
		_, err := f.linkTx(p, aliceClaims())
		requireCode(t, core.CodeUnavailable, err)
		exts, users, _ := f.store.snapshot()
		require.Empty(t, exts)
		require.Empty(t, users)
	})
	t.Run("events need the transaction", func(t *testing.T) {
		f := newFixture(t)
		p := f.seedProvider(t, f.tenantA, "okta", testIssuer)
		_, err := f.svc.link(context.Background(), p, aliceClaims())
		require.Error(t, err, "the fake outbox refuses events outside a transaction")
	})
}

func TestProviderAllowedEmail(t *testing.T) {
	open := Provider{}
	require.True(t, open.allowedEmail("anyone@anywhere.example"))

	p := Provider{AllowedEmailDomains: []string{"a.example.org", "example.com"}}
	cases := map[string]bool{
		"alice@a.example.org":      true,
		"bob@example.com":          true,
		"eve@b.example.org":        false,
		"eve@sub.a.example.org":    false,
		"eve@example.com.evil.org": false,
		"a.example.org":            false,
		"@a.example.org":           false,
		"":                         false,
	}
	for email, want := range cases {
		require.Equal(t, want, p.allowedEmail(email), email)
	}
}
