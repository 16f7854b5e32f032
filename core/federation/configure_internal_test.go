package federation

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
)

const testSecret = "pl41nt3xt-client-secret"

// validInput is a ProviderInput that ConfigureProvider accepts against f.idp.
func (f *fixture) validInput(tenantID string) ProviderInput {
	return ProviderInput{
		TenantID: tenantID, Slug: "okta", Issuer: f.idp.issuer(), ClientID: "identity-service",
		ClientSecret: testSecret,
	}
}

func TestConfigureProviderAuthorization(t *testing.T) {
	f := newFixture(t)
	restricted := core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser,
		ID: f.adminA, TenantID: f.tenantA, Restricted: true})
	serviceAccount := core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalServiceAccount,
		ID: core.NewID(), TenantID: f.tenantA})
	authFailed := core.WithAuthError(context.Background(), core.Unauthenticated(errors.New("expired")))

	cases := []struct {
		name string
		ctx  context.Context
		in   ProviderInput
		want string // "" for success
	}{
		{"no principal", context.Background(), f.validInput(f.tenantA), core.CodeUnauthenticated},
		{"credential failed verification", authFailed, f.validInput(f.tenantA), core.CodeUnauthenticated},
		{"restricted credential", restricted, f.validInput(f.tenantA), core.CodeForbidden},
		{"plain user of the tenant", as(f.nurseA, f.tenantA), f.validInput(f.tenantA), core.CodeForbidden},
		{"service account", serviceAccount, f.validInput(f.tenantA), core.CodeForbidden},
		{"tenant admin of another tenant", as(f.adminB, f.tenantB), f.validInput(f.tenantA), core.CodeCrossTenant},
		{"tenant admin of another tenant, invalid input", as(f.adminB, f.tenantB),
			ProviderInput{TenantID: f.tenantA}, core.CodeCrossTenant},
		{"tenant admin of the tenant", f.asAdminA(), f.validInput(f.tenantA), ""},
		{"tenant admin, tenant defaults to the caller's", f.asAdminA(), f.validInput(""), ""},
		{"super admin", f.asSuperAdmin(), f.validInput(f.tenantB), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hits := f.idp.discoveryHits.Load()
			p, err := f.svc.ConfigureProvider(tc.ctx, tc.in)
			if tc.want != "" {
				requireCode(t, tc.want, err)
				require.Equal(t, hits, f.idp.discoveryHits.Load(), "a refused caller never reaches the IdP")
				return
			}
			require.NoError(t, err)
			want := tc.in.TenantID
			if want == "" {
				want = f.tenantA
			}
			require.Equal(t, want, p.TenantID)
		})
	}
}

func TestConfigureProviderSuperAdminDefaultsToPlatformTenant(t *testing.T) {
	f := newFixture(t)
	p, err := f.svc.ConfigureProvider(f.asSuperAdmin(), f.validInput(""))
	require.NoError(t, err)
	require.Equal(t, f.platform, p.TenantID)
}

