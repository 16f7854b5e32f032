package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/apikey"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// helperProcessEnv makes TestHelperIdentitydProcess run identityd.
const helperProcessEnv = "IDENTITYD_TEST_HELPER_PROCESS"

// buildBinaryEnv = 1 makes the crash test build the real binary with
// `go build -o` instead of re-running the test binary as identityd. The
// re-run is the default: it costs no build, whereas a plain build with a
// cold non-race cache (as under `make test`, which builds with -race only)
// took 3½ minutes on a 2-CPU runner. Both run main().
const buildBinaryEnv = "IDENTITY_TEST_BUILD_BINARY"

// TestHelperIdentitydProcess is not a test: the crash test starts the test
// binary with helperProcessEnv=1 and -test.run selecting this function, and
// it then runs main() as `identityd serve`, i.e. the binary's entry point
// (signals, configuration from the environment, exit status).
func TestHelperIdentitydProcess(t *testing.T) {
	if os.Getenv(helperProcessEnv) != "1" {
		t.Skip("identityd helper process for TestCrashKill9KeepsStateAndEventsTogether")
	}
	os.Args = []string{"identityd", "serve"}
	main() // exits
}

// TestCrashKill9KeepsStateAndEventsTogether kills identityd with SIGKILL in
// the middle of a concurrent write load (user creation, logins and logouts,
// membership changes, API keys), restarts it on the same database and
// checks that no committed state change lacks its event and no event lacks
// its state change, that every write acknowledged with a 2xx before the
// kill is in the database, and that the restarted process relays the
// events the killed one left unpublished.
func TestCrashKill9KeepsStateAndEventsTogether(t *testing.T) {
	nc, err := nats.Connect(dbtest.NATSURL(), nats.Timeout(2*time.Second))
	dbtest.NeedServer(t, "NATS", err)
	nc.Close()
	exe, args := identitydCommand(t)
	for name, dbURL := range map[string]func(t *testing.T) string{
		"postgres": func(t *testing.T) string { return dbtest.PostgresSchemaURL(t) },
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "identity.db") },
	} {
		t.Run(name, func(t *testing.T) { crashTest(t, exe, args, dbURL(t)) })
	}
}

