package main

// Shared helpers for the REST/GraphQL end-to-end tests of tenancy, the user
// lifecycle, email verification, self-registration and tenant isolation.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
)

// e2eDialects runs the main flows on both databases.
var e2eDialects = map[string]func(testing.TB) map[string]string{"sqlite": baseEnv, "postgres": postgresEnv}

// apiResponse is one REST answer, read completely.
type apiResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// call sends a REST request. body is nil (no body), a string or []byte
// (sent verbatim) or any other value (JSON-encoded); bearer "" sends no
// Authorization header.
func (s *testService) call(t *testing.T, method, path, bearer string, body any) apiResponse {
	t.Helper()
	return s.callWith(t, method, path, bearer, body, nil)
}

func (s *testService) callWith(t *testing.T, method, path, bearer string, body any, header http.Header) apiResponse {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.baseURL+path, rd)
	require.NoError(t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return apiResponse{Status: res.StatusCode, Header: res.Header, Body: raw}
}

// decode requires status and decodes the JSON body into dst.
func (r apiResponse) decode(t *testing.T, status int, dst any) {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"), "body: %s", r.Body)
	require.NoError(t, json.Unmarshal(r.Body, dst), "body: %s", r.Body)
}

// members returns the names of the top-level members of a JSON object body.
func (r apiResponse) members(t *testing.T) []string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// problemDoc is the RFC 9457 body of CONTRACT.md §2.
type problemDoc struct {
	Type      string            `json:"type"`
	Title     string            `json:"title"`
	Status    int               `json:"status"`
	Detail    string            `json:"detail"`
	Code      string            `json:"code"`
	RequestID string            `json:"requestId"`
	Fields    map[string]string `json:"fields"`
}

// requireProblem checks that r is a complete problem+json document with
// status and code, whose requestId is the X-Request-Id response header.
func requireProblem(t *testing.T, r apiResponse, status int, code string) problemDoc {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"), "body: %s", r.Body)
	var p problemDoc
	require.NoError(t, json.Unmarshal(r.Body, &p), "body: %s", r.Body)
	require.Equal(t, code, p.Code, "body: %s", r.Body)
	require.Equal(t, "https://errors.ghasi-ehealth.af/"+code, p.Type)
	require.Equal(t, status, p.Status)
	require.NotEmpty(t, p.Title)
	require.NotEmpty(t, p.Detail)
	require.NotEmpty(t, p.RequestID)
	require.Equal(t, r.Header.Get("X-Request-Id"), p.RequestID)
	if code == "IDENT_VALIDATION" && p.Fields != nil {
		for k, v := range p.Fields {
			require.NotEmpty(t, v, "fields.%s has a reason", k)
		}
	}
	return p
}

// userDoc is the contract's user shape (CONTRACT.md §4).
type userDoc struct {
	ID            string     `json:"id"`
	TenantID      string     `json:"tenantId"`
	Email         string     `json:"email"`
	FirstName     string     `json:"firstName"`
	LastName      string     `json:"lastName"`
	Status        string     `json:"status"`
	CreatedAt     time.Time  `json:"createdAt"`
	DeactivatedAt *time.Time `json:"deactivatedAt"`
}

type userList struct {
	Items      []userDoc `json:"items"`
	NextCursor *string   `json:"nextCursor"`
}

type tenantDoc struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	Slug             string    `json:"slug"`
	SelfRegistration bool      `json:"selfRegistration"`
	MFARequired      bool      `json:"mfaRequired"`
	CreatedAt        time.Time `json:"createdAt"`
	UpdatedAt        time.Time `json:"updatedAt"`
}

// decode requires a GraphQL answer without errors and decodes its data.
func (r gqlResponse) decode(t *testing.T, dst any) {
	t.Helper()
	require.Empty(t, r.Errors, "data: %s", r.Data)
	require.NoError(t, json.Unmarshal(r.Data, dst))
}

// createTenantREST creates a tenant as SUPER_ADMIN through POST /tenants.
func (s *testService) createTenantREST(t *testing.T, super, name, slug string, selfRegistration bool) tenantDoc {
	t.Helper()
	var tn tenantDoc
	s.call(t, http.MethodPost, "/api/v1/tenants", super,
		map[string]any{"name": name, "slug": slug, "selfRegistration": selfRegistration}).decode(t, http.StatusCreated, &tn)
	return tn
}

// createUserREST creates a user through POST /users as bearer.
func (s *testService) createUserREST(t *testing.T, bearer string, body map[string]any) userDoc {
	t.Helper()
	var u userDoc
	s.call(t, http.MethodPost, "/api/v1/users", bearer, body).decode(t, http.StatusCreated, &u)
	return u
}

// addMembershipGQL grants roles to userID in tenantID through GraphQL.
func (s *testService) addMembershipGQL(t *testing.T, bearer, userID, tenantID string, roles ...string) {
	t.Helper()
	if roles == nil {
		roles = []string{}
	}
	var out struct {
		AddMembership struct {
			UserID, TenantID string
			Roles            []string
		}
	}
	s.graphql(t, bearer, `mutation($in: MembershipInput!) { addMembership(input: $in) { userId tenantId roles } }`,
		map[string]any{"in": map[string]any{"userId": userID, "tenantId": tenantID, "roles": roles}}).decode(t, &out)
	require.Equal(t, roles, out.AddMembership.Roles)
}

