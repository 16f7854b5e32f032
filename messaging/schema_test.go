package messaging_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
)

// contractTypes is every event type of CONTRACT.md §8, the local tenant
// directory's types, and the two consumed tenant-service types; each must
// have exactly one schema.
var contractTypes = []string{
	"identity.api_key.issued.v1",
	"identity.api_key.revoked.v1",
	"identity.api_key.rotated.v1",
	"identity.device.bound_for_offline.v1",
	"identity.device.registered.v1",
	"identity.device.revoked.v1",
	"identity.device.trusted.v1",
	"identity.external_identity.linked.v1",
	"identity.jwks.rotated.v1",
	"identity.license.assignment.created.v1",
	"identity.license.assignment.status_changed.v1",
	"identity.license.module.created.v1",
	"identity.license.module.updated.v1",
	"identity.membership.changed.v1",
	"identity.node.created.v1",
	"identity.service_account.created.v1",
	"identity.session.created.v1",
	"identity.session.revoked.v1",
	"identity.tenant.created.v1",
	"identity.tenant.updated.v1",
	"identity.user.deactivated.v1",
	"identity.user.email_verified.v1",
	"identity.user.logged_in.v1",
	"identity.user.mfa_challenge_failed.v1",
	"identity.user.mfa_enrolled.v1",
	"identity.user.mfa_reset.v1",
	"identity.user.reactivated.v1",
	"identity.user.registered.v1",
	"identity.user.security_incident.v1",
	"identity.user.suspended.v1",
	"tenant.membership.changed.v1",
	"tenant.role.changed.v1",
}

func TestEverySchemaCompilesAndCoversTheContract(t *testing.T) {
	set := eventtest.Schemas(t)
	require.Equal(t, contractTypes, set.Types())
	require.Equal(t, contractTypes, eventtest.SampleTypes())
}