func TestConfigureProviderValidation(t *testing.T) {
	f := newFixture(t)
	strict := f.newService(func() Config { c := testConfig(f.clock); c.AllowInsecureIssuer = false; return c }())

	manyScopes := make([]string, 20)
	for i := range manyScopes {
		manyScopes[i] = fmt.Sprintf("scope%d", i)
	}

	cases := []struct {
		name   string
		svc    *Service // nil: f.svc
		edit   func(in *ProviderInput)
		fields []string
	}{
		{"tenantId not a UUID", nil, func(in *ProviderInput) { in.TenantID = "clinic-a" }, []string{"tenantId"}},

		{"slug empty", nil, func(in *ProviderInput) { in.Slug = "" }, []string{"slug"}},
		{"slug upper case", nil, func(in *ProviderInput) { in.Slug = "Okta" }, []string{"slug"}},
		{"slug leading dash", nil, func(in *ProviderInput) { in.Slug = "-okta" }, []string{"slug"}},
		{"slug trailing dash", nil, func(in *ProviderInput) { in.Slug = "okta-" }, []string{"slug"}},
		{"slug underscore", nil, func(in *ProviderInput) { in.Slug = "ok_ta" }, []string{"slug"}},
		{"slug slash", nil, func(in *ProviderInput) { in.Slug = "ok/ta" }, []string{"slug"}},
		{"slug 64 chars", nil, func(in *ProviderInput) { in.Slug = strings.Repeat("a", 64) }, []string{"slug"}},

		{"issuer empty", nil, func(in *ProviderInput) { in.Issuer = "" }, []string{"issuer"}},
		{"issuer relative", nil, func(in *ProviderInput) { in.Issuer = "/realms/x" }, []string{"issuer"}},
		{"issuer not a URL", nil, func(in *ProviderInput) { in.Issuer = "https://exa mple.org/%zz" }, []string{"issuer"}},
		{"issuer without host", nil, func(in *ProviderInput) { in.Issuer = "https:///realms/x" }, []string{"issuer"}},
		{"issuer ftp", nil, func(in *ProviderInput) { in.Issuer = "ftp://idp.example.org" }, []string{"issuer"}},
		{"issuer http without AllowInsecureIssuer", strict, func(in *ProviderInput) {}, []string{"issuer"}},
		{"issuer with credentials", nil, func(in *ProviderInput) { in.Issuer = "https://u:p@idp.example.org" }, []string{"issuer"}},
		{"issuer with user only", nil, func(in *ProviderInput) { in.Issuer = "https://u@idp.example.org" }, []string{"issuer"}},
		{"issuer with query", nil, func(in *ProviderInput) { in.Issuer = "https://idp.example.org?realm=x" }, []string{"issuer"}},
		{"issuer with fragment", nil, func(in *ProviderInput) { in.Issuer = "https://idp.example.org#x" }, []string{"issuer"}},

		{"clientId empty", nil, func(in *ProviderInput) { in.ClientID = "" }, []string{"clientId"}},
		{"clientId blank", nil, func(in *ProviderInput) { in.ClientID = "   " }, []string{"clientId"}},
		{"clientId 256 chars", nil, func(in *ProviderInput) { in.ClientID = strings.Repeat("c", 256) }, []string{"clientId"}},

		{"clientSecret empty", nil, func(in *ProviderInput) { in.ClientSecret = "" }, []string{"clientSecret"}},
		{"clientSecret 1025 chars", nil, func(in *ProviderInput) { in.ClientSecret = strings.Repeat("s", 1025) }, []string{"clientSecret"}},

		{"scope empty", nil, func(in *ProviderInput) { in.Scopes = []string{"email", ""} }, []string{"scopes"}},
		{"scope blank", nil, func(in *ProviderInput) { in.Scopes = []string{"  "} }, []string{"scopes"}},
		{"scope with space", nil, func(in *ProviderInput) { in.Scopes = []string{"email profile"} }, []string{"scopes"}},
		{"scope with quote", nil, func(in *ProviderInput) { in.Scopes = []string{`em"ail`} }, []string{"scopes"}},
		{"scope with backslash", nil, func(in *ProviderInput) { in.Scopes = []string{`em\ail`} }, []string{"scopes"}},
		{"scope 101 chars", nil, func(in *ProviderInput) { in.Scopes = []string{strings.Repeat("x", 101)} }, []string{"scopes"}},
		{"21 scopes with openid", nil, func(in *ProviderInput) { in.Scopes = manyScopes }, []string{"scopes"}},

		{"domain with @", nil, func(in *ProviderInput) { in.AllowedEmailDomains = []string{"@example.org"} }, []string{"allowedEmailDomains"}},
		{"domain without dot", nil, func(in *ProviderInput) { in.AllowedEmailDomains = []string{"localhost"} }, []string{"allowedEmailDomains"}},
		{"domain empty", nil, func(in *ProviderInput) { in.AllowedEmailDomains = []string{""} }, []string{"allowedEmailDomains"}},
		{"domain with slash", nil, func(in *ProviderInput) { in.AllowedEmailDomains = []string{"example.org/x"} }, []string{"allowedEmailDomains"}},
		{"domain with space", nil, func(in *ProviderInput) { in.AllowedEmailDomains = []string{"exa mple.org"} }, []string{"allowedEmailDomains"}},
		{"domain with NUL", nil, func(in *ProviderInput) { in.AllowedEmailDomains = []string{"exa\x00mple.org"} }, []string{"allowedEmailDomains"}},
		{"domain not UTF-8", nil, func(in *ProviderInput) { in.AllowedEmailDomains = []string{"caf\xe9.org"} }, []string{"allowedEmailDomains"}},
		{"domain IDNA refuses", nil, func(in *ProviderInput) { in.AllowedEmailDomains = []string{"xn--a.org"} }, []string{"allowedEmailDomains"}},
		{"domain empty label", nil, func(in *ProviderInput) { in.AllowedEmailDomains = []string{"example..org"} }, []string{"allowedEmailDomains"}},
		{"domain label leading dash", nil, func(in *ProviderInput) { in.AllowedEmailDomains = []string{"-example.org"} }, []string{"allowedEmailDomains"}},
		{"domain label 64 chars", nil, func(in *ProviderInput) { in.AllowedEmailDomains = []string{strings.Repeat("a", 64) + ".org"} }, []string{"allowedEmailDomains"}},
		{"domain 254 chars", nil, func(in *ProviderInput) { in.AllowedEmailDomains = []string{strings.Repeat("abcdefghi.", 25) + "orgx"} }, []string{"allowedEmailDomains"}},
		{"101 domains", nil, func(in *ProviderInput) { in.AllowedEmailDomains = numbered("d%d.example.org", 101) }, []string{"allowedEmailDomains"}},

		{"returnUrl relative", nil, func(in *ProviderInput) { in.ReturnURLs = []string{"/done"} }, []string{"returnUrls"}},
		{"returnUrl without scheme", nil, func(in *ProviderInput) { in.ReturnURLs = []string{"app.example.org/done"} }, []string{"returnUrls"}},
		{"returnUrl https without host", nil, func(in *ProviderInput) { in.ReturnURLs = []string{"https:///done"} }, []string{"returnUrls"}},
		{"returnUrl with query", nil, func(in *ProviderInput) { in.ReturnURLs = []string{"https://app.example.org/done?x=1"} }, []string{"returnUrls"}},
		{"returnUrl with fragment", nil, func(in *ProviderInput) { in.ReturnURLs = []string{"https://app.example.org/done#x"} }, []string{"returnUrls"}},
		{"returnUrl with credentials", nil, func(in *ProviderInput) { in.ReturnURLs = []string{"https://u:p@app.example.org/done"} }, []string{"returnUrls"}},
		{"returnUrl javascript", nil, func(in *ProviderInput) { in.ReturnURLs = []string{"javascript:alert(1)"} }, []string{"returnUrls"}},
		{"returnUrl JavaScript", nil, func(in *ProviderInput) { in.ReturnURLs = []string{"JavaScript:alert(1)"} }, []string{"returnUrls"}},
		{"returnUrl unparsable", nil, func(in *ProviderInput) { in.ReturnURLs = []string{"https://app.example.org/%zz"} }, []string{"returnUrls"}},
		{"returnUrl with NUL", nil, func(in *ProviderInput) { in.ReturnURLs = []string{"https://app.example.org/d\x00one"} }, []string{"returnUrls"}},
		{"returnUrl not UTF-8", nil, func(in *ProviderInput) { in.ReturnURLs = []string{"https://app.example.org/caf\xe9"} }, []string{"returnUrls"}},
		{"returnUrl 2049 bytes", nil, func(in *ProviderInput) {
			in.ReturnURLs = []string{"https://app.example.org/" + strings.Repeat("a", 2049-24)}
		}, []string{"returnUrls"}},
		{"21 returnUrls", nil, func(in *ProviderInput) { in.ReturnURLs = numbered("https://app.example.org/%d", 21) }, []string{"returnUrls"}},

		{"every field at once", nil, func(in *ProviderInput) {
			*in = ProviderInput{TenantID: "x", Slug: "X", Issuer: "ftp://x", Scopes: []string{"a b"},
				AllowedEmailDomains: []string{"nodot"}, ReturnURLs: []string{"/x"}}
		}, []string{"tenantId", "slug", "issuer", "clientId", "clientSecret", "scopes", "allowedEmailDomains", "returnUrls"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := tc.svc
			if svc == nil {
				svc = f.svc
			}
			in := f.validInput(f.tenantA)
			tc.edit(&in)
			hits := f.idp.discoveryHits.Load()
			_, err := svc.ConfigureProvider(f.asSuperAdmin(), in)
			requireFields(t, err, tc.fields...)
			require.Equal(t, hits, f.idp.discoveryHits.Load(), "invalid input never reaches the IdP")
		})
	}
	require.Empty(t, f.store.upserts)
}

