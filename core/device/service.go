package device

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

// Service runs the device lifecycle. Every authorization decision is made
// here, so REST, GraphQL and Connect agree. It implements auth.DeviceRevoker.
type Service struct {
	store   Store
	authz   *core.Authorizer
	ca      CA
	clock   core.Clock
	metrics *telemetry.Metrics
	logger  *slog.Logger
	cfg     Config
}

// NewService returns the device service. clock nil means core.SystemClock,
// metrics nil counts nothing. A CertLifetime above MaxCertLifetime is capped
// to it; zero or negative means MaxCertLifetime. A missing store, authorizer
// or CA is a wiring bug and panics.
func NewService(store Store, authz *core.Authorizer, ca CA, clock core.Clock, metrics *telemetry.Metrics, cfg Config) *Service {
	if store == nil || authz == nil || ca == nil {
		panic("device.NewService: store, authorizer and CA are required")
	}
	if clock == nil {
		clock = core.SystemClock{}
	}
	if cfg.CertLifetime <= 0 || cfg.CertLifetime > MaxCertLifetime {
		cfg.CertLifetime = MaxCertLifetime
	}
	return &Service{store: store, authz: authz, ca: ca, clock: clock, metrics: metrics,
		logger: slog.New(slog.DiscardHandler), cfg: cfg}
}

// WithLogger sets the logger and returns s.
func (s *Service) WithLogger(l *slog.Logger) *Service {
	if l != nil {
		s.logger = l
	}
	return s
}

func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

func errNotTrusted(st Status) error {
	return core.E(core.KindUnprocessable, core.CodeDeviceNotTrusted, "the device is "+string(st)+"; only a trusted device can be bound for offline use")
}

func errState(op string, st Status) error {
	return core.E(core.KindConflict, core.CodeStateConflict, "cannot "+op+" a device that is "+string(st))
}

// userPrincipal returns the caller if it is a user.
func userPrincipal(ctx context.Context) (*core.Principal, error) {
	p, err := core.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Type != core.PrincipalUser {
		return nil, core.Forbidden("only a user can manage its devices")
	}
	return p, nil
}

// Register records a device of the caller in the caller's tenant (status
// untrusted) and emits identity.device.registered.v1 in the same
// transaction. Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN for a
// non-user principal; IDENT_VALIDATION (fields fingerprint, publicKey — not a
// PEM SPKI ECDSA P-256 or RSA ≥ 2048 key —, name, platform; text fields must
// be valid UTF-8 without control characters); IDENT_CONFLICT
// when the caller already registered this fingerprint; IDENT_UNAVAILABLE.
func (s *Service) Register(ctx context.Context, in RegisterInput) (Device, error) {
	p, err := userPrincipal(ctx)
	if err != nil {
		return Device{}, err
	}
	fields := map[string]string{}
	fp := strings.TrimSpace(in.Fingerprint)
	if fp == "" || len(fp) > MaxFingerprintLen {
		fields["fingerprint"] = "required, at most " + strconv.Itoa(MaxFingerprintLen) + " bytes"
	}
	name, platform := strings.TrimSpace(in.Name), strings.TrimSpace(in.Platform)
	if len(name) > MaxNameLen {
		fields["name"] = "at most " + strconv.Itoa(MaxNameLen) + " bytes"
	}
	if len(platform) > MaxPlatformLen {
		fields["platform"] = "at most " + strconv.Itoa(MaxPlatformLen) + " bytes"
	}
	for field, v := range map[string]string{"fingerprint": fp, "name": name, "platform": platform} {
		if _, bad := fields[field]; !bad {
			if why := core.TextProblem(v, false); why != "" {
				fields[field] = why
			}
		}
	}
	der, reason := ParsePublicKey(in.PublicKeyPEM)
	if reason != "" {
		fields["publicKey"] = reason
	}
	if len(fields) > 0 {
		return Device{}, core.Invalid("invalid device", fields)
	}
	now := s.now()
	d := Device{ID: core.NewID(), UserID: p.ID, TenantID: p.TenantID, Fingerprint: fp, Name: name, Platform: platform,
		PublicKey: der, Status: StatusUntrusted, CreatedAt: now, UpdatedAt: now}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.InsertDevice(ctx, d); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, deviceEvent(now, EventRegistered, d))
	})
	if core.IsKind(err, core.KindConflict) {
		return Device{}, core.Wrap(err, core.KindConflict, core.CodeConflict, "a device with this fingerprint is already registered")
	}
	if err != nil {
		return Device{}, err
	}
	s.logger.InfoContext(ctx, "device registered", "device_id", d.ID, "user_id", d.UserID, "tenant_id", d.TenantID)
	return d, nil
}

