package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
	"github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1/identityv1connect"
)

// Scenario names (the -scenario flag).
const (
	scLogin             = "login"
	scRefresh           = "refresh"
	scClientCredentials = "client-credentials"
	scJWKS              = "jwks"
	scAccessContext     = "access-context"
	scEffective         = "effective-licenses"
	scMixed             = "mixed"
)

var allScenarios = []string{scJWKS, scClientCredentials, scAccessContext, scEffective, scRefresh, scLogin, scMixed}

// defaultMix is the weighted mix of the mixed scenario, in percent: read
// traffic of platform services dominates (JWKS fetches, access contexts,
// license checks), then token renewals; password logins are rare and
// expensive.
var defaultMix = []mixEntry{
	{scJWKS, 40}, {scAccessContext, 20}, {scRefresh, 15}, {scEffective, 10}, {scClientCredentials, 10}, {scLogin, 5},
}

type mixEntry struct {
	op     string
	weight int
}

// parseMix parses "jwks=40,refresh=15,…".
func parseMix(s string) ([]mixEntry, error) {
	var out []mixEntry
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(strings.TrimSpace(w))
		name = strings.TrimSpace(name)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("bad mix entry %q: want op=weight", part)
		}
		if name == scMixed || !isScenario(name) {
			return nil, fmt.Errorf("bad mix entry %q: unknown operation", part)
		}
		if seen[name] {
			return nil, fmt.Errorf("bad mix entry %q: repeated", part)
		}
		seen[name] = true
		if n > 0 {
			out = append(out, mixEntry{name, n})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the mix has no operation with a positive weight")
	}
	return out, nil
}

func isScenario(name string) bool {
	for _, s := range allScenarios {
		if s == name {
			return true
		}
	}
	return false
}

// opsOf lists the operations a scenario runs.
func opsOf(scenario string, mix []mixEntry) []mixEntry {
	if scenario == scMixed {
		return mix
	}
	return []mixEntry{{scenario, 1}}
}

// planFor is what the scenarios need seeded.
func planFor(scenarios []string, mix []mixEntry, users, depth, modules int) (seedPlan, bool) {
	need := map[string]bool{}
	for _, sc := range scenarios {
		for _, m := range opsOf(sc, mix) {
			need[m.op] = true
		}
	}
	var p seedPlan
	if need[scLogin] || need[scRefresh] {
		p.Users = users
	}
	if need[scAccessContext] {
		p.Users = max(p.Users, 1)
		p.Nodes = true
		p.Modules = modules
	}
	if need[scEffective] {
		p.Nodes = true
		p.Modules = modules
		p.ServiceAcct = true
	}
	if need[scClientCredentials] {
		p.ServiceAcct = true
	}
	if p.Nodes {
		p.Depth = depth
	}
	return p, p.Users > 0 || p.Nodes || p.ServiceAcct
}

// tokenSource hands out a bearer token and renews it in the background a
// while before it expires, so long runs keep working (access tokens live
// 15 minutes).
type tokenSource struct {
	fetch func(ctx context.Context) (string, time.Duration, error)
	cur   atomic.Pointer[heldToken]
	mu    sync.Mutex // held while renewing
}

type heldToken struct {
	token   string
	renewAt time.Time
}

