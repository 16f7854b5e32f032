package rpc

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
	"github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1/identityv1connect"
)

// TestProtocols drives every method through every protocol and codec with
// real connect-go clients over HTTP/2 cleartext, and checks that requests
// are decoded into the port's structs and answers encoded back.
func TestProtocols(t *testing.T) {
	fake := &fakeCore{}
	seen := &seenRequest{}
	srv := startServer(t, fake.deps(), Options{}, seen.observe)

	for _, p := range protocols() {
		t.Run(p.name, func(t *testing.T) {
			ctx := t.Context()
			lic := identityv1connect.NewLicensingServiceClient(srv.client, srv.url, p.opts...)
			tok := identityv1connect.NewTokenServiceClient(srv.client, srv.url, p.opts...)
			assertWire := func() {
				t.Helper()
				major, method, ct := seen.get()
				require.Equal(t, 2, major, "HTTP/2 cleartext")
				require.Equal(t, p.method, method)
				require.Equal(t, p.contentType, ct)
			}

			eff, err := lic.GetEffectiveLicenses(ctx, connect.NewRequest(&identityv1.GetEffectiveLicensesRequest{
				TenantId: "tenant-1", NodeId: "node-leaf", ProviderId: "user-9",
			}))
			require.NoError(t, err)
			assertWire()
			in, _ := fake.lastCall()
			require.Equal(t, EffectiveLicensesQuery{TenantID: "tenant-1", NodeID: "node-leaf", ProviderID: "user-9"}, in)
			require.Len(t, eff.Msg.GetModules(), 2)
			m := eff.Msg.GetModules()[0]
			require.Equal(t, "ehr.core", m.GetCode())
			require.Equal(t, "active", m.GetStatus())
			require.True(t, m.GetGranted())
			require.Equal(t, "inherit_down", m.GetScope())
			require.Equal(t, "node-root", m.GetSourceNodeId())
			require.Equal(t, "asg-1", m.GetAssignmentId())
			require.False(t, eff.Msg.GetModules()[1].GetGranted())
			require.Equal(t, "node-leaf", eff.Msg.GetModules()[1].GetSourceNodeId())

			acc, err := lic.CheckModuleAccess(ctx, connect.NewRequest(&identityv1.CheckModuleAccessRequest{
				TenantId: "tenant-1", NodeId: "node-leaf", ModuleCode: "ehr.core",
			}))
			require.NoError(t, err)
			assertWire()
			in, _ = fake.lastCall()
			require.Equal(t, ModuleAccessQuery{TenantID: "tenant-1", NodeID: "node-leaf", ModuleCode: "ehr.core"}, in)
			require.True(t, acc.Msg.GetGranted())
			require.Equal(t, "trial", acc.Msg.GetStatus())

			ex, err := tok.ExchangeToken(ctx, connect.NewRequest(&identityv1.ExchangeTokenRequest{
				SubjectToken: "upstream.jwt", SubjectTokenType: "urn:ietf:params:oauth:token-type:access_token", Audience: "lab",
			}))
			require.NoError(t, err)
			assertWire()
			in, _ = fake.lastCall()
			require.Equal(t, TokenExchangeRequest{SubjectToken: "upstream.jwt", SubjectTokenType: "urn:ietf:params:oauth:token-type:access_token", Audience: "lab"}, in)
			require.Equal(t, "at-123", ex.Msg.GetAccessToken())
			require.Equal(t, "urn:ietf:params:oauth:token-type:access_token", ex.Msg.GetIssuedTokenType())
			require.Equal(t, "Bearer", ex.Msg.GetTokenType())
			require.EqualValues(t, 900, ex.Msg.GetExpiresIn())

			v, err := tok.VerifyApiKey(ctx, connect.NewRequest(&identityv1.VerifyApiKeyRequest{Key: "idk_abc.secret"}))
			require.NoError(t, err)
			assertWire()
			in, _ = fake.lastCall()
			require.Equal(t, "idk_abc.secret", in)
			require.True(t, v.Msg.GetValid())
			require.Equal(t, "key-1", v.Msg.GetKeyId())
			require.Equal(t, "tenant-1", v.Msg.GetTenantId())
			require.Equal(t, []string{"tenant:users:read", "tenant:licensing:read"}, v.Msg.GetScopes())
		})
	}
}