// ParsePublicKey decodes a PEM SubjectPublicKeyInfo and returns its DER, or a
// reason why it is refused: only ECDSA P-256 and RSA of at least MinRSABits
// bits are accepted.
func ParsePublicKey(pemText string) (der []byte, reason string) {
	block, _ := pem.Decode([]byte(strings.TrimSpace(pemText)))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, "must be a PEM PUBLIC KEY block (SubjectPublicKeyInfo)"
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, "not a valid SubjectPublicKeyInfo"
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "ECDSA keys must use P-256"
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return nil, "RSA keys must have at least " + strconv.Itoa(MinRSABits) + " bits"
		}
	default:
		return nil, "must be an ECDSA P-256 or RSA key"
	}
	der, err = x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, "not a valid SubjectPublicKeyInfo"
	}
	return der, ""
}

// List returns the caller's devices, oldest first.
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN for a non-user principal.
func (s *Service) List(ctx context.Context) ([]Device, error) {
	p, err := userPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.ListDevices(ctx, ListQuery{UserID: p.ID})
}

// ListForAdmin lists devices for GraphQL devices(userId, status). userID ""
// means every user; status "" every status. A caller always sees its own
// devices; a SUPER_ADMIN sees everything; a TENANT_ADMIN sees the devices of
// the tenants it administers (devices in other tenants are left out).
// Errors: IDENT_UNAUTHENTICATED; IDENT_VALIDATION (status); IDENT_FORBIDDEN
// for a caller who is no admin asking about someone else.
func (s *Service) ListForAdmin(ctx context.Context, userID string, status Status) ([]Device, error) {
	if status != "" && !status.Valid() {
		return nil, core.InvalidField("status", "unknown device status")
	}
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return nil, err
	}
	p := acc.Principal
	switch {
	case acc.SuperAdmin:
		return s.store.ListDevices(ctx, ListQuery{UserID: userID, Status: status})
	case len(acc.AdminOf) > 0:
		var out []Device
		for _, t := range acc.AdminOf {
			ds, err := s.store.ListDevices(ctx, ListQuery{UserID: userID, TenantID: t, Status: status})
			if err != nil {
				return nil, err
			}
			out = append(out, ds...)
		}
		return out, nil
	case p.Type == core.PrincipalUser && userID == p.ID:
		return s.store.ListDevices(ctx, ListQuery{UserID: userID, Status: status})
	default:
		return nil, core.Forbidden("requires TENANT_ADMIN")
	}
}

// Get returns device id to its owner or an admin of its tenant.
// Errors: IDENT_UNAUTHENTICATED; IDENT_NOT_FOUND; IDENT_CROSS_TENANT;
// IDENT_FORBIDDEN.
func (s *Service) Get(ctx context.Context, id string) (Device, error) {
	_, d, err := s.ownerOrAdmin(ctx, id)
	return d, err
}

