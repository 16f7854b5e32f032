package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// TestScaleOutTwoInstances completes the multi-node picture of
// TestTwoInstancesShareLimitsAndRevocations (one rate limit, replay
// detection and immediate revocation on both) for two instances sharing
// Postgres, Valkey and NATS: the effective-license cache is invalidated on
// both, a key rotation on one is seen at once by the other (even two
// rotations in a row, which the other never polled), every outbox event of
// a burst written through both reaches JetStream, and inbox consumers on
// both instances sharing one durable process each event once, through
// failures and duplicates.
func TestScaleOutTwoInstances(t *testing.T) {
	nc, err := nats.Connect(dbtest.NATSURL(), nats.Timeout(2*time.Second))
	dbtest.NeedServer(t, "NATS", err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)

	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(t, err)
	shared := withTrustedProxy(baseEnv(t))
	shared["IDENTITY_DATABASE_URL"] = dbtest.PostgresSchemaURL(t)
	shared["IDENTITY_VALKEY_URL"] = testValkeyURL(t)
	shared["IDENTITY_NATS_URL"] = dbtest.NATSURL()
	shared["IDENTITY_MASTER_KEY"] = base64.StdEncoding.EncodeToString(key)
	shared["IDENTITY_PUBLIC_URL"] = "https://identity.test.example"
	a := startService(t, shared)
	b := startService(t, maps.Clone(shared))
	w := newLicensingWorld(t, a)
	T := w.tenantA.ID

	t.Run("effective-license cache invalidated on both", func(t *testing.T) {
		a.createModule(t, w.super, map[string]any{"code": "scale.lab", "name": "Scale-out Lab"})
		lab := a.assign(t, w.super, map[string]any{"tenantId": T, "nodeId": w.province, "moduleCode": "scale.lab",
			"scope": "inherit_down", "status": "active"})
		rpcB := b.licensingClients()["connect"]
		// Warm B through REST and Connect.
		for range 2 {
			require.True(t, byCode(b.effectiveREST(t, w.svcToken, T, w.facility))["scale.lab"].Granted)
			require.True(t, byCode(effectiveRPC(t, rpcB, w.svcToken, T, w.facility))["scale.lab"].Granted)
		}
		// A suspends: B answers the new status on both surfaces, pushed
		// rather than waited out (BenchmarkCrossInstancePropagation
		// measures how fast).
		changed := time.Now()
		a.setAssignmentStatus(t, w.super, lab.ID, "suspended", "overdue").decode(t, http.StatusOK, &assignmentDoc{})
		require.Eventually(t, func() bool {
			rest := byCode(b.effectiveREST(t, w.svcToken, T, w.facility))["scale.lab"]
			rpc := byCode(effectiveRPC(t, rpcB, w.svcToken, T, w.facility))["scale.lab"]
			return rest.Status == "suspended" && !rest.Granted && rpc.Status == "suspended" && !rpc.Granted
		}, 5*time.Second, 10*time.Millisecond, "B answers A's suspension (pushed; the cache TTL is 5 min)")
		t.Logf("B saw the suspension after %s", time.Since(changed))
		// And the other way round: warm A, reactivate through B.
		require.False(t, byCode(a.effectiveREST(t, w.svcToken, T, w.facility))["scale.lab"].Granted)
		b.setAssignmentStatus(t, w.super, lab.ID, "active", "paid").decode(t, http.StatusOK, &assignmentDoc{})
		require.Eventually(t, func() bool {
			return byCode(effectiveRPC(t, a.licensingClients()["grpc"], w.svcToken, T, w.facility))["scale.lab"].Granted
		}, 5*time.Second, 10*time.Millisecond, "A answers B's reactivation (pushed; the cache TTL is 5 min)")
	})

	t.Run("key rotation seen by both at once", func(t *testing.T) {
		u := a.createUserREST(t, w.super, map[string]any{"tenantId": T, "email": "rotation-" + randomTag(t) + "@clinic-a.example.org",
			"firstName": "Ro", "lastName": "Tation", "password": goodPassword})
		a.verifyEmail(t, u.ID, "")
		ip := randomIP(t)
		rotate := func(s *testService) string {
			t.Helper()
			var out struct{ RotateSigningKey struct{ Kid string } }
			s.graphql(t, s.adminToken(t), `mutation { rotateSigningKey { kid } }`, nil).decode(t, &out)
			require.NotEmpty(t, out.RotateSigningKey.Kid)
			return out.RotateSigningKey.Kid
		}
		jwksOf := func(s *testService) []string {
			var doc jwksDoc
			require.Equal(t, http.StatusOK, getJSON(t, s.baseURL+"/.well-known/jwks.json", &doc).StatusCode)
			return kidsOf(doc)
		}
		// seenBy requires that a token signed with kid by `from` (a
		// password login, so a real session) authenticates on `on` at once.
		seenBy := func(from, on *testService, kid string) {
			t.Helper()
			tr := from.at(ip).mustLogin(t, u.Email, goodPassword, nil)
			require.Equal(t, kid, kidOf(t, tr.AccessToken))
			on.at(ip).requireAccepted(t, tr.AccessToken, u.ID)
			var me struct{ Me struct{ ID string } }
			on.graphql(t, tr.AccessToken, `{ me { id } }`, nil).decode(t, &me)
			require.Equal(t, u.ID, me.Me.ID)
			require.Contains(t, jwksOf(on), kid, "the JWKS of the other instance lists the signing key")
		}

		// One rotation: the new active key was B's published next key.
		k1 := rotate(a)
		seenBy(a, b, k1)
		// B noticed the rotation from that token and signs with k1 too,
		// instead of the retired key until its next poll (1 min).
		require.Equal(t, k1, kidOf(t, b.at(ip).mustLogin(t, u.Email, goodPassword, nil).AccessToken))

		// Two rotations in a row on A: the second promotes the key the first
		// created, which B has never loaded (it polls once a minute). A token
		// signed with it verifies on B at once all the same.
		k2 := rotate(a)
		k3 := rotate(a)
		require.NotEqual(t, k2, k3)
		require.NotContains(t, jwksOf(b), k3, "B has not loaded the keyring since k3 was created")
		seenBy(a, b, k3)

		// B is current, so it can rotate next (no IDENT_STATE_CONFLICT),
		// and A learns of B's rotation the same way.
		k4 := rotate(b)
		seenBy(b, a, k4)
		require.Equal(t, k4, kidOf(t, a.at(ip).mustLogin(t, u.Email, goodPassword, nil).AccessToken))
		// Tokens signed before the rotations still verify on both (retired
		// keys stay published), e.g. the service account's.
		require.True(t, byCode(b.effectiveREST(t, w.svcToken, T, w.facility))["scale.lab"].Granted)
		require.True(t, byCode(a.effectiveREST(t, w.svcToken, T, w.facility))["scale.lab"].Granted)
	})

	t.Run("every event relayed and consumed once across both", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		since := time.Now().Add(-time.Second)
		burstTenant := a.createTenantREST(t, w.super, "Scale-out Burst", "burst-"+randomTag(t), false)
		B := burstTenant.ID

		// Two inbox consumers, one on each instance, sharing one durable
		// name (they split the messages) and one inbox.
		consumerName := "scaleout-" + core.NewID()
		t.Cleanup(func() {
			_ = js.DeleteConsumer(context.Background(), messaging.StreamName, messaging.DurableName(consumerName, user.EventRegistered))
		})
		rec := newInboxRecorder(B, 5)
		consumeCtx, stopConsumers := context.WithCancel(context.Background())
		var consumers []*messaging.Consumer
		for i, s := range []*testService{a, b} {
			db := s.main.db
			handler := func(ctx context.Context, env messaging.Envelope) error {
				// The handler's effect: a row written in the inbox
				// transaction (committed exactly when the event counts as
				// processed). Seeing it already there would be a second run.
				fresh, err := db.InsertInbox(ctx, consumerName+"-effect", env.ID, time.Now())
				if err != nil {
					return err
				}
				if !fresh {
					rec.doubleEffect(env.ID)
				}
				return rec.handled(i, env)
			}
			c, err := messaging.Consume(consumeCtx, s.main.bus, db, consumerName, user.EventRegistered, handler,
				messaging.WithRetryDelay(50*time.Millisecond), messaging.WithObserver(rec.observe))
			require.NoError(t, err)
			consumers = append(consumers, c)
		}
		t.Cleanup(func() {
			stopConsumers()
			for _, c := range consumers {
				<-c.Done()
			}
		})

		// A burst of 50 registrations, half through each instance.
		const users = 50
		var wg sync.WaitGroup
		errs := make(chan error, users)
		for i := range users {
			s := []*testService{a, b}[i%2]
			wg.Go(func() {
				status, err := s.statusOf(http.MethodPost, "/api/v1/users", w.super, map[string]any{"tenantId": B,
					"email": fmt.Sprintf("burst-%02d@burst.example.org", i), "firstName": "Burst", "lastName": "User"})
				if err == nil && status != http.StatusCreated {
					err = fmt.Errorf("user %d: status %d", i, status)
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}

		// Every event of the burst tenant reaches JetStream at least once,
		// and the relays mark every row of the outbox.
		var ids []string
		rows, err := a.main.db.Bun().QueryContext(ctx, `SELECT id, type FROM events WHERE tenant_id = ?`, B)
		require.NoError(t, err)
		registered := map[string]bool{}
		for rows.Next() {
			var id, typ string
			require.NoError(t, rows.Scan(&id, &typ))
			ids = append(ids, id)
			if typ == user.EventRegistered {
				registered[id] = true
			}
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		require.Len(t, registered, users)
		start := time.Now()
		require.Eventually(t, func() bool {
			return a.count(t, `SELECT count(*) FROM events WHERE published_at IS NULL`) == 0
		}, 10*time.Second, 20*time.Millisecond, "the relays publish the whole outbox")
		t.Logf("outbox drained %s after the burst", time.Since(start))
		missing := make(map[string]bool, len(ids))
		for _, id := range ids {
			missing[id] = true
		}
		oc, err := js.OrderedConsumer(ctx, messaging.StreamName, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{messaging.StreamSubject},
			DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
			OptStartTime:   &since,
		})
		require.NoError(t, err)
		// Other tests share the stream: read until this tenant's are all in.
		for len(missing) > 0 {
			msg, err := oc.Next(jetstream.FetchMaxWait(10 * time.Second))
			require.NoError(t, err, "%d events of the burst tenant not on JetStream", len(missing))
			if env, err := messaging.ParseEnvelope(msg.Data()); err == nil && env.TenantID == B {
				delete(missing, env.ID)
			}
		}

		// Each registration is processed once by the pair of consumers;
		// the first five fail once (rolled back, Nacked, redelivered).
		require.Eventually(t, func() bool { return rec.processedCount() == users }, 10*time.Second, 20*time.Millisecond,
			"the consumers process every registration")
		// Redeliver every one as a fresh message (no Nats-Msg-Id, so the
		// broker keeps the duplicate): both consumers only see duplicates.
		for _, env := range rec.envelopes() {
			payload, err := json.Marshal(env)
			require.NoError(t, err)
			_, err = js.Publish(ctx, env.Type, payload)
			require.NoError(t, err)
		}
		require.Eventually(t, func() bool { return rec.duplicateCount() >= users }, 10*time.Second, 20*time.Millisecond,
			"the duplicates reach the consumers")
		rec.check(t, registered)
		require.Equal(t, users, a.count(t, `SELECT count(*) FROM inbox WHERE consumer = ? AND event_id IN (
			SELECT id::text FROM events WHERE tenant_id = ? AND type = ?)`, consumerName+"-effect", B, user.EventRegistered),
			"one committed effect per event")
		t.Logf("processed per instance: %v", rec.perInstance())
	})
}

// kidOf returns the kid header of a compact JWS.
func kidOf(t *testing.T, raw string) string {
	t.Helper()
	head, _, ok := strings.Cut(raw, ".")
	require.True(t, ok)
	b, err := base64.RawURLEncoding.DecodeString(head)
	require.NoError(t, err)
	var h struct{ Kid string }
	require.NoError(t, json.Unmarshal(b, &h))
	return h.Kid
}

// inboxRecorder follows what two inbox consumers did with one tenant's
// events (other tests publish on the same stream; theirs are ignored).
type inboxRecorder struct {
	tenantID string
	failN    int // how many of the tenant's events fail on their first run

	mu        sync.Mutex
	runs      map[string]int // handler runs per event id
	failed    map[string]bool
	outcomes  map[string][]messaging.Outcome
	envs      map[string]messaging.Envelope
	instance  map[string]int // which instance processed it
	doubles   []string
	handledBy [2]int
}

func newInboxRecorder(tenantID string, failN int) *inboxRecorder {
	return &inboxRecorder{tenantID: tenantID, failN: failN, runs: map[string]int{}, failed: map[string]bool{},
		outcomes: map[string][]messaging.Outcome{}, envs: map[string]messaging.Envelope{}, instance: map[string]int{}}
}

var errTransient = errors.New("transient handler failure (test)")

// handled records a handler run on instance i and fails the first run of
// the first failN events.
func (r *inboxRecorder) handled(i int, env messaging.Envelope) error {
	if env.TenantID != r.tenantID {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs[env.ID]++
	r.envs[env.ID] = env
	if r.runs[env.ID] == 1 && len(r.failed) < r.failN {
		r.failed[env.ID] = true
		return errTransient
	}
	r.instance[env.ID] = i
	r.handledBy[i]++
	return nil
}

func (r *inboxRecorder) doubleEffect(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.doubles = append(r.doubles, id)
}

func (r *inboxRecorder) observe(env messaging.Envelope, out messaging.Outcome) {
	if env.TenantID != r.tenantID {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes[env.ID] = append(r.outcomes[env.ID], out)
}

func (r *inboxRecorder) count(o messaging.Outcome) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, outs := range r.outcomes {
		for _, got := range outs {
			if got == o {
				n++
			}
		}
	}
	return n
}

func (r *inboxRecorder) processedCount() int { return r.count(messaging.Processed) }
func (r *inboxRecorder) duplicateCount() int { return r.count(messaging.Duplicate) }

func (r *inboxRecorder) envelopes() []messaging.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Collect(maps.Values(r.envs))
}

func (r *inboxRecorder) perInstance() [2]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handledBy
}

// check requires, for every id of want: processed exactly once, any
// further delivery a duplicate, a failed first run for failN of them (run
// again after redelivery), and no second committed effect.
func (r *inboxRecorder) check(t *testing.T, want map[string]bool) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Empty(t, r.doubles, "a handler found its own effect already committed")
	require.Len(t, r.outcomes, len(want))
	require.Len(t, r.failed, r.failN)
	for id := range want {
		outs := r.outcomes[id]
		processed, duplicates, failed := 0, 0, 0
		for _, o := range outs {
			switch o {
			case messaging.Processed:
				processed++
			case messaging.Duplicate:
				duplicates++
			case messaging.Failed:
				failed++
			}
		}
		require.Equal(t, 1, processed, "event %s: %v", id, outs)
		require.GreaterOrEqual(t, duplicates, 1, "event %s: %v", id, outs)
		wantRuns := 1
		if r.failed[id] {
			require.Equal(t, 1, failed, "event %s: %v", id, outs)
			wantRuns = 2
		} else {
			require.Zero(t, failed, "event %s: %v", id, outs)
		}
		require.Equal(t, wantRuns, r.runs[id], "handler runs of event %s", id)
	}
}
