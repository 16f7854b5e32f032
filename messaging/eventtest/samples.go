package eventtest

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/messaging"
)

// Fixed ids make samples readable in failure output.
const (
	SampleTenantID = "01900000-0000-7000-8000-000000000001"
	sampleUserID   = "01900000-0000-7000-8000-000000000002"
	sampleActorID  = "01900000-0000-7000-8000-000000000003"
	sampleSession  = "01900000-0000-7000-8000-000000000004"
	sampleDevice   = "01900000-0000-7000-8000-000000000005"
	sampleAPIKey   = "01900000-0000-7000-8000-000000000006"
	sampleSA       = "01900000-0000-7000-8000-000000000007"
	sampleAssign   = "01900000-0000-7000-8000-000000000008"
	sampleNode     = "01900000-0000-7000-8000-000000000009"
	sampleParent   = "01900000-0000-7000-8000-00000000000a"
	sampleEventID  = "01900000-0000-7000-8000-0000000000e1"
	sampleTime     = "2025-03-01T10:00:00Z"
)

type obj = map[string]any

func user(extra obj) obj {
	return with(obj{"userId": sampleUserID, "tenantId": SampleTenantID}, extra)
}

func with(base, extra obj) obj {
	maps.Copy(base, extra)
	return base
}

// sampleData returns a valid data object per event type, each with every
// member the contract requires (and only those, except where noted).
func sampleData() map[string]struct {
	subject string
	tenant  bool
	data    obj
} {
	type s = struct {
		subject string
		tenant  bool
		data    obj
	}
	dev := func(extra obj) obj {
		return with(obj{"deviceId": sampleDevice, "userId": sampleUserID, "tenantId": SampleTenantID}, extra)
	}
	key := obj{"apiKeyId": sampleAPIKey, "tenantId": SampleTenantID, "scopes": []any{"tenant:users:read", "tenant:api_keys:verify"}}
	module := obj{"code": "ehr.labs", "name": "Laboratory", "dependsOn": []any{"ehr.core"}, "isAlwaysOn": false}
	assignment := func(extra obj) obj {
		return with(obj{"assignmentId": sampleAssign, "tenantId": SampleTenantID, "nodeId": "node-kabul-1", "moduleCode": "ehr.labs", "toStatus": "active"}, extra)
	}
	tenant := obj{"tenantId": SampleTenantID, "name": "Kabul Clinic", "slug": "kabul-clinic", "selfRegistration": false, "mfaRequired": true}
	return map[string]s{
		"identity.user.registered.v1": {sampleUserID, true, user(obj{"email": "ana@example.org", "status": "pending_verification",
			"verificationUrl": "https://identity.example.org/verify?token=abc", "verificationExpiresAt": sampleTime})},
		"identity.user.email_verified.v1":               {sampleUserID, true, user(nil)},
		"identity.user.suspended.v1":                    {sampleUserID, true, user(obj{"actorId": sampleActorID})},
		"identity.user.reactivated.v1":                  {sampleUserID, true, user(obj{"actorId": sampleActorID})},
		"identity.user.deactivated.v1":                  {sampleUserID, true, user(obj{"actorId": sampleActorID, "erasedFields": []any{"firstName", "lastName", "email"}, "deactivatedAt": sampleTime})},
		"identity.user.logged_in.v1":                    {sampleUserID, true, user(obj{"sessionId": sampleSession, "amr": []any{"pwd", "otp"}, "ip": "203.0.113.7"})},
		"identity.session.created.v1":                   {sampleSession, true, user(obj{"sessionId": sampleSession, "reason": "login"})},
		"identity.session.revoked.v1":                   {sampleSession, true, user(obj{"sessionId": sampleSession, "reason": "logout_all"})},
		"identity.user.security_incident.v1":            {sampleUserID, true, user(obj{"kind": "refresh_replay", "sessionId": sampleSession, "ip": "2001:db8::1"})},
		"identity.user.mfa_enrolled.v1":                 {sampleUserID, true, user(obj{"method": "totp"})},
		"identity.user.mfa_challenge_failed.v1":         {sampleUserID, true, user(obj{"method": "webauthn"})},
		"identity.user.mfa_reset.v1":                    {sampleUserID, true, user(obj{"actorId": sampleActorID})},
		"identity.device.registered.v1":                 {sampleDevice, true, dev(nil)},
		"identity.device.trusted.v1":                    {sampleDevice, true, dev(nil)},
		"identity.device.bound_for_offline.v1":          {sampleDevice, true, dev(obj{"certificateSerial": "4f2a9c", "expiresAt": sampleTime})},
		"identity.device.revoked.v1":                    {sampleDevice, true, dev(nil)},
		"identity.api_key.issued.v1":                    {sampleAPIKey, true, maps.Clone(key)},
		"identity.api_key.rotated.v1":                   {sampleAPIKey, true, maps.Clone(key)},
		"identity.api_key.revoked.v1":                   {sampleAPIKey, true, maps.Clone(key)},
		"identity.service_account.created.v1":           {sampleSA, true, obj{"serviceAccountId": sampleSA, "clientId": "sa-lab-sync", "tenantId": SampleTenantID}},
		"identity.external_identity.linked.v1":          {sampleUserID, true, user(obj{"issuer": "https://login.example.org", "subject": "ext-42", "provider": "moph"})},
		"identity.license.module.created.v1":            {"ehr.labs", false, maps.Clone(module)},
		"identity.license.module.updated.v1":            {"ehr.labs", false, maps.Clone(module)},
		"identity.license.assignment.created.v1":        {sampleAssign, true, assignment(nil)},
		"identity.license.assignment.status_changed.v1": {sampleAssign, true, assignment(obj{"fromStatus": "trial", "toStatus": "active"})},
		"identity.jwks.rotated.v1":                      {"kid-2025-03", false, obj{"newKid": "kid-2025-03", "previousKid": "kid-2024-12", "previousKeyRetiresAt": sampleTime}},
		"identity.tenant.created.v1":                    {SampleTenantID, true, maps.Clone(tenant)},
		"identity.tenant.updated.v1":                    {SampleTenantID, true, maps.Clone(tenant)},
		"identity.node.created.v1":                      {sampleNode, true, obj{"nodeId": sampleNode, "tenantId": SampleTenantID, "parentId": sampleParent, "name": "Kabul", "kind": "province"}},
		"identity.membership.changed.v1":                {sampleUserID, true, user(obj{"nodeId": sampleNode, "roles": []any{"TENANT_ADMIN", "nurse"}, "change": "added", "actorId": sampleActorID})},
		"tenant.membership.changed.v1":                  {sampleUserID, true, obj{"userId": sampleUserID}},
		"tenant.role.changed.v1":                        {sampleUserID, true, obj{"userId": sampleUserID}},
	}
}

// SampleTypes lists every event type that has a sample (every schema's type).
func SampleTypes() []string {
	return slices.Sorted(maps.Keys(sampleData()))
}

// Sample returns a valid envelope of eventType holding every required data
// member, for tests of consumers and of the schemas themselves. ok is false
// for an unknown type. Tenant-service types get source "tenant-service".
func Sample(eventType string) (env messaging.Envelope, ok bool) {
	s, ok := sampleData()[eventType]
	if !ok {
		return messaging.Envelope{}, false
	}
	data, err := json.Marshal(s.data)
	if err != nil {
		panic(err) // static sample data always marshals
	}
	env = messaging.Envelope{
		SpecVersion:     messaging.SpecVersion,
		ID:              sampleEventID,
		Type:            eventType,
		Source:          "identity-service",
		Time:            time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC),
		Subject:         s.subject,
		DataContentType: messaging.DataContentType,
		Data:            data,
	}
	if s.tenant {
		env.TenantID = SampleTenantID
	}
	if strings.HasPrefix(eventType, "tenant.") {
		env.Source = "tenant-service"
	}
	return env, true
}
