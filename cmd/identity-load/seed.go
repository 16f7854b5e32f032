package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// licensingReadScope is the scope the licensing resolver requires of a
// service credential (CONTRACT.md §4, "Service credential").
const licensingReadScope = "tenant:licensing:read"

// moduleCodePrefix names the catalogue modules the tool assigns. The
// catalogue is global, so the modules are shared by every run against the
// same database (created when missing) instead of piling up per run.
const moduleCodePrefix = "loadtest.m"

// seedPlan says what a set of scenarios needs.
type seedPlan struct {
	Users       int  // active users with a password (0: none)
	Nodes       bool // a chain of Depth nodes, each user a member at its root
	Depth       int
	Modules     int // modules assigned at every node of the chain (0: none)
	ServiceAcct bool
}

// seedUser is one active, seeded user.
type seedUser struct {
	ID    string `json:"id"`
	Email string `json:"email"`
}

// seedData is what a run seeded; the load ops read it.
type seedData struct {
	RunID          string     `json:"runId"`
	TenantID       string     `json:"tenantId"`
	TenantSlug     string     `json:"tenantSlug"`
	Users          []seedUser `json:"users,omitempty"`
	Password       string     `json:"-"`
	Nodes          []string   `json:"nodes,omitempty"` // root first
	Modules        []string   `json:"modules,omitempty"`
	Assignments    int        `json:"assignments"`
	ClientID       string     `json:"clientId,omitempty"`
	ClientSecret   string     `json:"-"`
	LeafModules    int        `json:"leafModules,omitempty"` // effective modules at the leaf (sanity check)
	SeedingSeconds float64    `json:"seedingSeconds"`
}

// Leaf is the deepest node of the chain.
func (s *seedData) Leaf() string {
	if len(s.Nodes) == 0 {
		return ""
	}
	return s.Nodes[len(s.Nodes)-1]
}

// tokenResponse is the REST token response (CONTRACT.md §3).
type tokenResponse struct {
	AccessToken      string `json:"accessToken"`
	RefreshToken     string `json:"refreshToken"`
	ExpiresIn        int    `json:"expiresIn"`
	RefreshExpiresIn int    `json:"refreshExpiresIn"`
	User             struct {
		ID       string `json:"id"`
		TenantID string `json:"tenantId"`
	} `json:"user"`
}

// oauthToken is the RFC 6749 token response.
type oauthToken struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newRunID is short, unique and valid inside a tenant slug and an email.
func newRunID() string {
	return fmt.Sprintf("%x%s", time.Now().Unix()&0xffffff, randomHex(3))
}

// seeder creates a run's data through the public API as the bootstrap
// SUPER_ADMIN.
type seeder struct {
	api      *apiClient
	admin    string // SUPER_ADMIN access token
	log      func(format string, args ...any)
	parallel int
}

// login posts /auth/login, retrying refusals (429/503) a few times.
func login(ctx context.Context, api *apiClient, email, password, tenantID string) (tokenResponse, error) {
	body := map[string]any{"email": email, "password": password}
	if tenantID != "" {
		body["tenantId"] = tenantID
	}
	var tok tokenResponse
	err := withRetry(ctx, 6, func() error {
		return api.postJSON(ctx, "/api/v1/auth/login", "", body, &tok)
	})
	if err != nil {
		return tok, err
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		return tok, errors.New("login answered without tokens")
	}
	return tok, nil
}