func TestConfigureProviderNormalizes(t *testing.T) {
	f := newFixture(t)
	twenty := []string{"openid"}
	for i := range 19 {
		twenty = append(twenty, fmt.Sprintf("scope%d", i))
	}
	cases := []struct {
		name string
		edit func(in *ProviderInput)
		want func(t *testing.T, p Provider)
	}{
		{"slug, issuer, clientId trimmed", func(in *ProviderInput) {
			in.Slug, in.Issuer, in.ClientID = " okta ", " "+in.Issuer+" ", " cid "
		}, func(t *testing.T, p Provider) {
			require.Equal(t, "okta", p.Slug)
			require.Equal(t, f.idp.issuer(), p.Issuer)
			require.Equal(t, "cid", p.ClientID)
		}},
		{"1- and 63-character slugs", func(in *ProviderInput) { in.Slug = "a" }, func(t *testing.T, p Provider) {
			require.Equal(t, "a", p.Slug)
		}},
		{"63-character slug", func(in *ProviderInput) { in.Slug = "a" + strings.Repeat("-", 61) + "z" }, func(t *testing.T, p Provider) {
			require.Len(t, p.Slug, 63)
		}},
		{"bounds of clientId and secret", func(in *ProviderInput) {
			in.ClientID, in.ClientSecret = strings.Repeat("c", 255), strings.Repeat("s", 1024)
		}, func(t *testing.T, p Provider) { require.Len(t, p.ClientID, 255) }},
		{"default scopes (nil)", func(in *ProviderInput) { in.Scopes = nil }, func(t *testing.T, p Provider) {
			require.Equal(t, []string{"openid", "email", "profile"}, p.Scopes)
		}},
		{"default scopes (empty)", func(in *ProviderInput) { in.Scopes = []string{} }, func(t *testing.T, p Provider) {
			require.Equal(t, []string{"openid", "email", "profile"}, p.Scopes)
		}},
		{"openid added first", func(in *ProviderInput) { in.Scopes = []string{"email"} }, func(t *testing.T, p Provider) {
			require.Equal(t, []string{"openid", "email"}, p.Scopes)
		}},
		{"openid moved first, duplicates removed, trimmed", func(in *ProviderInput) {
			in.Scopes = []string{"email", "openid", " profile ", "email", "groups"}
		}, func(t *testing.T, p Provider) {
			require.Equal(t, []string{"openid", "email", "profile", "groups"}, p.Scopes)
		}},
		{"20 scopes", func(in *ProviderInput) { in.Scopes = twenty }, func(t *testing.T, p Provider) {
			require.Equal(t, twenty, p.Scopes)
		}},
		{"domains lower-cased, trimmed, deduplicated", func(in *ProviderInput) {
			in.AllowedEmailDomains = []string{" Example.ORG ", "example.org", "b.example.org"}
		}, func(t *testing.T, p Provider) {
			require.Equal(t, []string{"example.org", "b.example.org"}, p.AllowedEmailDomains)
		}},
		{"100 domains, an IDN in xn-- form, a 253-byte name", func(in *ProviderInput) {
			in.AllowedEmailDomains = append(numbered("d%d.example.org", 98), "xn--caf-dma.example", strings.Repeat("abcdefghi.", 25)+"org")
		}, func(t *testing.T, p Provider) {
			require.Len(t, p.AllowedEmailDomains, 100)
		}},
		{"20 return URLs of up to 2048 bytes", func(in *ProviderInput) {
			in.ReturnURLs = append(numbered("https://app.example.org/%d", 19), "https://app.example.org/"+strings.Repeat("a", 2048-24))
		}, func(t *testing.T, p Provider) {
			require.Len(t, p.ReturnURLs, 20)
		}},
		{"internationalised domains stored in their ASCII form", func(in *ProviderInput) {
			in.AllowedEmailDomains = []string{"Café.org", "xn--caf-dma.org", "وزارت.af"}
		}, func(t *testing.T, p Provider) {
			require.Equal(t, []string{"xn--caf-dma.org", "xn--mgbguc3i.af"}, p.AllowedEmailDomains)
		}},
		{"no domains is an empty list", func(in *ProviderInput) { in.AllowedEmailDomains = nil }, func(t *testing.T, p Provider) {
			require.NotNil(t, p.AllowedEmailDomains)
			require.Empty(t, p.AllowedEmailDomains)
		}},
		{"return URLs trimmed and deduplicated; app schemes allowed", func(in *ProviderInput) {
			in.ReturnURLs = []string{" https://app.example.org/done ", "https://app.example.org/done", "ghasi-app://auth/callback",
				"http://localhost:5173/cb"}
		}, func(t *testing.T, p Provider) {
			require.Equal(t, []string{"https://app.example.org/done", "ghasi-app://auth/callback", "http://localhost:5173/cb"}, p.ReturnURLs)
		}},
		{"no return URLs is an empty list", func(in *ProviderInput) { in.ReturnURLs = nil }, func(t *testing.T, p Provider) {
			require.NotNil(t, p.ReturnURLs)
			require.Empty(t, p.ReturnURLs)
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := f.validInput(f.tenantA)
			in.Slug = fmt.Sprintf("p%d", i)
			tc.edit(&in)
			p, err := f.svc.ConfigureProvider(f.asSuperAdmin(), in)
			require.NoError(t, err)
			tc.want(t, p)
			stored, err := f.store.ProviderByID(context.Background(), p.ID)
			require.NoError(t, err)
			require.Equal(t, p, stored)
		})
	}
}

