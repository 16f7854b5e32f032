package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
	"github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1/identityv1connect"
)

type jwksDoc struct {
	Keys []struct {
		Kty, Kid, Use, Alg, N, E string
	} `json:"keys"`
}

func kidsOf(d jwksDoc) []string {
	var out []string
	for _, k := range d.Keys {
		out = append(out, k.Kid)
	}
	return out
}

func TestServeJWKSAndDiscovery(t *testing.T) {
	s := startService(t, baseEnv(t))
	var doc jwksDoc
	res := getJSON(t, s.baseURL+"/.well-known/jwks.json", &doc)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "public, max-age=3600", res.Header.Get("Cache-Control"))
	require.NotEmpty(t, res.Header.Get("ETag"))
	require.NotEmpty(t, res.Header.Get("X-Request-Id"))
	require.Len(t, doc.Keys, 2, "the active key and the next one")
	for _, k := range doc.Keys {
		require.Equal(t, "RSA", k.Kty)
		require.Equal(t, "sig", k.Use)
		require.Equal(t, "RS256", k.Alg)
		require.NotEmpty(t, k.N)
		require.Equal(t, "AQAB", k.E)
	}
	var disco map[string]any
	getJSON(t, s.baseURL+"/.well-known/openid-configuration", &disco)
	require.Equal(t, s.main.cfg.PublicURL, disco["issuer"])
	require.Equal(t, s.main.cfg.PublicURL+"/.well-known/jwks.json", disco["jwks_uri"])

	require.Equal(t, http.StatusOK, getJSON(t, s.baseURL+"/healthz", nil).StatusCode)
	require.Equal(t, http.StatusOK, getJSON(t, s.baseURL+"/readyz", nil).StatusCode)
	require.Equal(t, http.StatusOK, getJSON(t, s.baseURL+"/metrics", nil).StatusCode)
}

func TestRotateSigningKeyThroughGraphQL(t *testing.T) {
	for name, env := range map[string]func(testing.TB) map[string]string{"sqlite": baseEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			oldToken := s.adminToken(t)
			var before jwksDoc
			getJSON(t, s.baseURL+"/.well-known/jwks.json", &before)

			const rotate = `mutation { rotateSigningKey { kid state activatedAt } }`
			require.Equal(t, "IDENT_UNAUTHENTICATED", s.graphql(t, "", rotate, nil).code())
			require.Equal(t, "IDENT_UNAUTHENTICATED", s.graphql(t, "not-a-jwt", rotate, nil).code())

			resp := s.graphql(t, oldToken, rotate, nil)
			require.Empty(t, resp.Errors)
			var rotated struct {
				RotateSigningKey struct{ Kid, State string } `json:"rotateSigningKey"`
			}
			require.NoError(t, json.Unmarshal(resp.Data, &rotated))
			require.Equal(t, "ACTIVE", rotated.RotateSigningKey.State)
			require.Equal(t, before.Keys[1].Kid, rotated.RotateSigningKey.Kid, "the published next key becomes active")

			var after jwksDoc
			getJSON(t, s.baseURL+"/.well-known/jwks.json", &after)
			require.Subset(t, kidsOf(after), kidsOf(before), "the previous key stays listed")
			require.Len(t, after.Keys, 3, "previous, active and a new next key")

			// A token signed before the rotation still verifies after it.
			resp = s.graphql(t, oldToken, `{ signingKeys { kid state } }`, nil)
			require.Empty(t, resp.Errors)
			var listed struct {
				SigningKeys []struct{ Kid, State string } `json:"signingKeys"`
			}
			require.NoError(t, json.Unmarshal(resp.Data, &listed))
			require.Len(t, listed.SigningKeys, 3)

			envs := eventtest.RequireValidStored(t, s.main.db, keys.EventJWKSRotated)
			require.Len(t, envs, 1)
			require.Equal(t, rotated.RotateSigningKey.Kid, envs[0].Subject)

			resp = s.graphql(t, s.adminToken(t), `query($t: String) { events(type: $t, first: 10) { edges { node { type subject data } } pageInfo { hasNextPage } } }`,
				map[string]any{"t": keys.EventJWKSRotated})
			require.Empty(t, resp.Errors)
			var events struct {
				Events struct {
					Edges []struct {
						Node struct {
							Type, Subject string
							Data          map[string]any
						}
					}
				}
			}
			require.NoError(t, json.Unmarshal(resp.Data, &events))
			require.Len(t, events.Events.Edges, 1)
			require.Equal(t, rotated.RotateSigningKey.Kid, events.Events.Edges[0].Node.Data["newKid"])
			require.Equal(t, before.Keys[0].Kid, events.Events.Edges[0].Node.Data["previousKid"])
		})
	}
}

