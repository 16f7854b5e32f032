package main

// Secrets hygiene (release quality gate): every credential flow runs through
// a running identityd that logs at debug level into a buffer, and no secret
// may appear in the logs, in any stored event (every column of the events
// table, the outbox) or in the GraphQL audit log (events query), nor — for
// the ones the service keeps — in any database column in the clear.

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/apikey"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount/satest"
	"github.com/ghasi-ehealth/identity-service/internal/oidctest"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
	"github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1/identityv1connect"
)

// TestNoSecretInLogsOrEvents runs every credential flow with the service
// logging at debug level and requires that no secret — passwords (login,
// self-registration, the first password set at email verification, near
// misses), access and refresh tokens (login, refresh, MFA, federated login,
// client_credentials), API-key secrets (create, rotate, GraphQL), service-
// account client secrets (create, grants, rotate, GraphQL), the TOTP seed and
// recovery codes, the OIDC client secret and authorization code, and private
// key material (the master key, every signing key's private key, any PEM
// "PRIVATE KEY" block) — appears in any log line, any stored event or the
// GraphQL events query, and that the stored secrets are not kept in the clear.
// Positive controls prove that logs, events and the GraphQL audit log are
// really captured and complete.
func TestNoSecretInLogsOrEvents(t *testing.T) {
	t.Parallel()
	idp := oidctest.New(t, oidctest.Config{ClientID: fedClientID, ClientSecret: fedClientSecret})
	s, logs := startCapturingService(t, withWebAuthn(fedEnv(t, withTrustedProxy(baseEnv(t)))))
	idp.SetRedirectURIs(s.baseURL + "/api/v1/auth/oidc/" + fedSlug + "/callback")
	w := newWorld(t, s)
	secrets := map[string]string{"bootstrap password": testAdminPassword, "admin password": goodPassword,
		"super token": w.super, "admin A token": w.tokA, "admin B token": w.tokB}

	// Password login, refresh, a replay and a failed login with a near-miss password.
	c := s.from(t)
	tr := c.mustLogin(t, adminAEmail, goodPassword, nil)
	secrets["access token"], secrets["refresh token"] = tr.AccessToken, tr.RefreshToken
	var tr2 tokenResponseDoc
	c.refresh(t, tr.RefreshToken).decode(t, http.StatusOK, &tr2)
	secrets["refreshed access token"], secrets["refreshed refresh token"] = tr2.AccessToken, tr2.RefreshToken
	requireProblem(t, c.refresh(t, tr.RefreshToken), http.StatusUnauthorized, "IDENT_REFRESH_REPLAY")
	wrongPassword := goodPassword + " typo"
	secrets["wrong password"] = wrongPassword
	requireProblem(t, c.login(t, adminAEmail, wrongPassword, nil), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")

	// Self-registration with a password, then email verification and login.
	const registeredEmail = "patient.secret@example.org"
	registrationPassword := "quartz meadow lantern " + randomTag(t)
	secrets["registration password"] = registrationPassword
	var reg struct{ User userDoc }
	s.call(t, http.MethodPost, "/api/v1/auth/register", "", map[string]any{"tenantId": w.tenantA.ID, "email": registeredEmail,
		"password": registrationPassword, "firstName": "Pat", "lastName": "Secret"}).decode(t, http.StatusCreated, &reg)
	registered := reg.User
	s.verifyEmail(t, registered.ID, "")
	regTok := c.mustLogin(t, registeredEmail, registrationPassword, nil)
	secrets["registered user access token"], secrets["registered user refresh token"] = regTok.AccessToken, regTok.RefreshToken

	// An admin-created user without a password sets the first one when
	// verifying the email.
	invited := s.createUserREST(t, w.tokA, map[string]any{"tenantId": w.tenantA.ID, "email": "invited.secret@example.org",
		"firstName": "In", "lastName": "Vited"})
	firstPassword := "cobalt harbour whistle " + randomTag(t)
	secrets["first password"] = firstPassword
	s.verifyEmail(t, invited.ID, firstPassword)
	c.mustLogin(t, "invited.secret@example.org", firstPassword, nil)

	// TOTP: enrolment (the seed), a wrong code, confirmation (recovery
	// codes), and logins completed with a TOTP code and a recovery code.
	enr, gen := c.enrollTOTP(t, regTok.AccessToken, registeredEmail)
	secrets["TOTP seed"] = gen.secret
	secrets["TOTP Key URI"] = enr.OTPAuthURI
	requireProblem(t, c.do(t, http.MethodPost, totpConfirmPath, regTok.AccessToken, map[string]any{"code": gen.wrong(t)}),
		http.StatusBadRequest, "IDENT_VALIDATION")
	conf := c.confirmTOTP(t, regTok.AccessToken, enr.FactorID, gen)
	for i, rc := range conf.RecoveryCodes[:3] {
		secrets["recovery code "+itoa(i)] = rc
	}
	ch := requireChallenge(t, c.login(t, registeredEmail, registrationPassword, nil), "totp", "recovery")
	code, step := gen.fresh(t)
	mfaTok := s.requireMFATokens(t, c.verifyMFA(t, ch.ChallengeID, "totp", code), registered.ID, "pwd", "otp")
	gen.used(step)
	secrets["MFA access token"], secrets["MFA refresh token"] = mfaTok.AccessToken, mfaTok.RefreshToken
	ch = requireChallenge(t, c.login(t, registeredEmail, registrationPassword, nil), "totp", "recovery")
	recTok := s.requireMFATokens(t, c.verifyMFA(t, ch.ChallengeID, "recovery", conf.RecoveryCodes[0]), registered.ID, "pwd", "otp")
	secrets["recovery access token"], secrets["recovery refresh token"] = recTok.AccessToken, recTok.RefreshToken
	ch = requireChallenge(t, c.login(t, registeredEmail, registrationPassword, nil), "totp", "recovery")
	requireProblem(t, c.verifyMFA(t, ch.ChallengeID, "recovery", conf.RecoveryCodes[0]), http.StatusUnauthorized, "IDENT_MFA_INVALID_CODE")

	// API keys: create, use, a wrong secret, rotate, revoke.
	k := s.createAPIKey(t, w.tokA, map[string]any{"name": "hygiene", "scopes": []string{"tenant:users:read"}})
	secrets["api key"] = k.Secret
	s.whoamiKey(t, k.Secret)
	wrongKey := k.Prefix + "_" + strings.Repeat("Z", 43)
	secrets["wrong api key"] = wrongKey
	s.requireKeyRejected(t, wrongKey)
	var rot rotatedKeyDoc
	s.call(t, http.MethodPost, "/api/v1/api-keys/"+k.ID+"/rotate", w.tokA, map[string]any{"overlapSeconds": 60}).decode(t, http.StatusOK, &rot)
	secrets["rotated api key"] = rot.Secret
	s.whoamiKey(t, rot.Secret)
	s.whoamiKey(t, k.Secret)
	var gk struct {
		CreateAPIKey struct{ ID, Secret string } `json:"createApiKey"`
	}
	s.graphql(t, w.tokA, `mutation { createApiKey(input: {name: "gql", scopes: ["tenant:users:read"]}) { id secret } }`, nil).decode(t, &gk)
	secrets["graphql api key"] = gk.CreateAPIKey.Secret

	// Service accounts: create, grants (ok and failed), rotate, Connect verify.
	sa := s.createServiceAccount(t, w.super, w.platformID, "tenant:api_keys:verify")
	secrets["client secret"] = sa.ClientSecret
	saTok := s.clientToken(t, sa.ClientID, sa.ClientSecret)
	secrets["client token"] = saTok
	var basic oauthTokenDoc
	s.tokenRequest(t, "", map[string]string{"grant_type": "client_credentials"}, []string{sa.ClientID, sa.ClientSecret}).decode(t, http.StatusOK, &basic)
	secrets["basic client token"] = basic.AccessToken
	var jsonGrant oauthTokenDoc
	s.tokenRequest(t, "application/json", map[string]string{"grant_type": "client_credentials", "client_id": sa.ClientID,
		"client_secret": sa.ClientSecret}, nil).decode(t, http.StatusOK, &jsonGrant)
	secrets["json client token"] = jsonGrant.AccessToken
	wrongSecret := satest.WrongSecret(sa.ClientSecret)
	secrets["wrong client secret"] = wrongSecret
	requireOAuthError(t, s.tokenRequest(t, "", map[string]string{"grant_type": "client_credentials", "client_id": sa.ClientID,
		"client_secret": wrongSecret}, nil), http.StatusUnauthorized, "invalid_client")
	var rotSA struct {
		ClientSecret string `json:"clientSecret"`
	}
	s.call(t, http.MethodPost, "/api/v1/service-accounts/"+sa.ID+"/rotate-secret", w.super, map[string]any{"overlapSeconds": 0}).
		decode(t, http.StatusOK, &rotSA)
	secrets["rotated client secret"] = rotSA.ClientSecret
	secrets["rotated client token"] = s.clientToken(t, sa.ClientID, rotSA.ClientSecret)
	var gsa struct {
		CreateServiceAccount serviceAccountDoc `json:"createServiceAccount"`
	}
	s.graphql(t, w.super, `mutation($t: ID!) { createServiceAccount(input: {name: "gql", tenantId: $t, scopes: ["tenant:users:read"]}) { id clientSecret } }`,
		map[string]any{"t": w.tenantA.ID}).decode(t, &gsa)
	secrets["graphql client secret"] = gsa.CreateServiceAccount.ClientSecret

	tokens := identityv1connect.NewTokenServiceClient(h2cClient(), s.baseURL, connect.WithGRPC())
	req := connect.NewRequest(&identityv1.VerifyApiKeyRequest{Key: rot.Secret})
	req.Header().Set("Authorization", "Bearer "+saTok)
	got, err := tokens.VerifyApiKey(context.Background(), req)
	require.NoError(t, err)
	require.True(t, got.Msg.GetValid())
	req = connect.NewRequest(&identityv1.VerifyApiKeyRequest{Key: wrongKey})
	req.Header().Set("Authorization", "Bearer "+saTok)
	got, err = tokens.VerifyApiKey(context.Background(), req)
	require.NoError(t, err)
	require.False(t, got.Msg.GetValid())

	require.Equal(t, http.StatusNoContent, s.call(t, http.MethodDelete, "/api/v1/api-keys/"+k.ID, w.tokA, nil).Status)
	require.Eventually(t, func() bool { return s.keyStatus(rot.Secret) == http.StatusUnauthorized },
		apikey.CacheTTL+time.Second, 50*time.Millisecond)
	s.requireKeyRejected(t, k.Secret)

	// Federated login: the OIDC provider is configured with its client
	// secret; the authorization code and the tokens of the login are secrets
	// too, and a configuration with a wrong issuer fails without echoing it.
	fed := &fedWorld{world: w, s: s, idp: idp}
	secrets["OIDC client secret"] = fedClientSecret
	fed.configure(t, w.tokA, w.tenantA.ID, fedSlug)
	idp.SetUser(oidctest.User{Subject: "secret-jit-1", Email: "nurse.secret@corp.example", EmailVerified: true, GivenName: "Nurse", FamilyName: "Secret"})
	cb := fed.authorize(t, "")
	secrets["OIDC authorization code"] = cb.Query().Get("code")
	fedTok := requireTokenResponse(t, getRaw(t, cb.String()))
	secrets["federated access token"], secrets["federated refresh token"] = fedTok.AccessToken, fedTok.RefreshToken
	var fedRefreshed tokenResponseDoc
	c.refresh(t, fedTok.RefreshToken).decode(t, http.StatusOK, &fedRefreshed)
	secrets["federated refreshed refresh token"] = fedRefreshed.RefreshToken
	res := s.graphql(t, w.tokA, configureOidcMutation, map[string]any{"in": map[string]any{
		"tenantId": w.tenantA.ID, "slug": "down", "issuer": "http://127.0.0.1:1/nowhere", "clientId": fedClientID,
		"clientSecret": fedClientSecret, "returnUrls": []string{fedReturnURL}}})
	require.NotEmpty(t, res.Errors, "an unreachable issuer is refused")
	require.NotContains(t, string(res.Data)+res.Errors[0].Message, fedClientSecret)

	// Key management: a rotation as SUPER_ADMIN, the keyring and the JWKS.
	var rotated struct {
		RotateSigningKey struct{ Kid string } `json:"rotateSigningKey"`
	}
	s.graphql(t, w.super, `mutation { rotateSigningKey { kid } }`, nil).decode(t, &rotated)
	require.NotEmpty(t, rotated.RotateSigningKey.Kid)
	keyring := s.graphql(t, w.super, `{ signingKeys { kid algorithm state createdAt activatedAt retiredAt publishUntil } }`, nil)
	require.Empty(t, keyring.Errors)
	jwks := getRaw(t, s.baseURL+"/.well-known/jwks.json")
	require.Equal(t, http.StatusOK, jwks.Status)

	// Private key material: the master key and every stored private key.
	keyNeedles := s.privateKeyNeedles(t)
	require.NotEmpty(t, keyNeedles)

	// Let the outbox relay publish (and log) what it will.
	time.Sleep(300 * time.Millisecond)

	logText := logs.String()
	storedEvents := s.allEventRows(t)
	gqlEvents := s.allGraphQLEvents(t, w.super)

	// Positive controls: the capture works, so the absence below means something.
	require.Contains(t, logText, `"level":"DEBUG"`, "debug logging is on")
	require.Contains(t, logText, `"msg":"service account created"`, "the service's logs are captured")
	require.Contains(t, logText, w.superID, "user ids reach the logs (bootstrap)")
	require.Contains(t, logText, k.ID, "API key ids reach the logs")
	require.Contains(t, logText, sa.ClientID, "client ids reach the logs")
	require.Equal(t, s.eventCount(t), len(storedEvents), "every stored event is read")
	require.Len(t, gqlEvents, len(storedEvents), "the GraphQL audit log lists every stored event")
	for _, sink := range []struct {
		name string
		rows []string
	}{{"stored events", storedEvents}, {"GraphQL events", gqlEvents}} {
		all := strings.Join(sink.rows, "\n")
		require.Contains(t, all, registeredEmail, "%s carry the registered email", sink.name)
		require.Contains(t, all, registered.ID, "%s carry the user id", sink.name)
		require.Contains(t, all, "identity.user.mfa_enrolled.v1", "%s include the MFA enrolment", sink.name)
		require.Contains(t, all, sa.ClientID, "%s carry the client id", sink.name)
		require.Contains(t, all, "secret-jit-1", "%s carry the federated subject", sink.name)
	}
	require.Contains(t, string(keyring.Data), rotated.RotateSigningKey.Kid)

	type sink struct {
		name  string
		lines []string
	}
	sinks := []sink{
		{"log line", strings.Split(logText, "\n")},
		{"stored event", storedEvents},
		{"GraphQL events page", gqlEvents},
	}
	requireAbsent := func(what string, needles []string, sinks []sink) {
		t.Helper()
		for _, n := range needles {
			require.NotEmpty(t, n, what)
			for _, sk := range sinks {
				for i, line := range sk.lines {
					require.NotContains(t, line, n, "%s appears in %s %d", what, sk.name, i+1)
				}
			}
		}
	}
	for what, secret := range secrets {
		requireAbsent(what, secretNeedles(secret), sinks)
	}
	keySinks := slices.Concat(sinks, []sink{{"signingKeys answer", []string{string(keyring.Data)}}, {"JWKS", []string{string(jwks.Body)}}})
	requireAbsent("private key material", keyNeedles, keySinks)
	requireAbsent("a PEM private key", []string{"PRIVATE KEY"}, keySinks)

	// The secrets the service keeps are stored hashed or sealed only.
	for _, what := range []string{"api key", "rotated api key", "client secret", "rotated client secret", "refresh token",
		"MFA refresh token", "TOTP seed", "recovery code 1", "OIDC client secret", "registration password", "first password"} {
		require.Empty(t, dbtest.FindEverywhere(t, s.main.db, secrets[what]), "%s stored in the clear", what)
	}
}

// secretNeedles are the forms in which secret could leak: as is, JSON- and
// URL-escaped, and, for structured secrets, the parts that are secret alone.
func secretNeedles(secret string) []string {
	needles := []string{secret}
	if raw, _ := json.Marshal(secret); string(raw[1:len(raw)-1]) != secret {
		needles = append(needles, string(raw[1:len(raw)-1]))
	}
	if esc := url.QueryEscape(secret); esc != secret {
		needles = append(needles, esc)
	}
	if strings.HasPrefix(secret, "ghk_") && len(secret) > len("ghk_")+13 {
		// The key's secret part alone (the prefix is not secret).
		needles = append(needles, secret[len("ghk_")+13:])
	}
	if parts := strings.Split(secret, "."); len(parts) == 3 && len(parts[2]) > 20 {
		needles = append(needles, parts[2]) // a JWT's signature
	}
	if u, err := url.Parse(secret); err == nil && u.Scheme == "otpauth" {
		needles = append(needles, u.Query().Get("secret")) // the seed inside a Key URI
	}
	if seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret)); err == nil && len(seed) == 20 {
		// A TOTP seed in its other encodings.
		needles = append(needles, strings.ToLower(secret), hex.EncodeToString(seed),
			base64.StdEncoding.EncodeToString(seed), base64.RawURLEncoding.EncodeToString(seed))
	}
	return needles
}