func TestConfigureProviderStoresAndSeals(t *testing.T) {
	f := newFixture(t)
	in := f.validInput(f.tenantA)
	in.Scopes = []string{"email"}
	in.AllowedEmailDomains = []string{"a.example.org"}
	in.ReturnURLs = []string{"https://app.example.org/done"}

	p, err := f.svc.ConfigureProvider(f.asAdminA(), in)
	require.NoError(t, err)
	require.True(t, core.ValidID(p.ID))
	require.Equal(t, fedT0, p.CreatedAt)
	require.Equal(t, fedT0, p.UpdatedAt)
	require.Equal(t, Provider{
		ID: p.ID, TenantID: f.tenantA, Slug: "okta", Issuer: f.idp.issuer(), ClientID: "identity-service",
		ClientSecret: p.ClientSecret, Scopes: []string{"openid", "email"},
		AllowedEmailDomains: []string{"a.example.org"}, ReturnURLs: []string{"https://app.example.org/done"},
		CreatedAt: fedT0, UpdatedAt: fedT0,
	}, p)
	require.Equal(t, int32(1), f.idp.discoveryHits.Load(), "discovery is checked")

	// The store only ever saw the sealed secret.
	require.Len(t, f.store.upserts, 1)
	require.NotContains(t, string(f.store.upserts[0].ClientSecret), testSecret)
	require.NotEqual(t, []byte(testSecret), p.ClientSecret)

	// Sealed with AAD bound to tenant and slug.
	plain, err := f.sealer.Unwrap(p.ClientSecret, []byte("oidc-client-secret:"+f.tenantA+"/okta"))
	require.NoError(t, err)
	require.Equal(t, testSecret, string(plain))
	for _, aad := range [][]byte{secretAAD(f.tenantB, "okta"), secretAAD(f.tenantA, "other"), []byte(p.ID), nil} {
		_, err := f.sealer.Unwrap(p.ClientSecret, aad)
		require.Error(t, err, "aad %q", aad)
	}

	// Reconfiguring the slug keeps id and creation time, replaces the rest,
	// and drops the cached relying party.
	f.svc.idps.remember(p.ID, p.UpdatedAt, nil)
	f.clock.Advance(time.Hour)
	in.ClientID, in.ClientSecret, in.Scopes = "identity-service-2", "another-secret", nil
	p2, err := f.svc.ConfigureProvider(f.asAdminA(), in)
	require.NoError(t, err)
	require.Equal(t, p.ID, p2.ID)
	require.Equal(t, fedT0, p2.CreatedAt)
	require.Equal(t, fedT0.Add(time.Hour), p2.UpdatedAt)
	require.Equal(t, "identity-service-2", p2.ClientID)
	require.Equal(t, []string{"openid", "email", "profile"}, p2.Scopes)
	plain, err = f.sealer.Unwrap(p2.ClientSecret, secretAAD(f.tenantA, "okta"))
	require.NoError(t, err)
	require.Equal(t, "another-secret", string(plain))
	_, cached := f.svc.idps.cached(p.ID, p.UpdatedAt)
	require.False(t, cached)
}