// registeredData returns the data of userID's identity.user.registered.v1
// after validating every stored registered event against its schema.
func (s *testService) registeredData(t *testing.T, userID string) user.RegisteredData {
	t.Helper()
	env := s.eventFor(t, user.EventRegistered, userID)
	var d user.RegisteredData
	require.NoError(t, json.Unmarshal(env.Data, &d))
	return d
}

// eventFor validates every stored event of eventType and returns the single
// one about subject.
func (s *testService) eventFor(t *testing.T, eventType, subject string) messaging.Envelope {
	t.Helper()
	envs := s.eventsFor(t, eventType, subject)
	require.Len(t, envs, 1, "one %s about %s", eventType, subject)
	return envs[0]
}

// eventsFor validates every stored event of eventType and returns those
// about subject, oldest first (possibly none; the type must have events).
func (s *testService) eventsFor(t *testing.T, eventType, subject string) []messaging.Envelope {
	t.Helper()
	var out []messaging.Envelope
	for _, env := range eventtest.RequireValidStored(t, s.main.db, eventType) {
		if env.Subject == subject {
			out = append(out, env)
		}
	}
	return out
}

// verificationToken extracts the token from userID's verification link.
func (s *testService) verificationToken(t *testing.T, userID string) string {
	t.Helper()
	link := s.registeredData(t, userID).VerificationURL
	require.True(t, strings.HasPrefix(link, s.main.cfg.PublicURL+"/api/v1/auth/verify-email?token="), link)
	u, err := url.Parse(link)
	require.NoError(t, err)
	tok := u.Query().Get("token")
	require.NotEmpty(t, tok)
	return tok
}

// verifyEmail redeems userID's verification token through REST, setting
// password when it is not "".
func (s *testService) verifyEmail(t *testing.T, userID, password string) userDoc {
	t.Helper()
	body := map[string]any{"token": s.verificationToken(t, userID)}
	if password != "" {
		body["password"] = password
	}
	var out struct{ User userDoc }
	s.call(t, http.MethodPost, "/api/v1/auth/verify-email", "", body).decode(t, http.StatusOK, &out)
	require.Equal(t, "active", out.User.Status)
	return out.User
}

// eventCount counts the rows of the events table.
func (s *testService) eventCount(t *testing.T) int {
	t.Helper()
	return s.count(t, `SELECT count(*) FROM events`)
}

// count runs a SELECT count(*) query.
func (s *testService) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, s.main.db.Bun().QueryRowContext(context.Background(), query, args...).Scan(&n))
	return n
}

// storedUser reads status and email of user id straight from the database.
func (s *testService) storedUser(t *testing.T, id string) (status, email string) {
	t.Helper()
	require.NoError(t, s.main.db.Bun().QueryRowContext(context.Background(),
		`SELECT status, email FROM users WHERE id = ?`, id).Scan(&status, &email))
	return status, email
}

// world is two customer tenants with one TENANT_ADMIN each, built through
// the public surfaces by the bootstrap SUPER_ADMIN.
type world struct {
	super            string // SUPER_ADMIN token
	superID          string
	platformID       string
	tenantA, tenantB tenantDoc
	adminA, adminB   userDoc
	tokA, tokB       string // TENANT_ADMIN tokens
}

const (
	adminAEmail = "admin@clinic-a.example.org"
	adminBEmail = "admin@clinic-b.example.org"
	// goodPassword passes the password policy.
	goodPassword = "violet kettle marching upstream"
)

// newWorld creates tenants A (self-registration on) and B (off), and an
// active TENANT_ADMIN in each.
func newWorld(t *testing.T, s *testService) *world {
	t.Helper()
	w := &world{super: s.adminToken(t)}
	var me struct{ Me userDoc }
	s.graphql(t, w.super, `{ me { id tenantId email status } }`, nil).decode(t, &me)
	w.superID, w.platformID = me.Me.ID, me.Me.TenantID
	w.tenantA = s.createTenantREST(t, w.super, "Clinic A", "clinic-a", true)
	w.tenantB = s.createTenantREST(t, w.super, "Clinic B", "clinic-b", false)
	mkAdmin := func(tenantID, email string) (userDoc, string) {
		u := s.createUserREST(t, w.super, map[string]any{"tenantId": tenantID, "email": email, "firstName": "Admin", "lastName": "Person"})
		s.addMembershipGQL(t, w.super, u.ID, tenantID, "TENANT_ADMIN")
		u = s.verifyEmail(t, u.ID, goodPassword)
		return u, s.tokenFor(t, email)
	}
	w.adminA, w.tokA = mkAdmin(w.tenantA.ID, adminAEmail)
	w.adminB, w.tokB = mkAdmin(w.tenantB.ID, adminBEmail)
	return w
}

// statusOf sends a JSON request and returns only the status; it does not
// fail the test itself, so it is safe in goroutines.
func (s *testService) statusOf(method, path, bearer string, body any) (int, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(method, s.baseURL+path, bytes.NewReader(raw))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, err = io.Copy(io.Discard, res.Body)
	return res.StatusCode, err
}
