package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ghasi-ehealth/identity-service/cache"
	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/access"
	"github.com/ghasi-ehealth/identity-service/core/apikey"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/bootstrap"
	"github.com/ghasi-ehealth/identity-service/core/device"
	"github.com/ghasi-ehealth/identity-service/core/exchange"
	"github.com/ghasi-ehealth/identity-service/core/federation"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/mfa"
	"github.com/ghasi-ehealth/identity-service/core/mfa/passkey"
	"github.com/ghasi-ehealth/identity-service/core/password"
	"github.com/ghasi-ehealth/identity-service/core/retention"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/httpx"
	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/telemetry"
	"github.com/ghasi-ehealth/identity-service/tenantsvc"
)

// Version is stamped at build time (-ldflags "-X main.Version=…").
var Version = "dev"

// accessTokenTTL is the access JWT lifetime (CONTRACT.md §3).
const accessTokenTTL = 15 * time.Minute

// shutdownGrace bounds how long in-flight requests may drain on SIGTERM.
const shutdownGrace = 10 * time.Second

// Main is the composition root: the only place that reads configuration and
// wires concrete adapters to core. Open builds everything, Run serves until
// its context ends, Close releases what Open acquired.
type Main struct {
	cfg    Config
	logger *slog.Logger
	clock  core.Clock

	telemetry *telemetry.Providers
	db        *persistence.DB
	bus       *messaging.Bus
	relay     *messaging.Relay
	hasher    *password.Hasher
	keys      *keys.Service
	issuer    *token.Issuer
	verifier  *token.Verifier
	authz     *core.Authorizer
	directory *persistence.DirectoryStore
	// remoteDir is the local directory merged with tenant-service; nil
	// unless IDENTITY_TENANT_SERVICE_URL is set.
	remoteDir  *mergedDirectory
	master     *keys.MasterKey
	tenancy    *tenancy.Service
	users      *user.Service
	auth       *auth.Service
	mfa        *mfa.Service
	accounts   *serviceaccount.Service
	apiKeys    *apikey.Service
	licensing  *licensing.Service
	resolver   *licensing.AuthorizedResolver
	access     *access.Service
	devices    *device.Service
	exchange   *exchange.Service
	federation *federation.Service
	// memberships is the directory every login, token and authorization
	// decision reads (local, or merged with tenant-service).
	memberships core.MembershipReader
	passkeys    *passkey.Service
	valkey      *cache.Valkey
	retention   *retention.Service

	listener net.Listener
	server   *http.Server
}

// NewMain returns an unopened Main for cfg.
func NewMain(cfg Config, logger *slog.Logger) *Main {
	return &Main{cfg: cfg, logger: logger, clock: core.SystemClock{}}
}