// With the real master key: the stored bytes hide the secret and only the
// same tenant and slug unwrap it.
func TestConfigureProviderSealsWithMasterKey(t *testing.T) {
	f := newFixture(t)
	b := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(b)
	master, err := keys.NewMasterKey(b)
	require.NoError(t, err)
	svc := NewService(Deps{Store: f.store, Flows: f.flows, Sealer: master, Sessions: f.sessions,
		Authz: core.NewAuthorizer(f.members)}, testConfig(f.clock))

	p, err := svc.ConfigureProvider(f.asAdminA(), f.validInput(f.tenantA))
	require.NoError(t, err)
	require.False(t, bytes.Contains(p.ClientSecret, []byte(testSecret)))
	plain, err := master.Unwrap(p.ClientSecret, secretAAD(f.tenantA, "okta"))
	require.NoError(t, err)
	require.Equal(t, testSecret, string(plain))
	_, err = master.Unwrap(p.ClientSecret, secretAAD(f.tenantB, "okta"))
	require.Error(t, err)
	_, err = master.Unwrap(p.ClientSecret, secretAAD(f.tenantA, "okta2"))
	require.Error(t, err)

	// Start can unwrap it again (same AAD).
	_, err = svc.Start(context.Background(), StartInput{TenantID: f.tenantA, Slug: "okta"})
	require.NoError(t, err)
}