// parallelDo runs f(0..n-1) with at most limit at once and returns the
// first error (after every started call finished); it stops starting new
// calls after an error.
func parallelDo(ctx context.Context, n, limit int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  atomic.Int64
	)
	for range min(max(limit, 1), n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// seed creates a fresh tenant and what plan asks for.
func (s *seeder) seed(ctx context.Context, plan seedPlan) (*seedData, error) {
	start := time.Now()
	d := &seedData{RunID: newRunID()}
	d.TenantSlug = "load-" + d.RunID
	var tn struct {
		ID string `json:"id"`
	}
	if err := s.call(ctx, func() error {
		return s.api.postJSON(ctx, "/api/v1/tenants", s.admin,
			map[string]any{"name": "Load test " + d.RunID, "slug": d.TenantSlug}, &tn)
	}); err != nil {
		return nil, fmt.Errorf("create tenant: %w", err)
	}
	d.TenantID = tn.ID
	s.log("seed: tenant %s (%s)", d.TenantSlug, d.TenantID)

	// The node chain, the catalogue and the users do not depend on each
	// other: build them at the same time.
	var wg sync.WaitGroup
	var errNodes, errModules, errUsers error
	if plan.Nodes {
		wg.Go(func() { errNodes = s.seedNodes(ctx, d, plan.Depth) })
	}
	if plan.Modules > 0 {
		wg.Go(func() { errModules = s.seedModules(ctx, d, plan.Modules) })
	}
	if plan.Users > 0 {
		wg.Go(func() { errUsers = s.seedUsers(ctx, d, plan.Users) })
	}
	wg.Wait()
	if err := errors.Join(errNodes, errModules, errUsers); err != nil {
		return nil, err
	}

	if plan.Nodes && len(d.Users) > 0 {
		if err := s.seedMemberships(ctx, d); err != nil {
			return nil, err
		}
	}
	if plan.Nodes && plan.Modules > 0 {
		if err := s.seedAssignments(ctx, d); err != nil {
			return nil, err
		}
	}
	if plan.ServiceAcct {
		if err := s.seedServiceAccount(ctx, d); err != nil {
			return nil, err
		}
	}
	d.SeedingSeconds = time.Since(start).Seconds()
	return d, nil
}

// call runs one seeding request with retries of refusals.
func (s *seeder) call(ctx context.Context, f func() error) error { return withRetry(ctx, 8, f) }

const createNodeQ = `mutation($in: CreateNodeInput!) { createNode(input: $in) { id } }`

func (s *seeder) seedNodes(ctx context.Context, d *seedData, depth int) error {
	kinds := []string{"country", "province", "district", "subdistrict", "facility", "department", "ward", "unit"}
	parent := ""
	for i := range depth {
		kind := fmt.Sprintf("level%d", i)
		if i < len(kinds) {
			kind = kinds[i]
		}
		in := map[string]any{"tenantId": d.TenantID, "name": fmt.Sprintf("Load %s %d", kind, i), "kind": kind}
		if parent != "" {
			in["parentId"] = parent
		}
		var out struct {
			CreateNode struct {
				ID string `json:"id"`
			} `json:"createNode"`
		}
		if err := s.call(ctx, func() error {
			return s.api.graphql(ctx, s.admin, createNodeQ, map[string]any{"in": in}, &out)
		}); err != nil {
			return fmt.Errorf("createNode (level %d): %w", i, err)
		}
		parent = out.CreateNode.ID
		d.Nodes = append(d.Nodes, parent)
	}
	s.log("seed: chain of %d nodes, leaf %s", depth, d.Leaf())
	return nil
}

func (s *seeder) seedModules(ctx context.Context, d *seedData, n int) error {
	var cat struct {
		Modules []struct {
			Code         string  `json:"code"`
			TerminatedAt *string `json:"terminatedAt"`
		} `json:"modules"`
	}
	if err := s.call(ctx, func() error {
		return s.api.graphql(ctx, s.admin, `{ modules { code terminatedAt } }`, nil, &cat)
	}); err != nil {
		return fmt.Errorf("list modules: %w", err)
	}
	existing := map[string]bool{}
	for _, m := range cat.Modules {
		if m.TerminatedAt != nil && strings.HasPrefix(m.Code, moduleCodePrefix) {
			return fmt.Errorf("module %s is terminated; the tool needs %s00..: use a fresh database", m.Code, moduleCodePrefix)
		}
		existing[m.Code] = true
	}
	codes := make([]string, n)
	var created atomic.Int64
	for i := range n {
		codes[i] = fmt.Sprintf("%s%02d", moduleCodePrefix, i)
	}
	err := parallelDo(ctx, n, s.parallel, func(ctx context.Context, i int) error {
		if existing[codes[i]] {
			return nil
		}
		err := s.call(ctx, func() error {
			return s.api.postJSON(ctx, "/api/v1/licensing/modules", s.admin,
				map[string]any{"code": codes[i], "name": "Load test module " + codes[i]}, nil)
		})
		var se *statusError
		if errors.As(err, &se) && se.Status == http.StatusConflict {
			return nil // created meanwhile by a parallel run
		}
		if err == nil {
			created.Add(1)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create module: %w", err)
	}
	d.Modules = codes
	s.log("seed: %d modules (%d new)", n, created.Load())
	return nil
}

func (s *seeder) seedUsers(ctx context.Context, d *seedData, n int) error {
	d.Password = "Load-" + base64.RawURLEncoding.EncodeToString([]byte(randomHex(12)))
	d.Users = make([]seedUser, n)
	// Creating, finding the verification token and verifying are three
	// calls per user; verification hashes the password (argon2id), which
	// the server bounds by its hashing slots, so a handful at once suffices.
	err := parallelDo(ctx, n, s.parallel, func(ctx context.Context, i int) error {
		email := fmt.Sprintf("load-%s-%04d@load.example.org", d.RunID, i)
		var u struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		if err := s.call(ctx, func() error {
			return s.api.postJSON(ctx, "/api/v1/users", s.admin, map[string]any{
				"tenantId": d.TenantID, "email": email, "firstName": "Load", "lastName": fmt.Sprintf("User %d", i)}, &u)
		}); err != nil {
			return fmt.Errorf("create user %s: %w", email, err)
		}
		tok, err := s.verificationToken(ctx, u.ID)
		if err != nil {
			return fmt.Errorf("verification token of %s: %w", u.ID, err)
		}
		var out struct {
			User struct {
				Status string `json:"status"`
			} `json:"user"`
		}
		if err := s.call(ctx, func() error {
			return s.api.postJSON(ctx, "/api/v1/auth/verify-email", "", map[string]any{"token": tok, "password": d.Password}, &out)
		}); err != nil {
			return fmt.Errorf("verify-email of %s: %w", u.ID, err)
		}
		if out.User.Status != "active" {
			return fmt.Errorf("user %s is %q after verify-email, want active", u.ID, out.User.Status)
		}
		d.Users[i] = seedUser{ID: u.ID, Email: email}
		return nil
	})
	if err != nil {
		return err
	}
	s.log("seed: %d active users %s … (one password)", n, d.Users[0].Email)
	return nil
}

const registeredEventsQ = `query($t: String, $s: String) { events(type: $t, subject: $s, first: 5) { edges { node { data } } } }`

// verificationToken reads the user's identity.user.registered.v1 event
// from the audit log and returns the token of its verificationUrl.
func (s *seeder) verificationToken(ctx context.Context, userID string) (string, error) {
	var out struct {
		Events struct {
			Edges []struct {
				Node struct {
					Data struct {
						VerificationURL string `json:"verificationUrl"`
					} `json:"data"`
				} `json:"node"`
			} `json:"edges"`
		} `json:"events"`
	}
	if err := s.call(ctx, func() error {
		return s.api.graphql(ctx, s.admin, registeredEventsQ,
			map[string]any{"t": "identity.user.registered.v1", "s": userID}, &out)
	}); err != nil {
		return "", err
	}
	for _, e := range out.Events.Edges {
		u, err := url.Parse(e.Node.Data.VerificationURL)
		if err != nil {
			continue
		}
		if tok := u.Query().Get("token"); tok != "" {
			return tok, nil
		}
	}
	return "", fmt.Errorf("no identity.user.registered.v1 event with a verificationUrl token (%d events)", len(out.Events.Edges))
}

const addMembershipQ = `mutation($in: MembershipInput!) { addMembership(input: $in) { userId } }`

// seedMemberships makes every user a member at the root of the chain, so
// every node of it (the leaf included) is covered.
func (s *seeder) seedMemberships(ctx context.Context, d *seedData) error {
	err := parallelDo(ctx, len(d.Users), s.parallel, func(ctx context.Context, i int) error {
		in := map[string]any{"userId": d.Users[i].ID, "tenantId": d.TenantID, "nodeId": d.Nodes[0], "roles": []string{"LOAD_CLINICIAN"}}
		return s.call(ctx, func() error { return s.api.graphql(ctx, s.admin, addMembershipQ, map[string]any{"in": in}, nil) })
	})
	if err != nil {
		return fmt.Errorf("addMembership: %w", err)
	}
	s.log("seed: %d memberships at the root node", len(d.Users))
	return nil
}

// seedAssignments assigns every module at every node of the chain,
// alternating exact and inherit_down (the leaf's own assignments are
// inherit_down) like BenchmarkEffectiveLicensesHTTP, so the leaf sees
// every module and the resolver walks the whole chain.
func (s *seeder) seedAssignments(ctx context.Context, d *seedData) error {
	nNodes := len(d.Nodes)
	total := len(d.Modules) * nNodes
	err := parallelDo(ctx, total, s.parallel, func(ctx context.Context, k int) error {
		m, n := k/nNodes, k%nNodes
		scope := "inherit_down"
		if (m+n)%2 == 1 && n != nNodes-1 {
			scope = "exact"
		}
		return s.call(ctx, func() error {
			return s.api.postJSON(ctx, "/api/v1/licensing/assignments", s.admin, map[string]any{
				"tenantId": d.TenantID, "nodeId": d.Nodes[n], "moduleCode": d.Modules[m], "scope": scope, "status": "active"}, nil)
		})
	})
	if err != nil {
		return fmt.Errorf("create assignment: %w", err)
	}
	d.Assignments = total
	s.log("seed: %d assignments (%d modules × %d nodes)", total, len(d.Modules), nNodes)
	return nil
}

func (s *seeder) seedServiceAccount(ctx context.Context, d *seedData) error {
	var sa struct {
		ID           string `json:"id"`
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
	}
	if err := s.call(ctx, func() error {
		return s.api.postJSON(ctx, "/api/v1/service-accounts", s.admin, map[string]any{
			"name": "load " + d.RunID, "tenantId": d.TenantID, "scopes": []string{licensingReadScope}}, &sa)
	}); err != nil {
		return fmt.Errorf("create service account: %w", err)
	}
	if sa.ClientID == "" || sa.ClientSecret == "" {
		return errors.New("create service account: no clientId/clientSecret in the answer")
	}
	d.ClientID, d.ClientSecret = sa.ClientID, sa.ClientSecret
	s.log("seed: service account %s (%s)", sa.ClientID, licensingReadScope)
	return nil
}