// Trust moves an untrusted device to trusted and emits
// identity.device.trusted.v1 in the same transaction.
// Authorization: TENANT_ADMIN of the device's tenant or SUPER_ADMIN.
// Errors: IDENT_UNAUTHENTICATED; IDENT_NOT_FOUND; IDENT_CROSS_TENANT (an
// admin of another tenant; nothing changes); IDENT_FORBIDDEN;
// IDENT_STATE_CONFLICT unless the device is untrusted; IDENT_UNAVAILABLE.
func (s *Service) Trust(ctx context.Context, id string) (Device, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return Device{}, err
	}
	d, err := s.store.DeviceByID(ctx, id)
	if err != nil {
		return Device{}, err
	}
	if err := acc.CanAdminister(d.TenantID); err != nil {
		return Device{}, err
	}
	now := s.now()
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		ok, err := s.store.TrustDevice(ctx, d.ID, now, acc.Principal.ID)
		if err != nil {
			return err
		}
		if !ok {
			cur, err := s.store.DeviceByID(ctx, d.ID)
			if err != nil {
				return err
			}
			return errState("trust", cur.Status)
		}
		if d, err = s.store.DeviceByID(ctx, d.ID); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, deviceEvent(now, EventTrusted, d))
	})
	if err != nil {
		return Device{}, err
	}
	s.logger.InfoContext(ctx, "device trusted", "device_id", d.ID, "tenant_id", d.TenantID, "actor_id", acc.Principal.ID)
	return d, nil
}

// Revoke revokes device id and its certificates (which then appear in the
// CRL) and emits identity.device.revoked.v1 in the same transaction.
// Revoking a revoked device succeeds without change or event (DELETE stays
// repeatable). Authorization: the owner, or an admin of the device's tenant.
// Errors: IDENT_UNAUTHENTICATED; IDENT_NOT_FOUND; IDENT_CROSS_TENANT;
// IDENT_FORBIDDEN; IDENT_UNAVAILABLE.
func (s *Service) Revoke(ctx context.Context, id string) (Device, error) {
	p, d, err := s.ownerOrAdmin(ctx, id)
	if err != nil {
		return Device{}, err
	}
	now := s.now()
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		d, err = s.revoke(ctx, d.ID, now)
		return err
	})
	if err != nil {
		return Device{}, err
	}
	s.logger.InfoContext(ctx, "device revoked", "device_id", d.ID, "tenant_id", d.TenantID, "actor_id", p.ID)
	return d, nil
}

// revoke revokes one device inside the caller's transaction.
func (s *Service) revoke(ctx context.Context, id string, now time.Time) (Device, error) {
	ok, err := s.store.RevokeDevice(ctx, id, now)
	if err != nil {
		return Device{}, err
	}
	if ok {
		if err := s.store.RevokeDeviceCertificates(ctx, id, now); err != nil {
			return Device{}, err
		}
	}
	d, err := s.store.DeviceByID(ctx, id)
	if err != nil || !ok {
		return d, err
	}
	return d, s.store.AddEvents(ctx, deviceEvent(now, EventRevoked, d))
}

// RevokeAllDevicesOfUser revokes every device of userID that is not revoked
// yet, with their certificates, emitting identity.device.revoked.v1 for
// each. It implements auth.DeviceRevoker and joins the transaction on ctx
// (LogoutAll's), opening one when there is none. It does no authorization:
// the caller (LogoutAll) has done it.
func (s *Service) RevokeAllDevicesOfUser(ctx context.Context, userID string) error {
	if !core.ValidID(userID) {
		return nil
	}
	now := s.now()
	return s.store.InTx(ctx, func(ctx context.Context) error {
		ds, err := s.store.ListDevices(ctx, ListQuery{UserID: userID})
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.Status == StatusRevoked {
				continue
			}
			if _, err := s.revoke(ctx, d.ID, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// ownerOrAdmin loads device id for its owner or an admin of its tenant.
func (s *Service) ownerOrAdmin(ctx context.Context, id string) (*core.Principal, Device, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return nil, Device{}, err
	}
	d, err := s.store.DeviceByID(ctx, id)
	if err != nil {
		return nil, Device{}, err
	}
	p := acc.Principal
	if p.Type == core.PrincipalUser && p.ID == d.UserID {
		return p, d, nil
	}
	if err := acc.CanAdminister(d.TenantID); err != nil {
		return nil, Device{}, err
	}
	return p, d, nil
}
