package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/ghasi-ehealth/identity-service/core/password"
	"github.com/ghasi-ehealth/identity-service/core/retention"
	"github.com/ghasi-ehealth/identity-service/httpx"
	"github.com/ghasi-ehealth/identity-service/persistence"
)

// Config is the whole runtime configuration, read from the environment
// (CONTRACT.md §1). Load validates every value so that a bad one stops the
// process at start with a message naming the variable.
type Config struct {
	HTTPAddr              string
	PublicURL             string
	JWTAudience           string
	DatabaseURL           string
	ValkeyURL             string
	NATSURL               string
	MasterKey             []byte // nil: load or generate MasterKeyFile (dev only)
	MasterKeyFile         string
	BootstrapEmail        string
	BootstrapPassword     string
	TenantServiceURL      string
	WebAuthnRPID          string
	WebAuthnOrigins       []string
	TrustedProxies        []netip.Prefix
	KeyRotationCron       string
	Argon2MaxConcurrency  int
	Argon2Params          password.Params
	BreachedPasswordsFile string
	KeycloakIssuer        string
	KeycloakAudience      string
	KeycloakTenantID      string
	// FederationAllowPrivate is IDENTITY_FEDERATION_ALLOW_PRIVATE: let OIDC
	// providers live on loopback or private addresses (local tests only);
	// it also admits http:// issuers.
	FederationAllowPrivate bool
	// FederationOpenTimeout is how long a provider's open circuit waits
	// before a half-open retry; zero is the contract's 30 s (tests shorten it).
	FederationOpenTimeout time.Duration
	Migrate               bool
	LogLevel              string
	OTLPEndpoint          string
	// GoMemLimitSet is true when the operator set GOMEMLIMIT; otherwise the
	// service derives a soft memory limit from the argon2id budget.
	GoMemLimitSet bool
	// APIKeyHMACSecret is IDENTITY_APIKEY_HMAC_SECRET; nil derives it from the master key.
	APIKeyHMACSecret []byte
	// RetentionInterval is IDENTITY_RETENTION_INTERVAL: the time between
	// sweeps deleting ended sessions, tokens, challenges and inbox records
	// (core/retention); zero disables the sweeper.
	RetentionInterval time.Duration
	// SpanExporter, when not nil, receives every span synchronously as it
	// ends (telemetry.Config.SpanExporter). No environment variable sets
	// it: tests set it to an in-memory exporter to assert on traces.
	SpanExporter sdktrace.SpanExporter
}

// ConfigError names the variable whose value is unusable.
type ConfigError struct {
	Var    string
	Reason string
}

func (e *ConfigError) Error() string { return e.Var + ": " + e.Reason }