func crashTest(t *testing.T, exe string, args []string, dbURL string) {
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	env := map[string]string{
		"IDENTITY_HTTP_ADDR":                "127.0.0.1:0",
		"IDENTITY_DATABASE_URL":             dbURL,
		"IDENTITY_MASTER_KEY":               base64.StdEncoding.EncodeToString(key),
		"IDENTITY_PUBLIC_URL":               "https://identity.crash.example",
		"IDENTITY_NATS_URL":                 dbtest.NATSURL(),
		"IDENTITY_ARGON2_PARAMS":            "m=64,t=1,p=1",
		"IDENTITY_BOOTSTRAP_ADMIN_EMAIL":    testAdminEmail,
		"IDENTITY_BOOTSTRAP_ADMIN_PASSWORD": testAdminPassword,
		"IDENTITY_TRUSTED_PROXIES":          "127.0.0.1",
		"IDENTITY_LOG_LEVEL":                "info",
		"GOMEMLIMIT":                        "off",
	}
	began := time.Now()
	first := startIdentityd(t, exe, args, env)
	t.Logf("identityd up after %s", time.Since(began))

	db, err := persistence.Open(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })

	fx := newCrashFixture(t, first, db)
	load := &crashLoad{p: first, fx: fx, lastMembership: map[string]membershipState{}, inFlight: map[string]membershipState{}}
	var wg sync.WaitGroup
	for i := range 2 {
		ip := randomIP(t)
		wg.Go(func() { load.createUsers(i, ip) })
		wg.Go(func() { load.apiKeys(ip) })
	}
	for _, u := range fx.loginUsers {
		ip := randomIP(t)
		wg.Go(func() { load.loginLogout(u, ip) })
	}
	for _, u := range fx.memberUsers {
		ip := randomIP(t)
		wg.Go(func() { load.memberships(u, ip) })
	}
	time.Sleep(1500 * time.Millisecond)
	load.killed.Store(true)
	require.NoError(t, first.kill9())
	wg.Wait()
	require.Empty(t, load.unexpected, "every request before the kill succeeded")
	t.Logf("acknowledged before the kill: %d users, %d logins, %d logouts, %d API keys, %d revoked keys, %d membership changes; %d requests cut off",
		len(load.users), len(load.sessions), len(load.loggedOut), len(load.keys), len(load.revokedKeys), load.membershipAcks, load.aborted.Load())
	require.NotEmpty(t, load.users)
	require.NotEmpty(t, load.loggedOut)
	require.NotEmpty(t, load.keys)
	require.NotZero(t, load.membershipAcks)
	pendingAtKill := countRows(t, db, `SELECT count(*) FROM events WHERE published_at IS NULL`)

	began = time.Now()
	second := startIdentityd(t, exe, args, env)
	t.Logf("restarted after %s; %d events were unpublished at the kill", time.Since(began), pendingAtKill)
	var ready map[string]any
	require.Equal(t, http.StatusOK, getJSON(t, second.baseURL+"/readyz", &ready).StatusCode, "%v", ready)

	t.Run("acknowledged writes are durable", func(t *testing.T) {
		requireAll(t, db, `SELECT CAST(id AS TEXT) FROM users`, load.users, "acknowledged user")
		requireAll(t, db, `SELECT CAST(id AS TEXT) FROM sessions`, load.sessions, "acknowledged login's session")
		var loggedOut []string
		for _, tok := range load.loggedOut {
			loggedOut = append(loggedOut, tok.sessionID)
		}
		requireAll(t, db, `SELECT CAST(id AS TEXT) FROM sessions WHERE revoked_at IS NOT NULL`, loggedOut, "acknowledged logout")
		requireAll(t, db, `SELECT CAST(id AS TEXT) FROM api_keys`, load.keys, "acknowledged API key")
		requireAll(t, db, `SELECT CAST(id AS TEXT) FROM api_keys WHERE revoked_at IS NOT NULL`, load.revokedKeys, "acknowledged API key revocation")
		rows := membershipRows(t, db)
		for userID, last := range load.lastMembership {
			got, ok := rows[membershipKey{userID, fx.tenantID, ""}]
			allowed := []membershipState{last}
			if inFlight, ok := load.inFlight[userID]; ok {
				allowed = append(allowed, inFlight) // its outcome is unknown
			}
			require.Contains(t, allowed, membershipState{present: ok, roles: got}, "membership of %s", userID)
		}
		// The restarted process honours what the killed one did: logged-out
		// tokens stay rejected, live ones keep working.
		for _, tok := range load.loggedOut[max(0, len(load.loggedOut)-5):] {
			status, _, err := second.request(http.MethodGet, "/api/v1/auth/whoami", tok.access, "", nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusUnauthorized, status, "session %s was logged out", tok.sessionID)
		}
		status, _, err := second.request(http.MethodGet, "/api/v1/auth/whoami", fx.liveToken, "", nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
	})

	t.Run("state changes and events match", func(t *testing.T) {
		admin := fx.adminID
		// Bootstrap creates the platform tenant and its SUPER_ADMIN without
		// events (it is not a state change of the running service).
		pairs := []struct{ what, state, eventType string }{
			{"user", `SELECT CAST(id AS TEXT) FROM users WHERE CAST(id AS TEXT) <> '` + admin + `'`, user.EventRegistered},
			{"session", `SELECT CAST(id AS TEXT) FROM sessions`, auth.EventSessionCreated},
			{"revoked session", `SELECT CAST(id AS TEXT) FROM sessions WHERE revoked_at IS NOT NULL`, auth.EventSessionRevoked},
			{"API key", `SELECT CAST(id AS TEXT) FROM api_keys`, apikey.EventIssued},
			{"revoked API key", `SELECT CAST(id AS TEXT) FROM api_keys WHERE revoked_at IS NOT NULL`, apikey.EventRevoked},
		}
		for _, p := range pairs {
			state := queryStrings(t, db, p.state)
			events := queryStrings(t, db, `SELECT subject FROM events WHERE type = ?`, p.eventType)
			require.NotEmpty(t, state, p.what)
			require.ElementsMatch(t, state, uniq(events), "every %s has its %s and every such event its %s", p.what, p.eventType, p.what)
			require.Len(t, events, len(state), "one %s per %s", p.eventType, p.what)
		}
		// Memberships: replaying membership.changed in order gives the table.
		replayed := map[membershipKey][]string{}
		rows, err := db.Bun().QueryContext(context.Background(), `SELECT data FROM events WHERE type = ? ORDER BY seq`, tenancy.EventMembershipChanged)
		require.NoError(t, err)
		for rows.Next() {
			var raw string
			require.NoError(t, rows.Scan(&raw))
			var d tenancy.MembershipChangedData
			require.NoError(t, json.Unmarshal([]byte(raw), &d))
			k := membershipKey{d.UserID, d.TenantID, ""}
			if d.NodeID != nil {
				k.nodeID = *d.NodeID
			}
			if d.Change == tenancy.ChangeRemoved {
				delete(replayed, k)
			} else {
				replayed[k] = d.Roles
			}
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		table := membershipRows(t, db) // bootstrap's included: it emits its event too
		require.NotEmpty(t, table)
		require.Equal(t, replayed, table, "the membership events replay to the memberships table")
	})

	t.Run("the restarted process relays what the killed one left", func(t *testing.T) {
		start := time.Now()
		require.Eventually(t, func() bool {
			return countRows(t, db, `SELECT count(*) FROM events WHERE published_at IS NULL`) == 0
		}, 15*time.Second, 20*time.Millisecond)
		t.Logf("outbox drained %s after the restart was ready", time.Since(start))
	})

	require.NoError(t, second.terminate())
}

// crashFixture is what the load works on, set up before it.
type crashFixture struct {
	admin, adminID, tenantID string
	loginUsers               []string // emails of active users with goodPassword
	memberUsers              []string // ids of users whose memberships change
	liveToken                string   // an access token whose session is never logged out
}

func newCrashFixture(t *testing.T, p *identitydProcess, db *persistence.DB) *crashFixture {
	t.Helper()
	fx := &crashFixture{}
	var tr tokenResponseDoc
	p.mustJSON(t, http.MethodPost, "/api/v1/auth/login", "", map[string]string{"email": testAdminEmail, "password": testAdminPassword}, http.StatusOK, &tr)
	fx.admin = tr.AccessToken
	var who whoamiDoc
	p.mustJSON(t, http.MethodGet, "/api/v1/auth/whoami", fx.admin, nil, http.StatusOK, &who)
	fx.adminID = who.ID
	var tn tenantDoc
	p.mustJSON(t, http.MethodPost, "/api/v1/tenants", fx.admin, map[string]any{"name": "Crash Clinic", "slug": "crash-" + randomTag(t)}, http.StatusCreated, &tn)
	fx.tenantID = tn.ID
	newUser := func(email string, password bool) string {
		body := map[string]any{"tenantId": fx.tenantID, "email": email, "firstName": "Crash", "lastName": "Test"}
		if password {
			body["password"] = goodPassword
		}
		var u userDoc
		p.mustJSON(t, http.MethodPost, "/api/v1/users", fx.admin, body, http.StatusCreated, &u)
		return u.ID
	}
	for i := range 6 {
		email := fmt.Sprintf("login-%d@crash.example.org", i)
		id := newUser(email, true)
		var link string
		require.NoError(t, db.Bun().QueryRowContext(context.Background(),
			`SELECT data FROM events WHERE type = ? AND subject = ?`, user.EventRegistered, id).Scan(&link))
		var d user.RegisteredData
		require.NoError(t, json.Unmarshal([]byte(link), &d))
		u, err := url.Parse(d.VerificationURL)
		require.NoError(t, err)
		p.mustJSON(t, http.MethodPost, "/api/v1/auth/verify-email", "", map[string]any{"token": u.Query().Get("token")}, http.StatusOK, nil)
		fx.loginUsers = append(fx.loginUsers, email)
	}
	for i := range 4 {
		fx.memberUsers = append(fx.memberUsers, newUser(fmt.Sprintf("member-%d@crash.example.org", i), false))
	}
	p.mustJSON(t, http.MethodPost, "/api/v1/auth/login", "", map[string]string{"email": fx.loginUsers[0], "password": goodPassword}, http.StatusOK, &tr)
	fx.liveToken = tr.AccessToken
	return fx
}

// membershipState is a user's tenant-wide membership: absent, or roles.
type membershipState struct {
	present bool
	roles   []string
}

type membershipKey struct{ userID, tenantID, nodeID string }

type loggedOutToken struct{ sessionID, access string }

// crashLoad drives the writes and records what was acknowledged.
type crashLoad struct {
	p      *identitydProcess
	fx     *crashFixture
	killed atomic.Bool

	mu             sync.Mutex
	users          []string
	sessions       []string
	loggedOut      []loggedOutToken
	keys           []string
	revokedKeys    []string
	lastMembership map[string]membershipState // per user, the last acknowledged
	inFlight       map[string]membershipState // per user, a change without an answer
	membershipAcks int
	aborted        atomic.Int64 // requests cut off by the kill
	unexpected     []string
}

// send performs one request; ok reports a 2xx. A transport error after
// the kill ends the worker (stop); anything else unexpected is recorded.
func (l *crashLoad) send(method, path, bearer, ip string, body any, dst any) (ok, stop bool) {
	status, raw, err := l.p.request(method, path, bearer, ip, body)
	if err != nil {
		if l.killed.Load() {
			l.aborted.Add(1)
			return false, true
		}
		l.fail("%s %s: %v", method, path, err)
		return false, true
	}
	if status < 200 || status > 299 {
		l.fail("%s %s: %d %s", method, path, status, raw)
		return false, true
	}
	if dst != nil {
		if err := json.Unmarshal(raw, dst); err != nil {
			l.fail("%s %s: %v", method, path, err)
			return false, true
		}
	}
	return true, l.killed.Load()
}

func (l *crashLoad) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unexpected = append(l.unexpected, fmt.Sprintf(format, args...))
}

