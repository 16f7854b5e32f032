package main

// Helpers for the end-to-end tests of module licensing: the catalogue, the
// assignment lifecycle and the effective-license resolver (IDENT-US-013/014/015).

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/licensing"
	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
	"github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1/identityv1connect"
)

// moduleDoc is the REST module shape (CONTRACT.md §4).
type moduleDoc struct {
	Code         string     `json:"code"`
	Name         string     `json:"name"`
	Description  string     `json:"description"`
	DependsOn    []string   `json:"dependsOn"`
	IsAlwaysOn   bool       `json:"isAlwaysOn"`
	TerminatedAt *time.Time `json:"terminatedAt"`
}

// assignmentDoc is the REST assignment shape.
type assignmentDoc struct {
	ID            string     `json:"id"`
	TenantID      string     `json:"tenantId"`
	NodeID        string     `json:"nodeId"`
	ModuleCode    string     `json:"moduleCode"`
	Scope         string     `json:"scope"`
	Status        string     `json:"status"`
	EffectiveFrom time.Time  `json:"effectiveFrom"`
	EffectiveTo   *time.Time `json:"effectiveTo"`
}

// historyDoc is one row of GET /licensing/assignments/{id}/history.
type historyDoc struct {
	FromStatus string    `json:"fromStatus"`
	ToStatus   string    `json:"toStatus"`
	Reason     string    `json:"reason"`
	ActorID    string    `json:"actorId"`
	At         time.Time `json:"at"`
}

// effectiveDoc is one module of an effective set, in the REST spelling
// (lower-case status and scope, "" for an absent source or assignment).
type effectiveDoc struct {
	Code         string `json:"code"`
	Status       string `json:"status"`
	Granted      bool   `json:"granted"`
	Scope        string `json:"scope"`
	SourceNodeID string `json:"sourceNodeId"`
	AssignmentID string `json:"assignmentId"`
}

type effectiveSetDoc struct {
	NodeID  string         `json:"nodeId"`
	Modules []effectiveDoc `json:"modules"`
}

// byCode indexes an effective set by module code.
func byCode(mods []effectiveDoc) map[string]effectiveDoc {
	out := make(map[string]effectiveDoc, len(mods))
	for _, m := range mods {
		out[m.Code] = m
	}
	return out
}

func (s *testService) createModule(t *testing.T, super string, body map[string]any) moduleDoc {
	t.Helper()
	var m moduleDoc
	s.call(t, http.MethodPost, "/api/v1/licensing/modules", super, body).decode(t, http.StatusCreated, &m)
	return m
}

func (s *testService) assign(t *testing.T, super string, body map[string]any) assignmentDoc {
	t.Helper()
	var a assignmentDoc
	s.call(t, http.MethodPost, "/api/v1/licensing/assignments", super, body).decode(t, http.StatusCreated, &a)
	return a
}

func (s *testService) setAssignmentStatus(t *testing.T, super, id, status, reason string) apiResponse {
	t.Helper()
	return s.call(t, http.MethodPatch, "/api/v1/licensing/assignments/"+id+"/status", super,
		map[string]any{"status": status, "reason": reason})
}

func (s *testService) assignmentHistory(t *testing.T, super, id string) []historyDoc {
	t.Helper()
	var out struct{ Items []historyDoc }
	s.call(t, http.MethodGet, "/api/v1/licensing/assignments/"+id+"/history", super, nil).decode(t, http.StatusOK, &out)
	return out.Items
}

func effectivePath(tenantID, nodeID string) string {
	return "/internal/identity/licensing/effective?" + url.Values{"tenantId": {tenantID}, "nodeId": {nodeID}}.Encode()
}

// effectiveREST requires 200 from the internal endpoint with bearer.
func (s *testService) effectiveREST(t *testing.T, bearer, tenantID, nodeID string) []effectiveDoc {
	t.Helper()
	var out effectiveSetDoc
	s.call(t, http.MethodGet, effectivePath(tenantID, nodeID), bearer, nil).decode(t, http.StatusOK, &out)
	require.Equal(t, nodeID, out.NodeID)
	return out.Modules
}