// privateKeyNeedles returns recognisable fragments of the service's private
// key material: the master key in the encodings it could be printed in, and
// for every stored signing key (JWT and device CA) a line of its PKCS#8 PEM
// body, its private exponent and its first prime as a JWK would carry them.
func (s *testService) privateKeyNeedles(t *testing.T) []string {
	t.Helper()
	file, err := os.ReadFile(s.main.cfg.MasterKeyFile)
	require.NoError(t, err)
	master, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(file)))
	require.NoError(t, err)
	require.Len(t, master, 32)
	needles := []string{base64.StdEncoding.EncodeToString(master), base64.RawURLEncoding.EncodeToString(master),
		hex.EncodeToString(master)}

	rows, err := s.main.db.Bun().QueryContext(context.Background(), `SELECT kid, private_key_wrapped FROM signing_keys`)
	require.NoError(t, err)
	defer rows.Close()
	keys := 0
	for rows.Next() {
		var kid string
		var wrapped []byte
		require.NoError(t, rows.Scan(&kid, &wrapped))
		der, err := s.main.master.Unwrap(wrapped, []byte(kid))
		require.NoError(t, err, "key %s", kid)
		p, err := x509.ParsePKCS8PrivateKey(der)
		require.NoError(t, err)
		priv, ok := p.(*rsa.PrivateKey)
		require.True(t, ok)
		pemBody := base64.StdEncoding.EncodeToString(der)
		b64url := func(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.Bytes())[:48] }
		needles = append(needles, pemBody[64:128], b64url(priv.D), b64url(priv.Primes[0]),
			hex.EncodeToString(priv.D.Bytes())[:48])
		keys++
	}
	require.NoError(t, rows.Err())
	require.GreaterOrEqual(t, keys, 3, "the rotation left an active, a next and a retired key")
	return needles
}