func (l *crashLoad) createUsers(worker int, ip string) {
	for i := 0; ; i++ {
		var u userDoc
		ok, stop := l.send(http.MethodPost, "/api/v1/users", l.fx.admin, ip, map[string]any{"tenantId": l.fx.tenantID,
			"email": fmt.Sprintf("load-%d-%d@crash.example.org", worker, i), "firstName": "Load", "lastName": "User"}, &u)
		if ok {
			appendLocked(&l.mu, &l.users, u.ID)
		}
		if stop {
			return
		}
	}
}

func (l *crashLoad) loginLogout(email, ip string) {
	for {
		var tr tokenResponseDoc
		ok, stop := l.send(http.MethodPost, "/api/v1/auth/login", "", ip, map[string]string{"email": email, "password": goodPassword}, &tr)
		if !ok {
			return
		}
		sid := sessionOf(tr.AccessToken)
		appendLocked(&l.mu, &l.sessions, sid)
		if stop {
			return
		}
		ok, stop = l.send(http.MethodPost, "/api/v1/auth/logout", tr.AccessToken, ip, nil, nil)
		if ok {
			appendLocked(&l.mu, &l.loggedOut, loggedOutToken{sid, tr.AccessToken})
		}
		if stop {
			return
		}
	}
}

func (l *crashLoad) apiKeys(ip string) {
	for i := 0; ; i++ {
		var k struct{ ID string }
		ok, stop := l.send(http.MethodPost, "/api/v1/api-keys", l.fx.admin, ip,
			map[string]any{"name": fmt.Sprintf("crash key %d", i), "scopes": []string{"tenant:users:read"}, "tenantId": l.fx.tenantID}, &k)
		if ok {
			appendLocked(&l.mu, &l.keys, k.ID)
		}
		if stop {
			return
		}
		if i%2 == 1 {
			ok, stop = l.send(http.MethodDelete, "/api/v1/api-keys/"+k.ID, l.fx.admin, ip, nil, nil)
			if ok {
				appendLocked(&l.mu, &l.revokedKeys, k.ID)
			}
			if stop {
				return
			}
		}
	}
}