func TestGraphQLRejectsNonAdmins(t *testing.T) {
	s := startService(t, baseEnv(t))
	ctx := context.Background()
	// A platform user without SUPER_ADMIN: same tenant, no membership.
	_, err := s.main.db.Bun().ExecContext(ctx, `INSERT INTO users (id, tenant_id, email, status, created_at, updated_at)
		SELECT '01900000-0000-7000-8000-000000000001', tenant_id, 'nurse@example.org', 'active', created_at, updated_at FROM users WHERE email = ?`, testAdminEmail)
	require.NoError(t, err)
	nurse := s.tokenFor(t, "nurse@example.org")
	require.Equal(t, "IDENT_FORBIDDEN", s.graphql(t, nurse, `mutation { rotateSigningKey { kid } }`, nil).code())
	require.Equal(t, "IDENT_FORBIDDEN", s.graphql(t, nurse, `{ signingKeys { kid } }`, nil).code())
	require.Equal(t, "IDENT_FORBIDDEN", s.graphql(t, nurse, `{ events { edges { cursor } } }`, nil).code())
	require.Equal(t, "IDENT_VALIDATION", s.graphql(t, nurse, `{ nope }`, nil).code())
	require.Equal(t, "IDENT_VALIDATION", s.graphql(t, s.adminToken(t), `{ events(first: 500) { edges { cursor } } }`, nil).code())
}

func TestConnectOnTheSameListener(t *testing.T) {
	s := startService(t, baseEnv(t))
	ctx := context.Background()
	client := h2cClient()
	for _, opt := range []connect.ClientOption{connect.WithGRPC(), connect.WithGRPCWeb(), connect.WithProtoJSON()} {
		health := grpchealth.NewClient(client, s.baseURL, opt)
		res, err := health.Check(ctx, &grpchealth.CheckRequest{})
		require.NoError(t, err)
		require.Equal(t, grpchealth.StatusServing, res.Status)

		tokens := identityv1connect.NewTokenServiceClient(client, s.baseURL, opt)
		_, err = tokens.VerifyApiKey(ctx, connect.NewRequest(&identityv1.VerifyApiKeyRequest{Key: "k"}))
		require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err), "a service credential is required")
		var cerr *connect.Error
		require.ErrorAs(t, err, &cerr)
		require.Equal(t, "IDENT_UNAUTHENTICATED", cerr.Meta().Get("identity-error-code"))

		licensing := identityv1connect.NewLicensingServiceClient(client, s.baseURL, opt)
		_, err = licensing.CheckModuleAccess(ctx, connect.NewRequest(&identityv1.CheckModuleAccessRequest{}))
		require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err), "a service credential is required")
	}
}

func TestJWKSServedWhileDatabaseIsDown(t *testing.T) {
	s := startService(t, baseEnv(t))
	var before jwksDoc
	getJSON(t, s.baseURL+"/.well-known/jwks.json", &before)
	require.NoError(t, s.main.db.Close())
	require.Error(t, s.main.keys.Refresh(context.Background()))

	var after jwksDoc
	res := getJSON(t, s.baseURL+"/.well-known/jwks.json", &after)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, kidsOf(before), kidsOf(after))
	require.Equal(t, http.StatusServiceUnavailable, getJSON(t, s.baseURL+"/readyz", nil).StatusCode)
	require.Equal(t, http.StatusOK, getJSON(t, s.baseURL+"/healthz", nil).StatusCode)
}