// allEventRows returns every column of every stored event (the outbox), one
// string per event, after checking that each data column is a JSON object.
func (s *testService) allEventRows(t *testing.T) []string {
	t.Helper()
	rows, err := s.main.db.Bun().QueryContext(context.Background(),
		`SELECT id, type, subject, tenant_id, CAST(data AS TEXT), traceparent FROM events ORDER BY seq`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, typ, subject, tenantID, data, traceparent string
		require.NoError(t, rows.Scan(&id, &typ, &subject, &tenantID, &data, &traceparent))
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(data), &m), data)
		out = append(out, strings.Join([]string{id, typ, subject, tenantID, data, traceparent}, " "))
	}
	require.NoError(t, rows.Err())
	return out
}

// allGraphQLEvents pages through the GraphQL events query as bearer and
// returns each event node as the client received it (raw JSON).
func (s *testService) allGraphQLEvents(t *testing.T, bearer string) []string {
	t.Helper()
	const query = `query($after: String) { events(first: 100, after: $after) {
	  edges { node { id type subject tenantId time data } } pageInfo { hasNextPage endCursor } } }`
	var out []string
	vars := map[string]any{}
	for {
		var page struct {
			Events struct {
				Edges []struct {
					Node json.RawMessage `json:"node"`
				} `json:"edges"`
				PageInfo struct {
					HasNextPage bool    `json:"hasNextPage"`
					EndCursor   *string `json:"endCursor"`
				} `json:"pageInfo"`
			} `json:"events"`
		}
		s.graphql(t, bearer, query, vars).decode(t, &page)
		for _, e := range page.Events.Edges {
			out = append(out, string(e.Node))
		}
		if !page.Events.PageInfo.HasNextPage {
			return out
		}
		require.NotNil(t, page.Events.PageInfo.EndCursor)
		vars["after"] = *page.Events.PageInfo.EndCursor
	}
}
