package rest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/device"
	"github.com/ghasi-ehealth/identity-service/core/keys/keystest"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/httpx"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestDeviceRoutes(t *testing.T) {
	ctx := context.Background()
	db := dbtest.SQLite(t)
	dir := persistence.NewDirectoryStore(db)
	t0 := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	clock := core.NewFixedClock(t0)
	ks, _ := keystest.New(t, db, clock)
	svc := device.NewService(persistence.NewDeviceStore(db), core.NewAuthorizer(dir), ks, clock, nil, device.Config{})

	tenant := func(slug string) string {
		tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: slug, CreatedAt: t0, UpdatedAt: t0}
		require.NoError(t, dir.CreateTenant(ctx, tn))
		return tn.ID
	}
	principal := func(tenantID, email string, roles ...string) *core.Principal {
		u := user.User{ID: core.NewID(), TenantID: tenantID, Email: email, Status: user.StatusActive, CreatedAt: t0, UpdatedAt: t0}
		require.NoError(t, dir.CreateUser(ctx, u))
		require.NoError(t, dir.AddMembership(ctx, core.Membership{UserID: u.ID, TenantID: tenantID, Roles: roles}))
		return &core.Principal{Type: core.PrincipalUser, ID: u.ID, TenantID: tenantID, TenantIDs: []string{tenantID}}
	}
	tenantA, tenantB := tenant("clinic-a"), tenant("clinic-b")
	tokens := bearerPrincipals{
		"owner":   principal(tenantA, "o@example.org"),
		"admin-a": principal(tenantA, "a@example.org", core.RoleTenantAdmin),
		"admin-b": principal(tenantB, "b@example.org", core.RoleTenantAdmin),
	}
	mux := http.NewServeMux()
	mountDevices(mux, Errors{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, svc)
	srv := httptest.NewServer(httpx.Authenticate(tokens, nil)(mux))
	t.Cleanup(srv.Close)

	raw := func(method, path, cred, body string) (int, http.Header, []byte) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		if cred != "" {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, res.Header, b
	}
	do := func(method, path, cred, body string) (int, map[string]any) {
		code, _, b := raw(method, path, cred, body)
		var out map[string]any
		if len(b) > 0 {
			require.NoError(t, json.Unmarshal(b, &out), string(b))
		}
		return code, out
	}

	code, _ := do("POST", "/api/v1/me/devices", "", `{}`)
	require.Equal(t, 401, code)

	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	body, _ := json.Marshal(map[string]string{"fingerprint": "fp-1", "publicKey": pubPEM, "name": "tablet", "platform": "android"})

	code, out := do("POST", "/api/v1/me/devices", "owner", `{"fingerprint":"x","publicKey":"junk"}`)
	require.Equal(t, 400, code)
	require.Contains(t, out["fields"], "publicKey")
	code, out = do("POST", "/api/v1/me/devices", "owner", string(body))
	require.Equal(t, 201, code, out)
	id := out["id"].(string)
	require.Equal(t, "untrusted", out["status"])
	require.Equal(t, tenantA, out["tenantId"])
	require.Nil(t, out["trustedAt"])
	code, _ = do("POST", "/api/v1/me/devices", "owner", string(body))
	require.Equal(t, 409, code, "duplicate fingerprint")

	code, out = do("POST", "/api/v1/me/devices/"+id+"/bind-offline", "owner", "")
	require.Equal(t, 422, code)
	require.Equal(t, core.CodeDeviceNotTrusted, out["code"])

	code, out = do("POST", "/api/v1/devices/"+id+"/trust", "admin-b", "")
	require.Equal(t, 403, code)
	require.Equal(t, core.CodeCrossTenant, out["code"])
	code, out = do("POST", "/api/v1/devices/"+id+"/trust", "admin-a", "")
	require.Equal(t, 200, code, out)
	require.Equal(t, "trusted", out["status"])
	code, out = do("POST", "/api/v1/devices/"+id+"/trust", "admin-a", "")
	require.Equal(t, 409, code)
	require.Equal(t, core.CodeStateConflict, out["code"])

	code, out = do("POST", "/api/v1/me/devices/"+id+"/bind-offline", "owner", "")
	require.Equal(t, 200, code, out)
	serial := out["serialNumber"].(string)
	require.NotEmpty(t, out["expiresAt"])
	cb, _ := pem.Decode([]byte(out["certificate"].(string)))
	cert, err := x509.ParseCertificate(cb.Bytes)
	require.NoError(t, err)

	code, hdr, caPEM := raw("GET", "/devices/ca.pem", "", "")
	require.Equal(t, 200, code)
	require.Equal(t, "application/x-pem-file", hdr.Get("Content-Type"))
	caBlock, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err = cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0.Add(time.Hour), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	require.NoError(t, err)
	certPub, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
	require.NoError(t, err)
	require.Equal(t, pubDER, certPub)

	code, out = do("GET", "/api/v1/me/devices", "owner", "")
	require.Equal(t, 200, code)
	items := out["items"].([]any)
	require.Len(t, items, 1)
	require.Equal(t, "offline_bound", items[0].(map[string]any)["status"])
	require.Equal(t, serial, items[0].(map[string]any)["certificate"].(map[string]any)["serialNumber"])

	code, out = do("DELETE", "/api/v1/me/devices/"+id, "admin-b", "")
	require.Equal(t, 403, code)
	require.Equal(t, core.CodeCrossTenant, out["code"])
	code, _ = do("DELETE", "/api/v1/me/devices/"+id, "owner", "")
	require.Equal(t, 204, code)

	code, hdr, crlDER := raw("GET", "/devices/crl", "", "")
	require.Equal(t, 200, code)
	require.Equal(t, "application/pkix-crl", hdr.Get("Content-Type"))
	rl, err := x509.ParseRevocationList(crlDER)
	require.NoError(t, err)
	require.NoError(t, rl.CheckSignatureFrom(ca))
	require.Len(t, rl.RevokedCertificateEntries, 1)
	require.Equal(t, 0, rl.RevokedCertificateEntries[0].SerialNumber.Cmp(cert.SerialNumber))
}