// effectiveGQL is Query.effectiveLicenses as bearer, in the REST spelling.
func (s *testService) effectiveGQL(t *testing.T, bearer, tenantID, nodeID string) []effectiveDoc {
	t.Helper()
	var out struct {
		EffectiveLicenses []struct {
			Code, Status, Scope        string
			Granted                    bool
			SourceNodeID, AssignmentID *string
		} `json:"effectiveLicenses"`
	}
	s.graphql(t, bearer, `query($t: ID!, $n: ID!) { effectiveLicenses(tenantId: $t, nodeId: $n) {
		code status granted scope sourceNodeId assignmentId } }`, map[string]any{"t": tenantID, "n": nodeID}).decode(t, &out)
	mods := make([]effectiveDoc, 0, len(out.EffectiveLicenses))
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	for _, m := range out.EffectiveLicenses {
		mods = append(mods, effectiveDoc{Code: m.Code, Status: lower(m.Status), Granted: m.Granted, Scope: lower(m.Scope),
			SourceNodeID: deref(m.SourceNodeID), AssignmentID: deref(m.AssignmentID)})
	}
	return mods
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// licensingClients are connect-go clients of LicensingService over h2c, per protocol.
func (s *testService) licensingClients() map[string]identityv1connect.LicensingServiceClient {
	return map[string]identityv1connect.LicensingServiceClient{
		"connect":      identityv1connect.NewLicensingServiceClient(h2cClient(), s.baseURL),
		"connect+json": identityv1connect.NewLicensingServiceClient(h2cClient(), s.baseURL, connect.WithProtoJSON()),
		"grpc":         identityv1connect.NewLicensingServiceClient(h2cClient(), s.baseURL, connect.WithGRPC()),
	}
}

func bearerRequest[T any](msg *T, bearer string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	if bearer != "" {
		req.Header().Set("Authorization", "Bearer "+bearer)
	}
	return req
}

// effectiveRPC is GetEffectiveLicenses through c, in the REST spelling.
func effectiveRPC(t *testing.T, c identityv1connect.LicensingServiceClient, bearer, tenantID, nodeID string) []effectiveDoc {
	t.Helper()
	res, err := c.GetEffectiveLicenses(t.Context(), bearerRequest(&identityv1.GetEffectiveLicensesRequest{TenantId: tenantID, NodeId: nodeID}, bearer))
	require.NoError(t, err)
	out := []effectiveDoc{}
	for _, m := range res.Msg.GetModules() {
		out = append(out, effectiveDoc{Code: m.GetCode(), Status: m.GetStatus(), Granted: m.GetGranted(), Scope: m.GetScope(),
			SourceNodeID: m.GetSourceNodeId(), AssignmentID: m.GetAssignmentId()})
	}
	return out
}

// licensingEventData validates every stored event of eventType and decodes
// the data of the single one about subject.
func (s *testService) licensingEventData(t *testing.T, eventType, subject string, dst any) {
	t.Helper()
	env := s.eventFor(t, eventType, subject)
	require.NoError(t, json.Unmarshal(env.Data, dst))
}

// assignmentEvents returns the data of every eventType about assignment id
// (all stored events of the type validated).
func (s *testService) assignmentEvents(t *testing.T, eventType, id string) []licensing.AssignmentData {
	t.Helper()
	var out []licensing.AssignmentData
	for _, env := range s.eventsFor(t, eventType, id) {
		var d licensing.AssignmentData
		require.NoError(t, json.Unmarshal(env.Data, &d))
		require.Equal(t, d.TenantID, env.TenantID)
		out = append(out, d)
	}
	return out
}

// licensingWorld is one customer tenant with a province → district →
// facility chain, a TENANT_ADMIN, and a platform service account carrying
// tenant:licensing:read.
type licensingWorld struct {
	*world
	province, district, facility string
	svcToken                     string // platform service account, tenant:licensing:read
}

func newLicensingWorld(t *testing.T, s *testService) *licensingWorld {
	t.Helper()
	w := &licensingWorld{world: newWorld(t, s)}
	mk := func(parent, name, kind string) string {
		in := map[string]any{"tenantId": w.tenantA.ID, "name": name, "kind": kind}
		if parent != "" {
			in["parentId"] = parent
		}
		var out struct{ CreateNode struct{ ID, ParentID string } }
		s.graphql(t, w.super, createNodeQ, map[string]any{"in": in}).decode(t, &out)
		require.NotEmpty(t, out.CreateNode.ID)
		return out.CreateNode.ID
	}
	w.province = mk("", "Kabul", "province")
	w.district = mk(w.province, "Kabul District 1", "district")
	w.facility = mk(w.district, "Kabul Clinic 7", "facility")
	sa := s.createServiceAccount(t, w.super, w.platformID, "tenant:licensing:read")
	w.svcToken = s.clientToken(t, sa.ClientID, sa.ClientSecret)
	return w
}