// mutate returns the sample envelope of eventType as a generic JSON object
// after applying change to it.
func mutate(t *testing.T, eventType string, change func(env, data map[string]any)) []byte {
	t.Helper()
	env, ok := eventtest.Sample(eventType)
	require.True(t, ok)
	b, err := json.Marshal(env)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	change(m, m["data"].(map[string]any))
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

func TestSamplesValidateAndMissingMembersFail(t *testing.T) {
	set := eventtest.Schemas(t)
	for _, typ := range contractTypes {
		t.Run(typ, func(t *testing.T) {
			valid := mutate(t, typ, func(env, data map[string]any) {})
			require.NoError(t, set.ValidateEvent(valid), "%s", valid)

			// Every member present in the minimal sample is required, except
			// the optional ones a few samples carry.
			optional := map[string]bool{"description": true}
			env, _ := eventtest.Sample(typ)
			var data map[string]any
			require.NoError(t, json.Unmarshal(env.Data, &data))
			for member := range data {
				if optional[member] {
					continue
				}
				bad := mutate(t, typ, func(_, data map[string]any) { delete(data, member) })
				require.Error(t, set.ValidateEvent(bad), "data without %s must fail", member)
			}

			for _, secret := range []string{"password", "refreshToken", "secret", "clientSecret", "seed", "privateKey"} {
				bad := mutate(t, typ, func(_, data map[string]any) { data[secret] = "x" })
				require.Error(t, set.ValidateEvent(bad), "data.%s must fail", secret)
			}
			nested := mutate(t, typ, func(_, data map[string]any) {
				data["extra"] = map[string]any{"list": []any{map[string]any{"password": "x"}}}
			})
			require.Error(t, set.ValidateEvent(nested), "a nested password must fail")
		})
	}
}

func TestEnvelopeRules(t *testing.T) {
	set := eventtest.Schemas(t)
	const typ = "identity.user.suspended.v1"
	cases := []struct {
		name   string
		change func(env, data map[string]any)
	}{
		{"missing specversion", func(env, _ map[string]any) { delete(env, "specversion") }},
		{"wrong specversion", func(env, _ map[string]any) { env["specversion"] = "0.3" }},
		{"wrong source", func(env, _ map[string]any) { env["source"] = "someone-else" }},
		{"missing time", func(env, _ map[string]any) { delete(env, "time") }},
		{"time not RFC 3339", func(env, _ map[string]any) { env["time"] = "yesterday" }},
		{"id not a uuid", func(env, _ map[string]any) { env["id"] = "42" }},
		{"empty subject", func(env, _ map[string]any) { env["subject"] = "" }},
		{"missing tenantid", func(env, _ map[string]any) { delete(env, "tenantid") }},
		{"tenantid differs from data", func(env, _ map[string]any) { env["tenantid"] = "01900000-0000-7000-8000-0000000000ff" }},
		{"wrong datacontenttype", func(env, _ map[string]any) { env["datacontenttype"] = "text/plain" }},
		{"malformed traceparent", func(env, _ map[string]any) { env["traceparent"] = "nope" }},
		{"unknown envelope member", func(env, _ map[string]any) { env["extra"] = 1 }},
		{"data not an object", func(env, _ map[string]any) { env["data"] = "x" }},
		{"data id not a uuid", func(_, data map[string]any) { data["userId"] = "bob" }},
		{"data id wrong JSON type", func(_, data map[string]any) { data["actorId"] = 7 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Error(t, set.ValidateEvent(mutate(t, typ, tc.change)))
		})
	}
	t.Run("traceparent accepted", func(t *testing.T) {
		ok := mutate(t, typ, func(env, _ map[string]any) {
			env["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		})
		require.NoError(t, set.ValidateEvent(ok))
	})
	t.Run("unknown type", func(t *testing.T) {
		err := set.ValidateEvent(mutate(t, typ, func(env, _ map[string]any) { env["type"] = "identity.user.nope.v1" }))
		require.ErrorIs(t, err, messaging.ErrUnknownEventType)
	})
	t.Run("not JSON", func(t *testing.T) {
		require.Error(t, set.ValidateEvent([]byte("{")))
	})
}

func TestTypeSpecificRules(t *testing.T) {
	set := eventtest.Schemas(t)
	cases := []struct {
		typ    string
		change func(env, data map[string]any)
		valid  bool
	}{
		{"identity.session.revoked.v1", func(_, d map[string]any) { d["reason"] = "expired" }, false},
		{"identity.session.revoked.v1", func(_, d map[string]any) { d["reason"] = "erased" }, true},
		{"identity.user.logged_in.v1", func(_, d map[string]any) { d["amr"] = []any{"magic"} }, false},
		{"identity.user.logged_in.v1", func(_, d map[string]any) { d["ip"] = "" }, true},
		{"identity.user.logged_in.v1", func(_, d map[string]any) { d["ip"] = "not-an-ip" }, false},
		{"identity.user.registered.v1", func(_, d map[string]any) { d["email"] = "" }, true}, // GDPR-redacted
		{"identity.user.registered.v1", func(_, d map[string]any) { d["email"] = "nope" }, false},
		{"identity.user.registered.v1", func(_, d map[string]any) { d["verificationExpiresAt"] = "soon" }, false},
		{"identity.user.deactivated.v1", func(_, d map[string]any) { d["erasedFields"] = []any{"phone"} }, false},
		{"identity.user.mfa_enrolled.v1", func(_, d map[string]any) { d["method"] = "sms" }, false},
		{"identity.api_key.issued.v1", func(_, d map[string]any) { d["scopes"] = []any{"admin"} }, false},
		{"identity.api_key.issued.v1", func(_, d map[string]any) { d["scopes"] = "tenant:users:read" }, false},
		{"identity.license.module.created.v1", func(_, d map[string]any) { d["isAlwaysOn"] = "yes" }, false},
		{"identity.license.module.created.v1", func(env, _ map[string]any) { env["tenantid"] = "" }, true},
		{"identity.license.assignment.created.v1", func(_, d map[string]any) { d["fromStatus"] = nil }, true},
		{"identity.license.assignment.status_changed.v1", func(_, d map[string]any) { d["toStatus"] = "paused" }, false},
		{"identity.jwks.rotated.v1", func(_, d map[string]any) { d["previousKid"], d["previousKeyRetiresAt"] = nil, nil }, true},
		{"identity.membership.changed.v1", func(_, d map[string]any) { d["nodeId"] = nil }, true},
		{"identity.membership.changed.v1", func(_, d map[string]any) { d["roles"] = []any{} }, true},
		{"identity.membership.changed.v1", func(_, d map[string]any) { d["change"] = "granted" }, false},
		{"identity.membership.changed.v1", func(_, d map[string]any) { d["roles"] = []any{""} }, false},
		{"identity.node.created.v1", func(_, d map[string]any) { d["parentId"] = nil }, true},
		{"identity.node.created.v1", func(_, d map[string]any) { d["kind"] = "" }, false},
		{"identity.tenant.created.v1", func(_, d map[string]any) { d["slug"] = "Not A Slug" }, false},
		{"identity.tenant.updated.v1", func(_, d map[string]any) { d["mfaRequired"] = "yes" }, false},
		{"tenant.role.changed.v1", func(env, _ map[string]any) { env["source"] = "identity-service" }, false},
		{"tenant.role.changed.v1", func(env, _ map[string]any) { env["partitionkey"] = "x" }, true}, // foreign extensions allowed
	}
	for _, tc := range cases {
		b := mutate(t, tc.typ, tc.change)
		if tc.valid {
			require.NoError(t, set.ValidateEvent(b), "%s", b)
		} else {
			require.Error(t, set.ValidateEvent(b), "%s", b)
		}
	}
}

func TestSchemaJSON(t *testing.T) {
	b, err := messaging.SchemaJSON("identity.jwks.rotated.v1")
	require.NoError(t, err)
	require.True(t, json.Valid(b))
	_, err = messaging.SchemaJSON("nope")
	require.Error(t, err)
}

func BenchmarkValidateEvent(b *testing.B) {
	set, err := messaging.NewSchemaSet()
	require.NoError(b, err)
	env, _ := eventtest.Sample("identity.user.logged_in.v1")
	payload, err := json.Marshal(env)
	require.NoError(b, err)
	for b.Loop() {
		if err := set.ValidateEvent(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewSchemaSet(b *testing.B) {
	for b.Loop() {
		if _, err := messaging.NewSchemaSet(); err != nil {
			b.Fatal(err)
		}
	}
}
