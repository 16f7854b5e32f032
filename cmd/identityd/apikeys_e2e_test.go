package main

// End-to-end tests of API keys (IDENT-US-007) through REST, GraphQL and
// Connect on a running service.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/apikey"
	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
	"github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1/identityv1connect"
)

func TestAPIKeyLifecycleEndToEnd(t *testing.T) {
	for name, env := range e2eDialects {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := &offsetClock{}
			s := startServiceClock(t, env(t), clock)
			w := newWorld(t, s)

			// Create: 201 with the secret, once.
			res := s.call(t, http.MethodPost, "/api/v1/api-keys", w.tokA,
				map[string]any{"name": "lab integration", "scopes": []string{"tenant:users:read"}})
			var k apiKeyDoc
			res.decode(t, http.StatusCreated, &k)
			require.ElementsMatch(t, []string{"id", "name", "prefix", "secret", "scopes", "tenantId", "createdAt"}, res.members(t))
			require.Equal(t, "lab integration", k.Name)
			require.Equal(t, w.tenantA.ID, k.TenantID)
			require.Equal(t, []string{"tenant:users:read"}, k.Scopes)
			require.Regexp(t, keyPattern, k.Secret)
			require.True(t, strings.HasPrefix(k.Secret, k.Prefix+"_"), "prefix %q leads secret", k.Prefix)
			require.NotContains(t, k.Prefix, k.Secret[len(k.Prefix)+1:])
			require.WithinDuration(t, time.Now(), k.CreatedAt, time.Minute)
			require.Equal(t, []apikey.EventData{{APIKeyID: k.ID, TenantID: w.tenantA.ID, Scopes: []string{"tenant:users:read"}}},
				s.keyEventData(t, apikey.EventIssued, k.ID))

			// Unknown scope and missing name.
			p := requireProblem(t, s.call(t, http.MethodPost, "/api/v1/api-keys", w.tokA,
				map[string]any{"name": "bad", "scopes": []string{"tenant:nope:read"}}), http.StatusBadRequest, "IDENT_VALIDATION")
			require.Contains(t, p.Fields, "scopes")
			requireProblem(t, s.call(t, http.MethodPost, "/api/v1/api-keys", "",
				map[string]any{"name": "x", "scopes": []string{"tenant:users:read"}}), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")

			// GraphQL lists the prefix, never the secret.
			listRes := s.graphql(t, w.tokA, `{ apiKeys { id name prefix scopes tenantId createdAt revokedAt } }`, nil)
			var list struct {
				APIKeys []struct {
					ID, Name, Prefix, TenantID string
					Scopes                     []string
					RevokedAt                  *time.Time
				} `json:"apiKeys"`
			}
			listRes.decode(t, &list)
			require.Len(t, list.APIKeys, 1)
			require.Equal(t, k.ID, list.APIKeys[0].ID)
			require.Equal(t, k.Prefix, list.APIKeys[0].Prefix)
			require.NotContains(t, string(listRes.Data), k.Secret[len(k.Prefix)+1:])
			require.Equal(t, "IDENT_VALIDATION", s.graphql(t, w.tokA, `{ apiKeys { secret } }`, nil).code(), "ApiKey has no secret field")

			// X-API-Key authenticates as the key.
			who := s.whoamiKey(t, k.Secret)
			require.Equal(t, whoamiDoc{Type: "api_key", ID: k.ID, TenantID: w.tenantA.ID, TenantIDs: []string{w.tenantA.ID},
				Scopes: []string{"tenant:users:read"}}, who)
			s.requireKeyRejected(t, k.Prefix+"_"+strings.Repeat("A", 43))
			s.requireKeyRejected(t, "ghk_garbage")

			// Cross-tenant: the admin of B can neither rotate nor revoke A's key.
			events := s.eventCount(t)
			requireProblem(t, s.call(t, http.MethodPost, "/api/v1/api-keys/"+k.ID+"/rotate", w.tokB,
				map[string]any{"overlapSeconds": 2}), http.StatusForbidden, "IDENT_CROSS_TENANT")
			requireProblem(t, s.call(t, http.MethodDelete, "/api/v1/api-keys/"+k.ID, w.tokB, nil), http.StatusForbidden, "IDENT_CROSS_TENANT")
			require.Equal(t, "IDENT_CROSS_TENANT", s.graphql(t, w.tokB, `mutation($id: ID!) { rotateApiKey(id: $id) { id } }`,
				map[string]any{"id": k.ID}).code())
			require.Equal(t, "IDENT_CROSS_TENANT", s.graphql(t, w.tokB, `mutation($id: ID!) { revokeApiKey(id: $id) { id } }`,
				map[string]any{"id": k.ID}).code())
			require.Equal(t, "IDENT_CROSS_TENANT", s.graphql(t, w.tokB, `query($t: ID) { apiKeys(tenantId: $t) { id } }`,
				map[string]any{"t": w.tenantA.ID}).code())
			requireProblem(t, s.call(t, http.MethodPost, "/api/v1/api-keys", w.tokB,
				map[string]any{"name": "x", "tenantId": w.tenantA.ID, "scopes": []string{"tenant:users:read"}}), http.StatusForbidden, "IDENT_CROSS_TENANT")
			require.Equal(t, events, s.eventCount(t), "no side effect")
			require.Equal(t, k.ID, s.whoamiKey(t, k.Secret).ID, "the key still works")

			// Rotation with an overlap: the old secret works until
			// previousSecretExpiresAt, and not after. The overlap is long
			// enough that no slow machine ends it during the checks inside
			// it; the service's clock then steps to its end.
			const overlap = 30 * time.Second
			rotStart := clock.Now()
			rotRes := s.call(t, http.MethodPost, "/api/v1/api-keys/"+k.ID+"/rotate", w.tokA, map[string]any{"overlapSeconds": 30})
			rotEnd := clock.Now()
			var rot rotatedKeyDoc
			rotRes.decode(t, http.StatusOK, &rot)
			require.ElementsMatch(t, []string{"id", "secret", "previousSecretExpiresAt"}, rotRes.members(t))
			require.Equal(t, k.ID, rot.ID)
			require.Regexp(t, keyPattern, rot.Secret)
			require.NotEqual(t, k.Secret, rot.Secret)
			require.True(t, strings.HasPrefix(rot.Secret, k.Prefix+"_"), "the prefix stays")
			require.WithinRange(t, rot.PreviousSecretExpiresAt, rotStart.Add(overlap).Truncate(time.Microsecond), rotEnd.Add(overlap),
				"the rotation's time plus the overlap asked for")
			require.Equal(t, k.ID, s.whoamiKey(t, k.Secret).ID, "old secret inside the overlap")
			require.Equal(t, k.ID, s.whoamiKey(t, rot.Secret).ID, "new secret")
			require.Len(t, s.keyEventData(t, apikey.EventRotated, k.ID), 1)
			clock.Advance(rot.PreviousSecretExpiresAt.Sub(clock.Now()) - 5*time.Second)
			require.Equal(t, k.ID, s.whoamiKey(t, k.Secret).ID, "old secret near the end of the overlap")
			clock.Advance(5*time.Second + 100*time.Millisecond)
			s.requireKeyRejected(t, k.Secret)
			require.Equal(t, k.ID, s.whoamiKey(t, rot.Secret).ID, "new secret after the overlap")

			requireProblem(t, s.call(t, http.MethodPost, "/api/v1/api-keys/"+k.ID+"/rotate", w.tokA,
				map[string]any{"overlapSeconds": -1}), http.StatusBadRequest, "IDENT_VALIDATION")

			// Revocation: 204, then 401 (within the documented cache bound).
			del := s.call(t, http.MethodDelete, "/api/v1/api-keys/"+k.ID, w.tokA, nil)
			require.Equal(t, http.StatusNoContent, del.Status, "body: %s", del.Body)
			require.Empty(t, del.Body)
			require.Eventually(t, func() bool { return s.keyStatus(rot.Secret) == http.StatusUnauthorized },
				apikey.CacheTTL+time.Second, 50*time.Millisecond)
			s.requireKeyRejected(t, rot.Secret)
			require.Equal(t, []apikey.EventData{{APIKeyID: k.ID, TenantID: w.tenantA.ID, Scopes: []string{"tenant:users:read"}}},
				s.keyEventData(t, apikey.EventRevoked, k.ID))
			require.Equal(t, http.StatusNoContent, s.call(t, http.MethodDelete, "/api/v1/api-keys/"+k.ID, w.tokA, nil).Status, "repeatable")
			require.Len(t, s.keyEventData(t, apikey.EventRevoked, k.ID), 1, "no second revoked event")
			requireProblem(t, s.call(t, http.MethodPost, "/api/v1/api-keys/"+k.ID+"/rotate", w.tokA, nil), http.StatusConflict, "IDENT_STATE_CONFLICT")
			requireProblem(t, s.call(t, http.MethodDelete, "/api/v1/api-keys/01900000-0000-7000-8000-00000000dead", w.tokA, nil),
				http.StatusNotFound, "IDENT_NOT_FOUND")

			// GraphQL equivalents.
			var created struct {
				CreateAPIKey struct {
					ID, Name, Prefix, Secret, TenantID string
					Scopes                             []string
					PreviousSecretExpiresAt            *time.Time
				} `json:"createApiKey"`
			}
			s.graphql(t, w.tokA, `mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { id name prefix secret scopes tenantId createdAt previousSecretExpiresAt } }`,
				map[string]any{"in": map[string]any{"name": "gql key", "scopes": []string{"tenant:users:read", "tenant:devices:read"}}}).decode(t, &created)
			g := created.CreateAPIKey
			require.Regexp(t, keyPattern, g.Secret)
			require.Equal(t, w.tenantA.ID, g.TenantID)
			require.Nil(t, g.PreviousSecretExpiresAt)
			require.ElementsMatch(t, []string{"tenant:users:read", "tenant:devices:read"}, s.whoamiKey(t, g.Secret).Scopes)
			require.Len(t, s.keyEventData(t, apikey.EventIssued, g.ID), 1)
			require.Equal(t, "IDENT_VALIDATION", s.graphql(t, w.tokA, `mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { id } }`,
				map[string]any{"in": map[string]any{"name": "bad", "scopes": []string{"tenant:nope:read"}}}).code())

			var rotated struct {
				RotateAPIKey struct {
					ID, Secret              string
					PreviousSecretExpiresAt *time.Time
				} `json:"rotateApiKey"`
			}
			s.graphql(t, w.tokA, `mutation($id: ID!) { rotateApiKey(id: $id, overlapSeconds: 0) { id secret previousSecretExpiresAt } }`,
				map[string]any{"id": g.ID}).decode(t, &rotated)
			require.Equal(t, g.ID, rotated.RotateAPIKey.ID)
			require.NotNil(t, rotated.RotateAPIKey.PreviousSecretExpiresAt)
			s.requireKeyRejected(t, g.Secret) // overlap 0 ends the old secret at once
			require.Equal(t, g.ID, s.whoamiKey(t, rotated.RotateAPIKey.Secret).ID)
			require.Len(t, s.keyEventData(t, apikey.EventRotated, g.ID), 1)

			var revoked struct {
				RevokeAPIKey struct {
					ID        string
					RevokedAt *time.Time
				} `json:"revokeApiKey"`
			}
			s.graphql(t, w.tokA, `mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }`,
				map[string]any{"id": g.ID}).decode(t, &revoked)
			require.NotNil(t, revoked.RevokeAPIKey.RevokedAt)
			require.Eventually(t, func() bool { return s.keyStatus(rotated.RotateAPIKey.Secret) == http.StatusUnauthorized },
				apikey.CacheTTL+time.Second, 50*time.Millisecond)
			require.Len(t, s.keyEventData(t, apikey.EventRevoked, g.ID), 1)

			// SUPER_ADMIN may issue a key for any tenant.
			sk := s.createAPIKey(t, w.super, map[string]any{"name": "by super", "tenantId": w.tenantB.ID, "scopes": []string{"tenant:users:read"}})
			require.Equal(t, w.tenantB.ID, s.whoamiKey(t, sk.Secret).TenantID)
		})
	}
}

