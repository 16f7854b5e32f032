package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

type accessContextDoc struct {
	UserID      string  `json:"userId"`
	TenantID    string  `json:"tenantId"`
	NodeID      *string `json:"nodeId"`
	Roles       []string
	Memberships []struct {
		TenantID string   `json:"tenantId"`
		NodeID   *string  `json:"nodeId"`
		Roles    []string `json:"roles"`
	}
	EffectiveModules []struct {
		Code, Status, Scope string
		SourceNodeID        *string `json:"sourceNodeId"`
	} `json:"effectiveModules"`
}

// TestAccessContextEndToEnd: GET /api/v1/me/access-context and GraphQL
// accessContext return the caller's roles at a node (its own membership and
// those of ancestors), its memberships and the granted modules; a node
// outside the memberships is refused; a membership change shows at once.
func TestAccessContextEndToEnd(t *testing.T) {
	s := startService(t, baseEnv(t))
	w := newLicensingWorld(t, s)

	// A nurse with a membership at the district only.
	nurse := s.createUserREST(t, w.super, map[string]any{"tenantId": w.tenantA.ID, "email": "nurse@clinic-a.example.org", "firstName": "N", "lastName": "Urse"})
	var added struct{ AddMembership struct{ UserID string } }
	s.graphql(t, w.super, `mutation($in: MembershipInput!) { addMembership(input: $in) { userId } }`,
		map[string]any{"in": map[string]any{"userId": nurse.ID, "tenantId": w.tenantA.ID, "nodeId": w.district, "roles": []string{"NURSE"}}}).decode(t, &added)
	s.verifyEmail(t, nurse.ID, goodPassword)
	tok := s.tokenFor(t, "nurse@clinic-a.example.org")

	var got accessContextDoc
	s.call(t, http.MethodGet, "/api/v1/me/access-context?nodeId="+w.facility, tok, nil).decode(t, http.StatusOK, &got)
	require.Equal(t, nurse.ID, got.UserID)
	require.Equal(t, w.tenantA.ID, got.TenantID)
	require.Equal(t, w.facility, *got.NodeID)
	require.Equal(t, []string{"NURSE"}, got.Roles, "the district membership covers the facility below it")
	require.Len(t, got.Memberships, 1)
	codes := map[string]string{}
	for _, m := range got.EffectiveModules {
		codes[m.Code] = m.Status
	}
	require.Contains(t, codes, "ehr.core", "always-on modules are granted")

	// The province is above the nurse's membership: refused.
	res := s.call(t, http.MethodGet, "/api/v1/me/access-context?nodeId="+w.province, tok, nil)
	require.Equal(t, http.StatusForbidden, res.Status)
	require.Equal(t, http.StatusUnauthorized, s.call(t, http.MethodGet, "/api/v1/me/access-context?nodeId="+w.facility, "", nil).Status)

	// GraphQL answers the same.
	var gql struct {
		AccessContext struct {
			Roles            []string
			EffectiveModules []struct{ Code string }
		}
	}
	s.graphql(t, tok, `query($n: ID) { accessContext(nodeId: $n) { roles effectiveModules { code } } }`, map[string]any{"n": w.facility}).decode(t, &gql)
	require.Equal(t, []string{"NURSE"}, gql.AccessContext.Roles)

	// A role change is visible on the next call (the cache is invalidated).
	s.graphql(t, w.super, `mutation($in: MembershipInput!) { addMembership(input: $in) { userId } }`,
		map[string]any{"in": map[string]any{"userId": nurse.ID, "tenantId": w.tenantA.ID, "nodeId": w.district, "roles": []string{"NURSE", "PHARMACIST"}}}).decode(t, &added)
	s.call(t, http.MethodGet, "/api/v1/me/access-context?nodeId="+w.facility, tok, nil).decode(t, http.StatusOK, &got)
	require.Equal(t, []string{"NURSE", "PHARMACIST"}, got.Roles)
}