// TestConnectGET checks that the side-effect-free licensing reads may be
// sent as cacheable HTTP GETs, while VerifyApiKey (whose key must not end up
// in URLs and access logs) stays a POST.
func TestConnectGET(t *testing.T) {
	fake := &fakeCore{}
	seen := &seenRequest{}
	srv := startServer(t, fake.deps(), Options{}, seen.observe)
	opts := []connect.ClientOption{connect.WithHTTPGet(), connect.WithProtoJSON()}

	lic := identityv1connect.NewLicensingServiceClient(srv.client, srv.url, opts...)
	res, err := lic.CheckModuleAccess(t.Context(), connect.NewRequest(&identityv1.CheckModuleAccessRequest{
		TenantId: "t", NodeId: "n", ModuleCode: "ehr.core",
	}))
	require.NoError(t, err)
	require.True(t, res.Msg.GetGranted())
	_, method, _ := seen.get()
	require.Equal(t, http.MethodGet, method)

	tok := identityv1connect.NewTokenServiceClient(srv.client, srv.url, opts...)
	_, err = tok.VerifyApiKey(t.Context(), connect.NewRequest(&identityv1.VerifyApiKeyRequest{Key: "k"}))
	require.NoError(t, err)
	_, method, _ = seen.get()
	require.Equal(t, http.MethodPost, method)
}

// TestJSONFieldNames pins the wire JSON to the contract's camelCase names
// with a plain HTTP client, as a non-Go platform service would call it.
func TestJSONFieldNames(t *testing.T) {
	fake := &fakeCore{}
	srv := startServer(t, fake.deps(), Options{})

	post := func(t *testing.T, path, body string) (*http.Response, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.url+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		res, err := srv.client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		var out map[string]any
		require.NoError(t, json.Unmarshal(raw, &out), string(raw))
		return res, out
	}

	res, out := post(t, "/identity.v1.LicensingService/GetEffectiveLicenses",
		`{"tenantId":"tenant-1","nodeId":"node-leaf","providerId":"user-9"}`)
	require.Equal(t, http.StatusOK, res.StatusCode)
	in, _ := fake.lastCall()
	require.Equal(t, EffectiveLicensesQuery{TenantID: "tenant-1", NodeID: "node-leaf", ProviderID: "user-9"}, in)
	mods, ok := out["modules"].([]any)
	require.True(t, ok, out)
	require.Equal(t, map[string]any{
		"code": "ehr.core", "status": "active", "granted": true, "scope": "inherit_down",
		"sourceNodeId": "node-root", "assignmentId": "asg-1",
	}, mods[0])

	res, out = post(t, "/identity.v1.TokenService/ExchangeToken",
		`{"subjectToken":"x","subjectTokenType":"urn:ietf:params:oauth:token-type:access_token"}`)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, map[string]any{
		"accessToken": "at-123", "issuedTokenType": "urn:ietf:params:oauth:token-type:access_token",
		"tokenType": "Bearer", "expiresIn": float64(900), // a JSON number, not an int64 string
	}, out)

	res, out = post(t, "/identity.v1.TokenService/VerifyApiKey", `{"key":"k"}`)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, map[string]any{
		"valid": true, "keyId": "key-1", "tenantId": "tenant-1",
		"scopes": []any{"tenant:users:read", "tenant:licensing:read"},
	}, out)

	// A Connect-protocol error is an HTTP status plus a JSON body; the IDENT
	// code is in the message prefix and in a response header.
	fake.setErr(&core.Error{Kind: core.KindRateLimited, Code: core.CodeRateLimited, Msg: "slow down", RetryAfter: 30 * time.Second})
	res, out = post(t, "/identity.v1.TokenService/VerifyApiKey", `{"key":"k"}`)
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.Equal(t, "IDENT_RATE_LIMITED", res.Header.Get("Identity-Error-Code"))
	require.Equal(t, "30", res.Header.Get("Retry-After"))
	require.Equal(t, "resource_exhausted", out["code"])
	require.Equal(t, "IDENT_RATE_LIMITED: slow down", out["message"])
}

