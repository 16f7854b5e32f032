package main

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(envOf(nil))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	require.Equal(t, "http://127.0.0.1:8080", c.PublicURL)
	require.Equal(t, "ghasi-platform", c.JWTAudience)
	require.Equal(t, "sqlite://./data/identity.db", c.DatabaseURL)
	require.Equal(t, "0 0 1 */3 *", c.KeyRotationCron)
	require.Equal(t, []string{"http://localhost:8080"}, c.WebAuthnOrigins)
	require.Equal(t, "localhost", c.WebAuthnRPID)
	require.True(t, c.Migrate)
	require.Nil(t, c.MasterKey)
	require.EqualValues(t, 65536, c.Argon2Params.Memory)
	require.GreaterOrEqual(t, c.Argon2MaxConcurrency, 1)
	require.Equal(t, time.Hour, c.RetentionInterval)
}

func TestLoadConfigValues(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	c, err := LoadConfig(envOf(map[string]string{
		"IDENTITY_HTTP_ADDR":              "0.0.0.0:9000",
		"IDENTITY_PUBLIC_URL":             "https://identity.example.org/",
		"IDENTITY_DATABASE_URL":           "postgres://postgres@127.0.0.1:5432/test",
		"IDENTITY_VALKEY_URL":             "redis://127.0.0.1:6379/0",
		"IDENTITY_NATS_URL":               "nats://127.0.0.1:4222",
		"IDENTITY_MASTER_KEY":             key,
		"IDENTITY_TRUSTED_PROXIES":        "10.0.0.0/8,127.0.0.1",
		"IDENTITY_ARGON2_PARAMS":          "m=64,t=1,p=1",
		"IDENTITY_ARGON2_MAX_CONCURRENCY": "3",
		"IDENTITY_MIGRATE":                "false",
		"IDENTITY_WEBAUTHN_ORIGINS":       "https://a.example.org, https://b.example.org",
		"IDENTITY_RETENTION_INTERVAL":     "15m",
	}))
	require.NoError(t, err)
	require.Equal(t, "https://identity.example.org", c.PublicURL)
	require.Len(t, c.MasterKey, 32)
	require.Len(t, c.TrustedProxies, 2)
	require.Equal(t, 3, c.Argon2MaxConcurrency)
	require.EqualValues(t, 64, c.Argon2Params.Memory)
	require.False(t, c.Migrate)
	require.Equal(t, []string{"https://a.example.org", "https://b.example.org"}, c.WebAuthnOrigins)
	require.Equal(t, 15*time.Minute, c.RetentionInterval)
}

func TestLoadConfigRetentionInterval(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", time.Hour},
		{"0", 0}, // disabled
		{"0s", 0},
		{"1s", time.Second},
		{" 90m ", 90 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"24h", 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			c, err := LoadConfig(envOf(map[string]string{"IDENTITY_RETENTION_INTERVAL": tc.value}))
			require.NoError(t, err)
			require.Equal(t, tc.want, c.RetentionInterval)
		})
	}
}

func TestLoadConfigRejects(t *testing.T) {
	tests := []struct{ name, value string }{
		{"IDENTITY_HTTP_ADDR", "8080"},
		{"IDENTITY_PUBLIC_URL", "identity.example.org"},
		{"IDENTITY_DATABASE_URL", "mysql://x"},
		{"IDENTITY_DATABASE_URL", "postgres://%zz"},
		{"IDENTITY_VALKEY_URL", "http://x"},
		{"IDENTITY_NATS_URL", "127.0.0.1:4222"},
		{"IDENTITY_MASTER_KEY", "c2hvcnQ="},
		{"IDENTITY_MASTER_KEY", "not base64!"},
		{"IDENTITY_TRUSTED_PROXIES", "10.0.0.0/99"},
		{"IDENTITY_KEY_ROTATION_CRON", "every quarter"},
		{"IDENTITY_ARGON2_MAX_CONCURRENCY", "0"},
		{"IDENTITY_ARGON2_PARAMS", "m=1"},
		{"IDENTITY_MIGRATE", "maybe"},
		{"IDENTITY_TENANT_SERVICE_URL", "tenant-service"},
		{"IDENTITY_KEYCLOAK_ISSUER", "keycloak"},
		{"IDENTITY_WEBAUTHN_ORIGINS", "localhost:8080"},
		{"IDENTITY_LOG_LEVEL", "loud"},
		{"IDENTITY_BREACHED_PASSWORDS_FILE", "/nonexistent/list.txt"},
		{"IDENTITY_APIKEY_HMAC_SECRET", "too-short"},
		{"IDENTITY_RETENTION_INTERVAL", "hourly"},
		{"IDENTITY_RETENTION_INTERVAL", "1"}, // no unit
		{"IDENTITY_RETENTION_INTERVAL", "-1h"},
		{"IDENTITY_RETENTION_INTERVAL", "500ms"},
		{"IDENTITY_BOOTSTRAP_ADMIN_PASSWORD", ""}, // email without password
	}
	for _, tc := range tests {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			env := map[string]string{tc.name: tc.value}
			if tc.name == "IDENTITY_BOOTSTRAP_ADMIN_PASSWORD" {
				env["IDENTITY_BOOTSTRAP_ADMIN_EMAIL"] = "admin@example.org"
			}
			_, err := LoadConfig(envOf(env))
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "got %v", err)
			require.Equal(t, tc.name, ce.Var)
			require.True(t, strings.HasPrefix(err.Error(), tc.name+": "))
		})
	}
}