func newTokenSource(ctx context.Context, fetch func(ctx context.Context) (string, time.Duration, error)) (*tokenSource, error) {
	s := &tokenSource{fetch: fetch}
	if err := s.renew(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *tokenSource) renew(ctx context.Context) error {
	tok, ttl, err := s.fetch(ctx)
	if err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	s.cur.Store(&heldToken{token: tok, renewAt: time.Now().Add(ttl * 2 / 3)})
	return nil
}

func (s *tokenSource) token() string {
	h := s.cur.Load()
	if time.Now().After(h.renewAt) && s.mu.TryLock() {
		go func() {
			defer s.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = s.renew(ctx) // keep the old token on failure; the next call retries
		}()
	}
	return h.token
}

// loadEnv is everything the operations share (read-only during a run).
type loadEnv struct {
	api        *apiClient
	seed       *seedData
	log        func(format string, args ...any)
	lic        identityv1connect.LicensingServiceClient
	basicAuth  string   // client_secret_basic of the service account
	loginBody  [][]byte // per seeded user
	loginRR    atomic.Uint64
	userTok    *tokenSource // access-context: the first seeded user
	svcTok     *tokenSource // effective-licenses: the service account
	accessPath string
	effReq     *identityv1.GetEffectiveLicensesRequest
}

func newLoadEnv(api *apiClient, seed *seedData, rpcJSON bool, log func(string, ...any)) *loadEnv {
	e := &loadEnv{api: api, seed: seed, log: log}
	var opts []connect.ClientOption
	if rpcJSON {
		opts = append(opts, connect.WithProtoJSON())
	}
	e.lic = identityv1connect.NewLicensingServiceClient(api.hc, api.base, opts...)
	if seed == nil {
		return e
	}
	for _, u := range seed.Users {
		raw, _ := json.Marshal(map[string]string{"email": u.Email, "password": seed.Password, "tenantId": seed.TenantID})
		e.loginBody = append(e.loginBody, raw)
	}
	if seed.ClientID != "" {
		// RFC 6749 §2.3.1: form-encode id and secret, then Basic.
		e.basicAuth = "Basic " + base64.StdEncoding.EncodeToString(
			[]byte(url.QueryEscape(seed.ClientID)+":"+url.QueryEscape(seed.ClientSecret)))
	}
	if leaf := seed.Leaf(); leaf != "" {
		e.accessPath = "/api/v1/me/access-context?nodeId=" + url.QueryEscape(leaf)
		e.effReq = &identityv1.GetEffectiveLicensesRequest{TenantId: seed.TenantID, NodeId: leaf}
	}
	return e
}

// prepare obtains the long-lived credentials the ops need (once per run).
func (e *loadEnv) prepare(ctx context.Context, need map[string]bool) error {
	if need[scAccessContext] && e.userTok == nil {
		u := e.seed.Users[0]
		ts, err := newTokenSource(ctx, func(ctx context.Context) (string, time.Duration, error) {
			tok, err := login(ctx, e.api, u.Email, e.seed.Password, e.seed.TenantID)
			return tok.AccessToken, time.Duration(tok.ExpiresIn) * time.Second, err
		})
		if err != nil {
			return fmt.Errorf("login of %s for access-context: %w", u.Email, err)
		}
		e.userTok = ts
	}
	if need[scEffective] && e.svcTok == nil {
		ts, err := newTokenSource(ctx, func(ctx context.Context) (string, time.Duration, error) {
			var tok oauthToken
			err := withRetry(ctx, 5, func() error { return e.clientCredentials(ctx, &tok, nil) })
			return tok.AccessToken, time.Duration(tok.ExpiresIn) * time.Second, err
		})
		if err != nil {
			return fmt.Errorf("client_credentials token for effective-licenses: %w", err)
		}
		e.svcTok = ts
		// Sanity check: the leaf sees the seeded modules.
		res, err := e.lic.GetEffectiveLicenses(ctx, e.rpcRequest())
		if err != nil {
			return fmt.Errorf("GetEffectiveLicenses at the leaf: %w", err)
		}
		e.seed.LeafModules = len(res.Msg.GetModules())
		e.log("effective-licenses: %d modules at the leaf (depth %d)", e.seed.LeafModules, len(e.seed.Nodes))
	}
	return nil
}

func (e *loadEnv) rpcRequest() *connect.Request[identityv1.GetEffectiveLicensesRequest] {
	req := connect.NewRequest(e.effReq)
	req.Header().Set("Authorization", "Bearer "+e.svcTok.token())
	return req
}

var clientCredentialsBody = []byte("grant_type=client_credentials")

func (e *loadEnv) clientCredentials(ctx context.Context, out *oauthToken, w *worker) error {
	var o any
	if out != nil {
		o = out
	}
	req := request{method: http.MethodPost, path: "/oauth2/token", body: clientCredentialsBody,
		contentType: "application/x-www-form-urlencoded", header: [][2]string{{"Authorization", e.basicAuth}}}
	if w != nil {
		req.rng = w.rng
	}
	return e.api.do(ctx, req, o)
}

// loginWorker logs worker w in as its user (worker id modulo the users) and
// keeps the refresh token.
func (e *loadEnv) loginWorker(ctx context.Context, w *worker) error {
	u := e.seed.Users[w.id%len(e.seed.Users)]
	tok, err := login(ctx, e.api, u.Email, e.seed.Password, e.seed.TenantID)
	if err != nil {
		return err
	}
	w.refreshToken = tok.RefreshToken
	return nil
}

// prepareWorkers starts one refresh chain per worker (sessions are logged in
// a few at a time: each login costs an argon2id hash on the server).
func (e *loadEnv) prepareWorkers(ctx context.Context, workers []*worker, need map[string]bool) error {
	if !need[scRefresh] {
		return nil
	}
	return parallelDo(ctx, len(workers), 4, func(ctx context.Context, i int) error {
		if workers[i].refreshToken != "" {
			return nil
		}
		if err := e.loginWorker(ctx, workers[i]); err != nil {
			return fmt.Errorf("refresh: initial login of worker %d: %w", i, err)
		}
		return nil
	})
}

// op returns the operation called name.
func (e *loadEnv) op(name string, weight int) op {
	o := op{name: name, weight: weight}
	switch name {
	case scJWKS:
		o.do = func(ctx context.Context, w *worker) error {
			return e.api.do(ctx, request{method: http.MethodGet, path: "/.well-known/jwks.json", rng: w.rng}, nil)
		}
	case scLogin:
		o.do = func(ctx context.Context, w *worker) error {
			i := e.loginRR.Add(1) % uint64(len(e.loginBody))
			return e.api.do(ctx, request{method: http.MethodPost, path: "/api/v1/auth/login", body: e.loginBody[i], rng: w.rng}, nil)
		}
	case scRefresh:
		o.do = func(ctx context.Context, w *worker) error {
			if w.refreshToken == "" {
				// The previous refresh failed, so its token may be spent:
				// start a new chain (this login is part of the failed
				// chain's cost and is timed with this request).
				if err := e.loginWorker(ctx, w); err != nil {
					return err
				}
			}
			body := []byte(`{"refreshToken":` + strconv.Quote(w.refreshToken) + `}`)
			var tok struct {
				RefreshToken string `json:"refreshToken"`
			}
			err := e.api.do(ctx, request{method: http.MethodPost, path: "/api/v1/auth/refresh", body: body, rng: w.rng}, &tok)
			w.refreshToken = tok.RefreshToken
			if err == nil && tok.RefreshToken == "" {
				return errors.New("refresh answered without a refresh token")
			}
			return err
		}
	case scClientCredentials:
		o.do = func(ctx context.Context, w *worker) error { return e.clientCredentials(ctx, nil, w) }
	case scAccessContext:
		o.do = func(ctx context.Context, w *worker) error {
			return e.api.do(ctx, request{method: http.MethodGet, path: e.accessPath, bearer: e.userTok.token(), rng: w.rng}, nil)
		}
	case scEffective:
		o.do = func(ctx context.Context, _ *worker) error {
			_, err := e.lic.GetEffectiveLicenses(ctx, e.rpcRequest())
			return err
		}
	default:
		panic("unknown operation " + name)
	}
	return o
}