func TestConfigureProviderDiscovery(t *testing.T) {
	closed := newFakeIdP(t, false)
	closed.srv.Close()

	cases := []struct {
		name    string
		setup   func(f *fixture) string // returns the issuer
		timeout time.Duration
		reason  string // substring of Fields["issuer"]
	}{
		{"issuer mismatch", func(f *fixture) string { f.idp.wrongIssuer.Store(true); return f.idp.issuer() }, 0,
			"discovery failed: the document is missing, invalid or names another issuer"},
		{"issuer with trailing slash differs from the document", func(f *fixture) string { return f.idp.issuer() + "/" }, 0,
			"names another issuer"},
		{"missing token endpoint", func(f *fixture) string { f.idp.noTokenEndpoint.Store(true); return f.idp.issuer() }, 0,
			"lacks authorization_endpoint, token_endpoint or jwks_uri"},
		{"no discovery document (404)", func(f *fixture) string { return f.idp.issuer() + "/nowhere" }, 0,
			"the document is missing"},
		{"discovery answers 503", func(f *fixture) string { f.idp.discoveryStatus.Store(503); return f.idp.issuer() }, 0,
			"discovery failed"},
		{"server down", func(f *fixture) string { return closed.issuer() }, 0,
			"the issuer could not be reached"},
		{"server too slow", func(f *fixture) string {
			f.idp.delay.Store(int64(time.Second))
			return f.idp.issuer()
		}, 50 * time.Millisecond, "discovery failed: the issuer did not answer in time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureWith(t, func(c *Config) {
				if tc.timeout > 0 {
					c.IdPTimeout = tc.timeout
				}
			})
			in := f.validInput(f.tenantA)
			in.Issuer = tc.setup(f)
			_, err := f.svc.ConfigureProvider(f.asAdminA(), in)
			requireFields(t, err, "issuer")
			require.Contains(t, core.AsError(err).Fields["issuer"], tc.reason)
			require.Empty(t, f.store.upserts, "nothing is stored")
		})
	}
}

