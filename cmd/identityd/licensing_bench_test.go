package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ghasi-ehealth/identity-service/core/token"
)

// BenchmarkEffectiveLicensesHTTP measures GET
// /internal/identity/licensing/effective through the whole handler stack
// (auth of a service-account token included), in process, at the leaf of
// a depth-8 chain carrying 200 assignments (25 modules at each of the 8
// nodes, alternating exact and inherit_down). "cold" invalidates the
// tenant's cached sets before each call through the service's OnChange hook
// (so it includes that invalidation), "warm" is served from the cache.
func BenchmarkEffectiveLicensesHTTP(b *testing.B) {
	dialects := []struct {
		name string
		env  func(testing.TB) map[string]string
	}{
		{"sqlite", baseEnv},
		{"postgres", postgresEnv},
		{"postgres+valkey", postgresValkeyEnv},
	}
	for _, d := range dialects {
		b.Run(d.name, func(b *testing.B) {
			s := startService(b, d.env(b))
			h := s.main.server.Handler
			tenantID, leaf, svc := licensingBenchFixture(b, s)
			path := effectivePath(tenantID, leaf)
			call := func(b *testing.B) {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req.Header.Set("Authorization", "Bearer "+svc)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			// Sanity: the leaf sees every module (25 + 3 always-on).
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Header.Set("Authorization", "Bearer "+svc)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var got effectiveSetDoc
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.Modules) != 28 {
				b.Fatalf("effective set at the leaf: %d modules, %v: %s", len(got.Modules), err, rec.Body)
			}
			b.Run("cold", func(b *testing.B) {
				b.ReportAllocs()
				loopTimed(b, func() { s.main.licensing.OnChange(tenantID) }, func() { call(b) })
			})
			b.Run("warm", func(b *testing.B) {
				call(b)
				b.ReportAllocs()
				loopTimed(b, nil, func() { call(b) })
			})
		})
	}
}

// licensingBenchFixture builds, through the public surfaces as SUPER_ADMIN,
// a tenant with a chain of 8 nodes, 25 modules assigned at every node (200
// assignments) and a platform service account with tenant:licensing:read;
// it returns the tenant, the leaf and the account's access token.
func licensingBenchFixture(b *testing.B, s *testService) (tenantID, leaf, svcToken string) {
	b.Helper()
	h := s.main.server.Handler
	var adminID, platformID string
	if err := s.main.db.Bun().QueryRowContext(context.Background(),
		"SELECT id, tenant_id FROM users WHERE email = ?", testAdminEmail).Scan(&adminID, &platformID); err != nil {
		b.Fatal(err)
	}
	super, _, err := s.main.issuer.Issue(context.Background(), token.Claims{Subject: adminID, TenantID: platformID, AMR: []string{token.AMRPassword}})
	if err != nil {
		b.Fatal(err)
	}
	do := func(method, path, contentType string, body []byte, want int, dst any) {
		b.Helper()
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if !strings.HasPrefix(path, "/oauth2/") {
			req.Header.Set("Authorization", "Bearer "+super)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			b.Fatalf("%s %s: status %d: %s", method, path, rec.Code, rec.Body)
		}
		if dst != nil {
			if err := json.Unmarshal(rec.Body.Bytes(), dst); err != nil {
				b.Fatal(err)
			}
		}
	}
	post := func(path string, body any, want int, dst any) {
		b.Helper()
		raw, err := json.Marshal(body)
		if err != nil {
			b.Fatal(err)
		}
		do(http.MethodPost, path, "application/json", raw, want, dst)
	}

	var tn tenantDoc
	post("/api/v1/tenants", map[string]any{"name": "Bench", "slug": "bench"}, http.StatusCreated, &tn)
	var chain []string
	for i := range 8 {
		in := map[string]any{"tenantId": tn.ID, "name": fmt.Sprintf("Level %d", i), "kind": fmt.Sprintf("level%d", i)}
		if i > 0 {
			in["parentId"] = chain[i-1]
		}
		var out struct {
			Data struct{ CreateNode struct{ ID string } }
		}
		post("/graphql", map[string]any{"query": createNodeQ, "variables": map[string]any{"in": in}}, http.StatusOK, &out)
		if out.Data.CreateNode.ID == "" {
			b.Fatalf("createNode %d failed", i)
		}
		chain = append(chain, out.Data.CreateNode.ID)
	}
	for m := range 25 {
		code := fmt.Sprintf("bench.m%02d", m)
		post("/api/v1/licensing/modules", map[string]any{"code": code, "name": code}, http.StatusCreated, nil)
		for n, node := range chain {
			scope := "inherit_down"
			if (m+n)%2 == 1 && n != len(chain)-1 {
				scope = "exact"
			}
			post("/api/v1/licensing/assignments", map[string]any{"tenantId": tn.ID, "nodeId": node, "moduleCode": code,
				"scope": scope, "status": "active"}, http.StatusCreated, nil)
		}
	}
	var sa serviceAccountDoc
	post("/api/v1/service-accounts", map[string]any{"name": "bench", "tenantId": platformID, "scopes": []string{"tenant:licensing:read"}},
		http.StatusCreated, &sa)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {sa.ClientID}, "client_secret": {sa.ClientSecret}}
	var tok oauthTokenDoc
	do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", []byte(form.Encode()), http.StatusOK, &tok)
	return tn.ID, chain[len(chain)-1], tok.AccessToken
}