// openStore connects to the database and applies migrations unless disabled.
func (m *Main) openStore(ctx context.Context) error {
	db, err := persistence.Open(ctx, m.cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	m.db = db
	if m.telemetry != nil {
		db.Trace(m.telemetry.TracerProvider)
	}
	if db.Dialect() == persistence.SQLite {
		m.logger.Info("using SQLite: single-node only; use PostgreSQL to run several instances")
	}
	if m.cfg.Migrate {
		applied, err := db.Migrate(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if len(applied) > 0 {
			m.logger.Info("applied migrations", "versions", applied)
		}
	}
	m.directory = persistence.NewDirectoryStore(db)
	var memberships core.MembershipReader = m.directory
	if m.cfg.TenantServiceURL != "" {
		opts := tenantsvc.Options{Logger: m.logger}
		if m.telemetry != nil {
			opts.TracerProvider = m.telemetry.TracerProvider
		}
		client, err := tenantsvc.New(m.cfg.TenantServiceURL, opts)
		if err != nil {
			return &ConfigError{Var: "IDENTITY_TENANT_SERVICE_URL", Reason: err.Error()}
		}
		dir := newMergedDirectory(persistence.NewTenancyStore(db), client)
		m.remoteDir = &dir
		memberships = dir
	}
	m.memberships = memberships
	m.authz = core.NewAuthorizer(memberships)
	return nil
}

// openKeys loads the master key and the signing keyring.
func (m *Main) openKeys(ctx context.Context) error {
	raw, err := loadMasterKey(m.cfg, m.logger)
	if err != nil {
		return err
	}
	m.master, err = keys.NewMasterKey(raw)
	if err != nil {
		return err
	}
	m.keys, err = keys.NewService(persistence.NewKeyStore(m.db), m.master, m.clock, m.authz, m.logger,
		keys.Config{RotationCron: m.cfg.KeyRotationCron})
	if err != nil {
		return err
	}
	if err := m.keys.Init(ctx); err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	return nil
}

// Open builds the whole service and binds the listener; it does not serve.
func (m *Main) Open(ctx context.Context) error {
	tp, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "identity-service", ServiceVersion: Version,
		OTLPEndpoint: m.cfg.OTLPEndpoint, SpanExporter: m.cfg.SpanExporter})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	m.telemetry = tp
	tp.InstallGlobals() // for libraries that read only the global providers
	if err := m.openStore(ctx); err != nil {
		return err
	}
	m.hasher = password.NewHasher(m.cfg.Argon2Params, m.cfg.Argon2MaxConcurrency, password.DefaultAcquireTimeout)
	if !m.cfg.GoMemLimitSet {
		// Each argon2id hash allocates m KiB (64 MiB by default) that becomes
		// garbage at once; a soft limit makes the collector reclaim it before
		// the heap doubles, so a login storm stays within the hashing budget.
		debug.SetMemoryLimit(password.MemoryBudget(m.cfg.Argon2Params, m.cfg.Argon2MaxConcurrency))
	}
	if err := m.openKeys(ctx); err != nil {
		return err
	}
	m.issuer = token.NewIssuer(m.keys, m.cfg.PublicURL, m.cfg.JWTAudience, m.clock, accessTokenTTL)
	sessions := persistence.NewSessionStore(m.db)
	limiter, revocations, err := m.openGuards(ctx, sessions)
	if err != nil {
		return err
	}
	m.verifier = token.NewVerifier(m.keys, m.cfg.PublicURL, m.cfg.JWTAudience, m.clock, auth.TokenRevocation{Set: revocations})

	policy, err := password.NewPolicy(m.cfg.BreachedPasswordsFile)
	if err != nil {
		return &ConfigError{Var: "IDENTITY_BREACHED_PASSWORDS_FILE", Reason: err.Error()}
	}
	tenancyStore := persistence.NewTenancyStore(m.db)
	m.tenancy = tenancy.NewService(tenancyStore, m.authz, m.clock)
	// dir is what login, licensing and the access context read: the local
	// directory, or it merged with tenant-service (directory.go).
	var dir access.Directory = access.NewLocalDirectory(tenancyStore)
	var authDir auth.Directory = tenancyStore
	if m.remoteDir != nil {
		dir, authDir = *m.remoteDir, *m.remoteDir
	}
	metrics, err := telemetry.NewMetrics(tp.MeterProvider)
	if err != nil {
		return fmt.Errorf("telemetry metrics: %w", err)
	}
	m.passkeys, err = passkey.NewService(persistence.NewPasskeyStore(m.db), m.clock, passkey.Config{
		RPID: m.cfg.WebAuthnRPID, RPOrigins: m.cfg.WebAuthnOrigins})
	if err != nil {
		return &ConfigError{Var: "IDENTITY_WEBAUTHN_RP_ID", Reason: err.Error()}
	}
	m.passkeys.WithMetrics(metrics)
	m.mfa = mfa.NewService(mfa.Deps{Store: persistence.NewMFAStore(m.db), Users: persistence.NewUserStore(m.db),
		Tenants: tenancyStore, Authorizer: m.authz, Master: m.master, Enrollment: m.issuer, WebAuthn: m.passkeys,
		Clock: m.clock, Logger: m.logger})
	if err := m.openExchange(); err != nil {
		return err
	}
	m.devices = device.NewService(persistence.NewDeviceStore(m.db), m.authz, m.keys, m.clock, metrics, device.Config{}).WithLogger(m.logger)
	m.auth = auth.NewService(auth.Deps{Devices: m.devices,
		Store: sessions, Users: sessions, Directory: authDir, Hasher: m.hasher, Issuer: m.issuer,
		Limiter: limiter, Revocations: revocations, Clock: m.clock, SecondFactor: m.mfa,
		TracerProvider: tp.TracerProvider, Metrics: metrics, Logger: m.logger,
	}, auth.Config{RefreshKey: m.master.DeriveSecret(auth.RefreshKeyLabel)})
	if m.valkey == nil {
		// The in-process set starts empty: reload the sessions revoked within
		// the last access-token lifetime so a restart does not un-revoke them.
		if err := m.auth.WarmRevocations(ctx); err != nil {
			return fmt.Errorf("load revoked sessions: %w", err)
		}
	}
	apiKeySecret := m.cfg.APIKeyHMACSecret
	if apiKeySecret == nil {
		apiKeySecret = m.master.DeriveSecret(apikey.HMACKeyLabel)
	}
	m.apiKeys = apikey.NewService(persistence.NewAPIKeyStore(m.db), m.authz, m.clock, apiKeySecret, m.logger)
	m.accounts = serviceaccount.NewService(persistence.NewServiceAccountStore(m.db), m.authz, m.issuer, m.clock,
		m.master.DeriveSecret(serviceaccount.SecretKeyLabel), limiter, m.logger)
	m.openLicensing(dir, tp, metrics)
	m.openFederation()
	m.users = user.NewService(persistence.NewUserStore(m.db), m.authz, m.hasher, policy, auth.SessionRevoker{Service: m.auth}, m.clock, user.Config{
		PublicURL: m.cfg.PublicURL,
		TokenKey:  m.master.DeriveSecret(user.TokenKeyLabel),
	})

	if m.bus, err = messaging.NewBus(ctx, m.cfg.NATSURL, m.logger); err != nil {
		return fmt.Errorf("event bus: %w", err)
	}
	m.relay = messaging.NewRelay(m.db, m.bus.Publisher, tp.TracerProvider, m.logger)
	// Gauges read at scrape time: the outbox backlog (two indexed queries) and
	// the active signing key's age (in memory). See docs/OPERATIONS.md.
	metrics.ObserveOutbox(func(ctx context.Context) (telemetry.OutboxBacklog, error) {
		b, err := m.relay.Backlog(ctx)
		return telemetry.OutboxBacklog{Pending: b.Pending, OldestAge: b.Lag}, err
	})
	metrics.ObserveActiveKey(m.keys.ActiveKeyAge)
	m.openRetention(metrics)

	if m.cfg.BootstrapEmail != "" {
		boot := bootstrap.NewService(m.directory, m.hasher, m.clock, m.logger)
		if _, err := boot.EnsureSuperAdmin(ctx, m.cfg.BootstrapEmail, m.cfg.BootstrapPassword); err != nil {
			return fmt.Errorf("bootstrap admin: %w", err)
		}
	}

	m.server = &http.Server{
		Handler:           m.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
	}
	// HTTP/2 without TLS lets gRPC clients reach the Connect handlers on the
	// same plain listener; TLS is terminated in front of the service.
	m.server.Protocols = new(http.Protocols)
	m.server.Protocols.SetHTTP1(true)
	m.server.Protocols.SetUnencryptedHTTP2(true)
	if m.listener, err = net.Listen("tcp", m.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen on %s: %w", m.cfg.HTTPAddr, err)
	}
	return nil
}