// LoadConfig reads the configuration through getenv (os.Getenv in main).
func LoadConfig(getenv func(string) string) (Config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	c := Config{
		HTTPAddr:              get("IDENTITY_HTTP_ADDR", "127.0.0.1:8080"),
		JWTAudience:           get("IDENTITY_JWT_AUDIENCE", "ghasi-platform"),
		DatabaseURL:           get("IDENTITY_DATABASE_URL", "sqlite://./data/identity.db"),
		ValkeyURL:             get("IDENTITY_VALKEY_URL", ""),
		NATSURL:               get("IDENTITY_NATS_URL", ""),
		MasterKeyFile:         get("IDENTITY_MASTER_KEY_FILE", "./data/master.key"),
		BootstrapEmail:        get("IDENTITY_BOOTSTRAP_ADMIN_EMAIL", ""),
		BootstrapPassword:     getenv("IDENTITY_BOOTSTRAP_ADMIN_PASSWORD"), // not trimmed: spaces are part of a password
		TenantServiceURL:      get("IDENTITY_TENANT_SERVICE_URL", ""),
		WebAuthnRPID:          get("IDENTITY_WEBAUTHN_RP_ID", "localhost"),
		KeyRotationCron:       get("IDENTITY_KEY_ROTATION_CRON", "0 0 1 */3 *"),
		KeycloakIssuer:        get("IDENTITY_KEYCLOAK_ISSUER", ""),
		BreachedPasswordsFile: get("IDENTITY_BREACHED_PASSWORDS_FILE", ""),
		KeycloakAudience:      get("IDENTITY_KEYCLOAK_AUDIENCE", ""),
		KeycloakTenantID:      get("IDENTITY_KEYCLOAK_TENANT_ID", ""),
		LogLevel:              strings.ToLower(get("IDENTITY_LOG_LEVEL", "info")),
		OTLPEndpoint:          get("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
		GoMemLimitSet:         getenv("GOMEMLIMIT") != "",
	}
	bad := func(name, reason string) (Config, error) { return Config{}, &ConfigError{Var: name, Reason: reason} }

	if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil || port == "" {
		return bad("IDENTITY_HTTP_ADDR", "must be host:port, e.g. 127.0.0.1:8080")
	}
	c.PublicURL = strings.TrimRight(get("IDENTITY_PUBLIC_URL", "http://"+c.HTTPAddr), "/")
	if !validHTTPURL(c.PublicURL) {
		return bad("IDENTITY_PUBLIC_URL", "must be an absolute http(s) URL")
	}
	if _, _, err := persistence.ParseURL(c.DatabaseURL); err != nil {
		return bad("IDENTITY_DATABASE_URL", err.Error())
	}
	if c.ValkeyURL != "" && !validURL(c.ValkeyURL, "redis", "rediss", "valkey", "valkeys") {
		return bad("IDENTITY_VALKEY_URL", "must be redis://host:port/db (or rediss://, valkey://)")
	}
	if c.NATSURL != "" && !validURL(c.NATSURL, "nats", "tls") {
		return bad("IDENTITY_NATS_URL", "must be nats://host:port")
	}
	if c.TenantServiceURL != "" && !validHTTPURL(c.TenantServiceURL) {
		return bad("IDENTITY_TENANT_SERVICE_URL", "must be an absolute http(s) URL")
	}
	if c.KeycloakIssuer != "" && !validHTTPURL(c.KeycloakIssuer) {
		return bad("IDENTITY_KEYCLOAK_ISSUER", "must be an absolute http(s) URL")
	}
	if raw := get("IDENTITY_MASTER_KEY", ""); raw != "" {
		key, err := base64.StdEncoding.DecodeString(raw)
		if err != nil || len(key) != 32 {
			return bad("IDENTITY_MASTER_KEY", "must be the base64 encoding of exactly 32 bytes")
		}
		c.MasterKey = key
	}
	if raw := getenv("IDENTITY_APIKEY_HMAC_SECRET"); raw != "" {
		if len(raw) < 32 {
			return bad("IDENTITY_APIKEY_HMAC_SECRET", "must be at least 32 bytes")
		}
		c.APIKeyHMACSecret = []byte(raw)
	}
	if (c.BootstrapEmail == "") != (c.BootstrapPassword == "") {
		return bad("IDENTITY_BOOTSTRAP_ADMIN_PASSWORD", "IDENTITY_BOOTSTRAP_ADMIN_EMAIL and IDENTITY_BOOTSTRAP_ADMIN_PASSWORD must be set together")
	}
	for _, o := range strings.Split(get("IDENTITY_WEBAUTHN_ORIGINS", "http://localhost:8080"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			if !validHTTPURL(o) {
				return bad("IDENTITY_WEBAUTHN_ORIGINS", fmt.Sprintf("%q is not an http(s) origin", o))
			}
			c.WebAuthnOrigins = append(c.WebAuthnOrigins, o)
		}
	}
	proxies, err := httpx.ParseTrustedProxies(get("IDENTITY_TRUSTED_PROXIES", ""))
	if err != nil {
		return bad("IDENTITY_TRUSTED_PROXIES", "must be a comma-separated list of CIDRs or IPs: "+err.Error())
	}
	c.TrustedProxies = proxies
	if _, err := cron.ParseStandard(c.KeyRotationCron); err != nil {
		return bad("IDENTITY_KEY_ROTATION_CRON", "must be a 5-field cron expression: "+err.Error())
	}
	c.Argon2MaxConcurrency = runtime.NumCPU()
	if raw := get("IDENTITY_ARGON2_MAX_CONCURRENCY", ""); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 1024 {
			return bad("IDENTITY_ARGON2_MAX_CONCURRENCY", "must be an integer from 1 to 1024")
		}
		c.Argon2MaxConcurrency = n
	}
	params, err := password.ParseParams(get("IDENTITY_ARGON2_PARAMS", "m=65536,t=3,p=1"))
	if err != nil {
		return bad("IDENTITY_ARGON2_PARAMS", err.Error())
	}
	c.Argon2Params = params
	if c.BreachedPasswordsFile != "" {
		if _, err := os.Stat(c.BreachedPasswordsFile); err != nil {
			return bad("IDENTITY_BREACHED_PASSWORDS_FILE", "cannot read the file: "+err.Error())
		}
	}
	for _, b := range []struct {
		name, def string
		dst       *bool
	}{{"IDENTITY_MIGRATE", "true", &c.Migrate}, {"IDENTITY_FEDERATION_ALLOW_PRIVATE", "false", &c.FederationAllowPrivate}} {
		switch strings.ToLower(get(b.name, b.def)) {
		case "true", "1", "yes":
			*b.dst = true
		case "false", "0", "no":
		default:
			return bad(b.name, "must be true or false")
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("IDENTITY_LOG_LEVEL", "must be debug, info, warn or error")
	}
	c.RetentionInterval = retention.DefaultInterval
	if raw := get("IDENTITY_RETENTION_INTERVAL", ""); raw != "" {
		// Under a second would sweep back to back: a typo, not a schedule.
		d, err := time.ParseDuration(raw)
		if err != nil || d < 0 || (d > 0 && d < time.Second) {
			return bad("IDENTITY_RETENTION_INTERVAL", "must be a duration of at least 1s such as 1h or 30m, or 0 to disable")
		}
		c.RetentionInterval = d
	}
	return c, nil
}

func validHTTPURL(s string) bool { return validURL(s, "http", "https") }

func validURL(s string, schemes ...string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	for _, sc := range schemes {
		if u.Scheme == sc {
			return true
		}
	}
	return false
}