// memberships cycles one user's tenant-wide membership through add,
// update and removal over GraphQL.
func (l *crashLoad) memberships(userID, ip string) {
	roleSets := [][]string{{"NURSE"}, {"NURSE", "PHARMACIST"}, nil}
	for i := 0; ; i++ {
		roles := roleSets[i%len(roleSets)]
		next := membershipState{present: roles != nil, roles: roles}
		var query string
		var vars map[string]any
		if roles != nil {
			query = `mutation($in: MembershipInput!) { addMembership(input: $in) { userId } }`
			vars = map[string]any{"in": map[string]any{"userId": userID, "tenantId": l.fx.tenantID, "roles": roles}}
		} else {
			query = `mutation($u: ID!, $t: ID!) { removeMembership(userId: $u, tenantId: $t) }`
			vars = map[string]any{"u": userID, "t": l.fx.tenantID}
		}
		l.mu.Lock()
		l.inFlight[userID] = next
		l.mu.Unlock()
		var res gqlResponse
		ok, stop := l.send(http.MethodPost, "/graphql", l.fx.admin, ip, map[string]any{"query": query, "variables": vars}, &res)
		if ok && len(res.Errors) > 0 {
			l.fail("membership change: %s", res.Errors[0].Message)
			return
		}
		if ok {
			l.mu.Lock()
			l.lastMembership[userID] = next
			delete(l.inFlight, userID)
			l.membershipAcks++
			l.mu.Unlock()
		}
		if stop {
			return
		}
	}
}

