package rest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/apikey"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/httpx"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// bearerPrincipals is a TokenVerifier whose tokens are keys of a map.
type bearerPrincipals map[string]*core.Principal

func (b bearerPrincipals) Verify(_ context.Context, raw string) (*core.Principal, error) {
	if p, ok := b[raw]; ok {
		return p, nil
	}
	return nil, core.Unauthenticated(nil)
}

func TestAPIKeyRoutes(t *testing.T) {
	ctx := context.Background()
	db := dbtest.SQLite(t)
	dir := persistence.NewDirectoryStore(db)
	t0 := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	clock := core.NewFixedClock(t0)
	svc := apikey.NewService(persistence.NewAPIKeyStore(db), core.NewAuthorizer(dir), clock,
		[]byte("0123456789abcdef0123456789abcdef"), nil)
	tenant := func(slug string) string {
		tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: slug, CreatedAt: t0, UpdatedAt: t0}
		require.NoError(t, dir.CreateTenant(ctx, tn))
		return tn.ID
	}
	admin := func(tenantID, email string) *core.Principal {
		u := user.User{ID: core.NewID(), TenantID: tenantID, Email: email, Status: user.StatusActive, CreatedAt: t0, UpdatedAt: t0}
		require.NoError(t, dir.CreateUser(ctx, u))
		require.NoError(t, dir.AddMembership(ctx, core.Membership{UserID: u.ID, TenantID: tenantID, Roles: []string{core.RoleTenantAdmin}}))
		return &core.Principal{Type: core.PrincipalUser, ID: u.ID, TenantID: tenantID, TenantIDs: []string{tenantID}}
	}
	tenantA, tenantB := tenant("clinic-a"), tenant("clinic-b")
	tokens := bearerPrincipals{"admin-a": admin(tenantA, "a@example.org"), "admin-b": admin(tenantB, "b@example.org")}

	mux := http.NewServeMux()
	mountAPIKeys(mux, Errors{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, svc)
	srv := httptest.NewServer(httpx.Authenticate(tokens, svc)(mux))
	t.Cleanup(srv.Close)

	do := func(method, path, cred, body string) (int, map[string]any) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		switch {
		case strings.HasPrefix(cred, "ghk_"):
			req.Header.Set("X-API-Key", cred)
		case cred != "":
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		var out map[string]any
		if len(raw) > 0 {
			require.NoError(t, json.Unmarshal(raw, &out), string(raw))
		}
		return res.StatusCode, out
	}

	// Unauthenticated: 401 before the (broken) body is looked at.
	for _, cred := range []string{"", "nope", "ghk_bogus"} {
		code, out := do("POST", "/api/v1/api-keys", cred, `{"name":`)
		require.Equal(t, 401, code)
		require.Equal(t, core.CodeUnauthenticated, out["code"])
	}
	code, _ := do("DELETE", "/api/v1/api-keys/"+core.NewID(), "", "")
	require.Equal(t, 401, code)

	code, out := do("POST", "/api/v1/api-keys", "admin-a", `{"name":"ci","scopes":["tenant:users:read","tenant:nope:x"]}`)
	require.Equal(t, 400, code)
	require.Contains(t, out["fields"], "scopes")

	code, out = do("POST", "/api/v1/api-keys", "admin-b", `{"name":"ci","scopes":["tenant:users:read"],"tenantId":"`+tenantA+`"}`)
	require.Equal(t, 403, code)
	require.Equal(t, core.CodeCrossTenant, out["code"])

	code, out = do("POST", "/api/v1/api-keys", "admin-a",
		`{"name":"ci","scopes":["tenant:users:read","tenant:api_keys:verify"],"expiresAt":"2025-07-01T00:00:00Z"}`)
	require.Equal(t, 201, code, out)
	id, secret := out["id"].(string), out["secret"].(string)
	require.True(t, strings.HasPrefix(secret, out["prefix"].(string)+"_"))
	require.Equal(t, tenantA, out["tenantId"])
	require.Equal(t, []any{"tenant:api_keys:verify", "tenant:users:read"}, out["scopes"])
	require.Equal(t, "2025-07-01T00:00:00Z", out["expiresAt"])
	require.Equal(t, "2025-06-01T09:00:00Z", out["createdAt"])

	// The key authenticates (an API key administers nothing: 403, not 401).
	code, out = do("POST", "/api/v1/api-keys", secret, `{"name":"x","scopes":["tenant:users:read"]}`)
	require.Equal(t, 403, code)
	require.Equal(t, core.CodeForbidden, out["code"])

	code, out = do("POST", "/api/v1/api-keys/"+id+"/rotate", "admin-a", `{"overlapSeconds":-1}`)
	require.Equal(t, 400, code)
	require.Contains(t, out["fields"], "overlapSeconds")
	code, out = do("POST", "/api/v1/api-keys/"+id+"/rotate", "admin-b", "")
	require.Equal(t, 403, code)
	require.Equal(t, core.CodeCrossTenant, out["code"])
	code, out = do("POST", "/api/v1/api-keys/"+id+"/rotate", "admin-a", `{"overlapSeconds":60}`)
	require.Equal(t, 200, code, out)
	require.Equal(t, id, out["id"])
	require.Equal(t, "2025-06-01T09:01:00Z", out["previousSecretExpiresAt"])
	newSecret := out["secret"].(string)
	code, out = do("POST", "/api/v1/api-keys/"+id+"/rotate", "admin-a", "")
	require.Equal(t, 200, code, out)
	require.Equal(t, "2025-06-02T09:00:00Z", out["previousSecretExpiresAt"], "default overlap 24 h")
	latest := out["secret"].(string)

	code, _ = do("DELETE", "/api/v1/api-keys/"+id, "admin-a", "")
	require.Equal(t, 204, code)
	for _, key := range []string{secret, newSecret, latest} {
		code, out = do("POST", "/api/v1/api-keys", key, `{}`)
		require.Equal(t, 401, code, "revoked key")
		require.Equal(t, core.CodeUnauthenticated, out["code"])
	}
	code, _ = do("DELETE", "/api/v1/api-keys/"+id, "admin-a", "")
	require.Equal(t, 204, code, "revocation is idempotent")
	code, out = do("DELETE", "/api/v1/api-keys/"+core.NewID(), "admin-a", "")
	require.Equal(t, 404, code)
	require.Equal(t, core.CodeNotFound, out["code"])

	for _, typ := range []string{apikey.EventIssued, apikey.EventRotated, apikey.EventRevoked} {
		for _, env := range eventtest.RequireValidStored(t, db, typ) {
			b, err := json.Marshal(env)
			require.NoError(t, err)
			for _, s := range []string{secret, newSecret, latest} {
				_, part, ok := apikey.ParseAPIKey(s)
				require.True(t, ok)
				require.NotContains(t, string(b), part)
			}
		}
	}
}