// openGuards returns the login limiter and the session revocation set:
// Valkey-backed (shared by every instance) with local and database fallbacks
// when IDENTITY_VALKEY_URL is set, else in-process (one node).
func (m *Main) openGuards(ctx context.Context, sessions *persistence.SessionStore) (core.RateLimiter, core.RevocationSet, error) {
	if m.cfg.ValkeyURL == "" {
		return cache.NewLocalLimiter(m.clock), cache.NewLocalRevocations(m.clock), nil
	}
	v, err := cache.Open(ctx, m.cfg.ValkeyURL, m.logger)
	if err != nil {
		return nil, nil, fmt.Errorf("valkey: %w", err)
	}
	m.valkey = v
	if err := v.Ping(ctx); err != nil {
		// Not fatal: limits fall back to local counts and revocation checks
		// to the database until Valkey answers; /readyz reports it.
		m.logger.Warn("valkey unreachable at start; using fallbacks until it answers", "error", err)
	}
	limiter := cache.NewFailoverLimiter(v.Limiter(), cache.NewLocalLimiter(m.clock), m.logger)
	revocations := cache.NewFailoverRevocations(v.Revocations(), sessions.SessionRevoked, m.logger)
	return limiter, revocations, nil
}

// openLicensing builds the module catalogue and assignments service and the
// effective-license resolver. Its cache lives in Valkey when configured
// (shared by every instance; invalidation is a generation bump every
// instance sees at once) and in process otherwise.
func (m *Main) openLicensing(dir access.Directory, tp *telemetry.Providers, metrics *telemetry.Metrics) {
	store := persistence.NewLicensingStore(m.db)
	var effective licensing.EffectiveCache = licensing.NewLocalEffectiveCache(m.clock)
	if m.valkey != nil {
		effective = cache.NewValkeyEffectiveCache(m.valkey)
	}
	resolver := licensing.NewResolver(persistence.NewLicensingResolverStore(m.db), dir, effective, m.clock, tp.TracerProvider)
	m.licensing = licensing.NewService(store, m.authz, dir, m.clock)
	var contexts access.ContextCache
	if m.valkey != nil {
		contexts = m.valkey.AccessContexts()
	}
	m.access = access.NewService(dir, resolver, contexts, m.clock, tp.TracerProvider, metrics)
	m.tenancy.OnMembershipChange = func(userID, _ string) {
		if err := m.access.InvalidateUser(context.Background(), userID); err != nil {
			m.logger.Error("access-context cache invalidation failed", "user_id", userID, "error", err)
		}
	}
	m.licensing.OnChange = func(tenantID string) {
		ctx := context.Background()
		var err error
		if tenantID == "" {
			err = errors.Join(resolver.InvalidateAll(ctx), m.access.InvalidateAll(ctx))
		} else {
			err = errors.Join(resolver.InvalidateTenant(ctx, tenantID), m.access.InvalidateTenant(ctx, tenantID))
		}
		if err != nil {
			// Entries still expire within 5 minutes; say so loudly.
			m.logger.Error("effective-license cache invalidation failed", "tenant_id", tenantID, "error", err)
		}
	}
	m.resolver = licensing.NewAuthorizedResolver(resolver, store).WithAdmins(m.authz)
}