// sessionOf is the session id in an access token's jti ("" if unreadable).
func sessionOf(access string) string {
	parts := strings.Split(access, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct{ Jti string }
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	sid, _, _ := strings.Cut(c.Jti, ".")
	return sid
}

func queryStrings(t *testing.T, db *persistence.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Bun().QueryContext(context.Background(), query, args...)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

func countRows(t *testing.T, db *persistence.DB, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.Bun().QueryRowContext(context.Background(), query, args...).Scan(&n))
	return n
}

// requireAll requires every id of want among the rows of query.
func requireAll(t *testing.T, db *persistence.DB, query string, want []string, what string) {
	t.Helper()
	have := map[string]bool{}
	for _, id := range queryStrings(t, db, query) {
		have[id] = true
	}
	for _, id := range want {
		require.True(t, have[id], "%s %s is not in the database", what, id)
	}
}

// membershipRows reads the memberships table.
func membershipRows(t *testing.T, db *persistence.DB) map[membershipKey][]string {
	t.Helper()
	rows, err := db.Bun().QueryContext(context.Background(),
		`SELECT CAST(user_id AS TEXT), CAST(tenant_id AS TEXT), node_id, roles FROM memberships`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[membershipKey][]string{}
	for rows.Next() {
		var k membershipKey
		var roles string
		require.NoError(t, rows.Scan(&k.userID, &k.tenantID, &k.nodeID, &roles))
		var rs []string
		require.NoError(t, json.Unmarshal([]byte(roles), &rs))
		out[k] = rs
	}
	require.NoError(t, rows.Err())
	return out
}

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// appendLocked appends v to *list while holding mu (the load's workers
// record what they did concurrently).
func appendLocked[T any](mu *sync.Mutex, list *[]T, v T) {
	mu.Lock()
	defer mu.Unlock()
	*list = append(*list, v)
}