// verifyClient calls TokenService.VerifyApiKey with one credential header.
type verifyClient struct {
	client identityv1connect.TokenServiceClient
}

func (c verifyClient) verify(header, value, key string) (*identityv1.VerifyApiKeyResponse, error) {
	req := connect.NewRequest(&identityv1.VerifyApiKeyRequest{Key: key})
	req.Header().Set(header, value)
	res, err := c.client.VerifyApiKey(context.Background(), req)
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func TestVerifyAPIKeyOverConnect(t *testing.T) {
	t.Parallel()
	s := startService(t, baseEnv(t))
	w := newWorld(t, s)

	verifier := s.createServiceAccount(t, w.super, w.platformID, "tenant:api_keys:verify")
	verifierTok := s.clientToken(t, verifier.ClientID, verifier.ClientSecret)
	scopeless := s.createServiceAccount(t, w.super, w.platformID, "tenant:users:read")
	scopelessTok := s.clientToken(t, scopeless.ClientID, scopeless.ClientSecret)

	keyA := s.createAPIKey(t, w.tokA, map[string]any{"name": "a", "scopes": []string{"tenant:users:read", "tenant:devices:read"}})
	doomed := s.createAPIKey(t, w.tokA, map[string]any{"name": "doomed", "scopes": []string{"tenant:users:read"}})
	keyBVerify := s.createAPIKey(t, w.tokB, map[string]any{"name": "b verifier", "scopes": []string{"tenant:api_keys:verify"}})
	keyBOther := s.createAPIKey(t, w.tokB, map[string]any{"name": "b other", "scopes": []string{"tenant:users:read"}})
	require.Equal(t, http.StatusNoContent, s.call(t, http.MethodDelete, "/api/v1/api-keys/"+doomed.ID, w.tokA, nil).Status)

	protocols := map[string]connect.ClientOption{
		"connect": connect.WithClientOptions(), "connect+json": connect.WithProtoJSON(), "grpc": connect.WithGRPC(),
	}
	for name, opt := range protocols {
		t.Run(name, func(t *testing.T) {
			c := verifyClient{identityv1connect.NewTokenServiceClient(h2cClient(), s.baseURL, opt)}
			bearer := func(tok string) (string, string) { return "Authorization", "Bearer " + tok }

			h, v := bearer(verifierTok)
			got, err := c.verify(h, v, keyA.Secret)
			require.NoError(t, err)
			require.True(t, got.GetValid())
			require.Equal(t, keyA.ID, got.GetKeyId())
			require.Equal(t, w.tenantA.ID, got.GetTenantId())
			require.ElementsMatch(t, []string{"tenant:users:read", "tenant:devices:read"}, got.GetScopes())

			for _, bad := range []string{doomed.Secret, keyA.Prefix + "_" + strings.Repeat("x", 43), "ghk_nope", ""} {
				got, err = c.verify(h, v, bad)
				require.NoError(t, err)
				require.False(t, got.GetValid(), "key %q", bad)
				require.Empty(t, got.GetKeyId())
				require.Empty(t, got.GetTenantId())
				require.Empty(t, got.GetScopes())
			}

			// A service account without the scope; a user token.
			for _, tok := range []string{scopelessTok, w.tokA, w.super} {
				h, v := bearer(tok)
				_, err = c.verify(h, v, keyA.Secret)
				require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "%v", err)
				var cerr *connect.Error
				require.ErrorAs(t, err, &cerr)
				require.Equal(t, "IDENT_FORBIDDEN", cerr.Meta().Get("identity-error-code"))
				require.True(t, strings.HasPrefix(cerr.Message(), "IDENT_FORBIDDEN: "), cerr.Message())
			}
			// An API key without the scope.
			_, err = c.verify("X-API-Key", keyA.Secret, keyA.Secret)
			require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "%v", err)

			// An API key of tenant B with the scope verifies B's keys only.
			got, err = c.verify("X-API-Key", keyBVerify.Secret, keyBOther.Secret)
			require.NoError(t, err)
			require.True(t, got.GetValid())
			require.Equal(t, w.tenantB.ID, got.GetTenantId())
			got, err = c.verify("X-API-Key", keyBVerify.Secret, keyA.Secret)
			require.NoError(t, err)
			require.False(t, got.GetValid(), "a key of another tenant is reported invalid")
			require.Empty(t, got.GetKeyId())

			// No or a bad credential.
			_, err = c.verify("X-Other", "x", keyA.Secret)
			require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err))
			_, err = c.verify("X-API-Key", doomed.Secret, keyA.Secret)
			require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err))
		})
	}

	// The JSON shape over plain HTTP (Connect unary, JSON codec).
	res := s.callWith(t, http.MethodPost, "/identity.v1.TokenService/VerifyApiKey", verifierTok,
		map[string]any{"key": keyA.Secret}, nil)
	require.Equal(t, http.StatusOK, res.Status, "body: %s", res.Body)
	var body map[string]any
	require.NoError(t, json.Unmarshal(res.Body, &body))
	require.Equal(t, true, body["valid"])
	require.Equal(t, keyA.ID, body["keyId"])
	require.Equal(t, w.tenantA.ID, body["tenantId"])
}