// An https issuer is discovered over TLS (with AllowInsecureIssuer off).
func TestConfigureProviderHTTPSIssuer(t *testing.T) {
	f := newFixture(t)
	idp := newFakeIdP(t, true)
	svc := f.newService(Config{Clock: f.clock, HTTPClient: idp.srv.Client()})
	in := f.validInput(f.tenantA)
	in.Issuer = idp.issuer()
	require.True(t, strings.HasPrefix(in.Issuer, "https://"))
	p, err := svc.ConfigureProvider(f.asAdminA(), in)
	require.NoError(t, err)
	require.Equal(t, idp.issuer(), p.Issuer)
	require.Equal(t, int32(1), idp.discoveryHits.Load())
}

func TestConfigureProviderStoreAndSealerErrors(t *testing.T) {
	t.Run("unknown tenant", func(t *testing.T) {
		f := newFixture(t)
		_, err := f.svc.ConfigureProvider(f.asSuperAdmin(), f.validInput(core.NewID()))
		requireCode(t, core.CodeNotFound, err)
	})
	t.Run("sealer fails", func(t *testing.T) {
		f := newFixture(t)
		f.sealer.wrapErr = errors.New("hsm down")
		_, err := f.svc.ConfigureProvider(f.asSuperAdmin(), f.validInput(f.tenantA))
		requireCode(t, core.CodeInternal, err)
		require.Empty(t, f.store.upserts)
	})
}

func TestNewServiceDefaults(t *testing.T) {
	svc := NewService(Deps{}, Config{PublicURL: "https://id.example.org///"})
	require.Equal(t, DefaultFlowTTL, svc.cfg.FlowTTL)
	require.Equal(t, DefaultCodeTTL, svc.cfg.CodeTTL)
	require.Equal(t, DefaultIdPTimeout, svc.cfg.IdPTimeout)
	require.NotNil(t, svc.cfg.Clock)
	require.Equal(t, "https://id.example.org", svc.cfg.PublicURL)
	require.Equal(t, uint32(DefaultFailureThreshold), svc.idps.threshold)
	require.Equal(t, DefaultOpenTimeout, svc.idps.timeout)
	require.IsType(t, probingTransport{}, svc.client.Transport)
	require.Equal(t, "https://id.example.org/api/v1/auth/oidc/okta/callback", svc.RedirectURI("okta"))

	// The configured client is copied, not changed.
	base := &http.Client{Timeout: time.Second}
	svc = NewService(Deps{}, Config{HTTPClient: base, FailureThreshold: 2, OpenTimeout: time.Minute})
	require.Nil(t, base.Transport)
	require.Equal(t, time.Second, svc.client.Timeout)
	require.Equal(t, uint32(2), svc.idps.threshold)
	require.Equal(t, time.Minute, svc.idps.timeout)
}

// numbered returns n strings of format with 0..n-1.
func numbered(format string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}

func TestProviderAllowedEmailIDN(t *testing.T) {
	for name, tc := range map[string]struct {
		domains []string
		email   string
		want    bool
	}{
		"Unicode email, ASCII list":          {[]string{"xn--caf-dma.org"}, "ana@café.org", true},
		"ASCII email, ASCII list":            {[]string{"xn--caf-dma.org"}, "ana@xn--caf-dma.org", true},
		"Unicode list saved before (legacy)": {[]string{"café.org"}, "ana@café.org", true},
		"Dari domain":                        {[]string{"xn--mgbguc3i.af"}, "ana@وزارت.af", true},
		"another IDN":                        {[]string{"xn--caf-dma.org"}, "ana@cafe.org", false},
		"domain IDNA refuses":                {[]string{"example.org"}, "ana@xn--a.org", false},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, Provider{AllowedEmailDomains: tc.domains}.allowedEmail(tc.email))
		})
	}
}