// TestPrincipalReachesCore checks that the principal the authentication
// middleware puts into the request context is what the core port sees, for
// every protocol.
func TestPrincipalReachesCore(t *testing.T) {
	want := &core.Principal{
		Type: core.PrincipalServiceAccount, ID: "sa-1", TenantID: "tenant-1",
		Scopes: []string{"tenant:licensing:read"},
	}
	fake := &fakeCore{}
	srv := startServer(t, fake.deps(), Options{}, withPrincipal(want))

	for _, p := range protocols() {
		t.Run(p.name, func(t *testing.T) {
			lic := identityv1connect.NewLicensingServiceClient(srv.client, srv.url, p.opts...)
			_, err := lic.GetEffectiveLicenses(t.Context(), connect.NewRequest(&identityv1.GetEffectiveLicensesRequest{TenantId: "tenant-1", NodeId: "n"}))
			require.NoError(t, err)
			_, got := fake.lastCall()
			require.Same(t, want, got)
		})
	}
}

// TestAuthErrorReachesClient checks the other half of the middleware
// contract: a credential that failed verification is recorded on the
// context, core reports it when it needs a principal, and the client gets
// Unauthenticated with the IDENT code.
func TestAuthErrorReachesClient(t *testing.T) {
	recordAuthError := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := core.WithAuthError(r.Context(), core.Unauthenticated(errors.New("token expired")))
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
	fake := &fakeCore{requirePrincipal: true}
	srv := startServer(t, fake.deps(), Options{}, recordAuthError)
	lic := identityv1connect.NewLicensingServiceClient(srv.client, srv.url, connect.WithGRPC())
	_, err := lic.GetEffectiveLicenses(t.Context(), connect.NewRequest(&identityv1.GetEffectiveLicensesRequest{}))
	var ce *connect.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, connect.CodeUnauthenticated, ce.Code())
	require.Equal(t, "IDENT_UNAUTHENTICATED: authentication required", ce.Message())
	require.Equal(t, core.CodeUnauthenticated, ce.Meta().Get(MetaErrorCode))
}

// TestNilDependencies checks that a method whose core service is not wired
// answers Unimplemented (not a panic, not Internal).
func TestNilDependencies(t *testing.T) {
	srv := startServer(t, Deps{}, Options{})
	ctx := t.Context()
	lic := identityv1connect.NewLicensingServiceClient(srv.client, srv.url, connect.WithGRPC())
	tok := identityv1connect.NewTokenServiceClient(srv.client, srv.url)

	calls := []struct {
		procedure string
		call      func() error
	}{
		{identityv1connect.LicensingServiceGetEffectiveLicensesProcedure, func() error {
			_, err := lic.GetEffectiveLicenses(ctx, connect.NewRequest(&identityv1.GetEffectiveLicensesRequest{}))
			return err
		}},
		{identityv1connect.LicensingServiceCheckModuleAccessProcedure, func() error {
			_, err := lic.CheckModuleAccess(ctx, connect.NewRequest(&identityv1.CheckModuleAccessRequest{}))
			return err
		}},
		{identityv1connect.TokenServiceExchangeTokenProcedure, func() error {
			_, err := tok.ExchangeToken(ctx, connect.NewRequest(&identityv1.ExchangeTokenRequest{}))
			return err
		}},
		{identityv1connect.TokenServiceVerifyApiKeyProcedure, func() error {
			_, err := tok.VerifyApiKey(ctx, connect.NewRequest(&identityv1.VerifyApiKeyRequest{}))
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.procedure, func(t *testing.T) {
			err := c.call()
			require.Equal(t, connect.CodeUnimplemented, connect.CodeOf(err))
			var ce *connect.Error
			require.ErrorAs(t, err, &ce)
			require.Contains(t, ce.Message(), c.procedure)
			require.Contains(t, ce.Message(), "not configured")
		})
	}
}

// TestMessageSizeLimit checks the 1 MiB cap of CONTRACT.md §2.
func TestMessageSizeLimit(t *testing.T) {
	fake := &fakeCore{}
	srv := startServer(t, fake.deps(), Options{})
	tok := identityv1connect.NewTokenServiceClient(srv.client, srv.url, connect.WithGRPC())
	_, err := tok.VerifyApiKey(t.Context(), connect.NewRequest(&identityv1.VerifyApiKeyRequest{Key: strings.Repeat("k", MaxMessageBytes+1)}))
	require.Equal(t, connect.CodeResourceExhausted, connect.CodeOf(err))
	in, _ := fake.lastCall()
	require.Nil(t, in, "the handler must not run")
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want int32
	}{
		{15 * time.Minute, 900},
		{1999 * time.Millisecond, 1},
		{0, 0},
		{-time.Second, 0},
		{time.Duration(1<<62) * time.Nanosecond, 1<<31 - 1},
	} {
		require.Equal(t, tc.want, seconds(tc.in), tc.in.String())
	}
}