// openExchange builds the RFC 8693 Keycloak token exchange; without
// IDENTITY_KEYCLOAK_ISSUER it is disabled (requests get unsupported_grant_type).
func (m *Main) openExchange() error {
	var upstream exchange.UpstreamVerifier // a literal nil disables the exchange
	if m.cfg.KeycloakIssuer != "" {
		v, err := exchange.NewOIDCVerifier(exchange.UpstreamConfig{Issuer: m.cfg.KeycloakIssuer, Audience: m.cfg.KeycloakAudience, Clock: m.clock})
		if err != nil {
			return &ConfigError{Var: "IDENTITY_KEYCLOAK_ISSUER", Reason: err.Error()}
		}
		upstream = v
	}
	store := persistence.NewExchangeStore(m.db)
	m.exchange = exchange.NewService(store, store, m.issuer, m.memberships, upstream,
		exchange.Config{TenantRef: m.cfg.KeycloakTenantID, Audience: m.cfg.JWTAudience, Clock: m.clock})
	return nil
}

// openFederation builds OIDC federated login. Its single-use flow records
// live in Valkey when configured (any instance may receive the callback),
// else in process.
func (m *Main) openFederation() {
	var flows federation.FlowStore = cache.NewLocalOneTime(m.clock)
	if m.valkey != nil {
		flows = m.valkey.OneTime("federation")
	}
	m.federation = federation.NewService(federation.Deps{
		Store: persistence.NewFederationStore(m.db), Flows: flows, Sealer: m.master, Sessions: m.auth, Authz: m.authz,
	}, federation.Config{
		PublicURL:           m.cfg.PublicURL,
		HTTPClient:          httpx.NewEgressClient(httpx.EgressConfig{AllowPrivate: m.cfg.FederationAllowPrivate}),
		AllowInsecureIssuer: m.cfg.FederationAllowPrivate,
		OpenTimeout:         m.cfg.FederationOpenTimeout,
		Clock:               m.clock,
	})
}

// Addr is the bound listener address (useful with port 0).
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Run serves until ctx ends, then drains in-flight requests for up to 10 s
// and stops the background workers (key refresh and rotation, outbox relay,
// retention sweeps).
func (m *Main) Run(ctx context.Context) error {
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { m.keys.Run(bgCtx) })
	wg.Go(func() { m.retention.Run(bgCtx) })
	wg.Go(func() {
		if err := m.relay.Run(bgCtx); err != nil {
			m.logger.Error("outbox relay stopped", "error", err)
		}
	})
	if m.remoteDir != nil {
		for _, eventType := range tenantEventTypes {
			wg.Go(func() { m.consumeTenantEvents(bgCtx, eventType) })
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- m.server.Serve(m.listener) }()
	m.logger.Info("identityd serving", "addr", m.Addr(), "public_url", m.cfg.PublicURL, "version", Version)

	var err error
	select {
	case err = <-serveErr:
	case <-ctx.Done():
		m.logger.Info("shutting down: draining in-flight requests", "grace", shutdownGrace)
		shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		err = m.server.Shutdown(shutdownCtx)
		cancel()
	}
	stopBackground()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Close releases everything Open acquired; it is safe after a failed Open.
func (m *Main) Close() error {
	var errs []error
	if m.listener != nil {
		_ = m.listener.Close()
	}
	if m.bus != nil {
		errs = append(errs, m.bus.Close())
	}
	if m.valkey != nil {
		m.valkey.Close()
	}
	if m.db != nil {
		errs = append(errs, m.db.Close())
	}
	if m.telemetry != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, m.telemetry.Shutdown(ctx))
		cancel()
	}
	return errors.Join(errs...)
}
