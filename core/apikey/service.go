package apikey

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/scope"
)

// Service runs the API key lifecycle and verifies keys. Every authorization
// decision is made here, so REST, GraphQL and Connect agree. Keys returned
// by Service methods never carry hashes; secrets appear only in Created and
// Rotated.
//
// Verification reads key rows through an in-process cache (CacheTTL). Rotate
// and Revoke invalidate this instance's entry at once; other instances see a
// revocation within CacheTTL. A secret that does not match a cached row is
// checked again against the database, so a new secret from a rotation on
// another instance works immediately everywhere.
type Service struct {
	store   Store
	authz   *core.Authorizer
	clock   core.Clock
	hmacKey []byte
	logger  *slog.Logger
	cache   *cache

	platformMu sync.Mutex
	platformID string
}

// NewService returns the API key service. hmacKey is the HMAC-SHA256 key the
// secrets are stored under (IDENTITY_APIKEY_HMAC_SECRET, or
// keys.MasterKey.DeriveSecret(HMACKeyLabel)); clock nil means
// core.SystemClock and logger nil discards. A missing store or authorizer, or
// an hmacKey shorter than MinHMACKeyLen, is a wiring bug and panics.
func NewService(store Store, authz *core.Authorizer, clock core.Clock, hmacKey []byte, logger *slog.Logger) *Service {
	if store == nil || authz == nil {
		panic("apikey.NewService: store and authorizer are required")
	}
	if len(hmacKey) < MinHMACKeyLen {
		panic("apikey.NewService: hmacKey must be at least 32 bytes")
	}
	if clock == nil {
		clock = core.SystemClock{}
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{store: store, authz: authz, clock: clock, hmacKey: append([]byte(nil), hmacKey...),
		logger: logger, cache: newCache()}
}

// now is the clock's time at the databases' precision (microseconds).
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// Create issues a key for in.TenantID (the caller's tenant when empty) and
// emits identity.api_key.issued.v1 in the same transaction.
//
// Authorization: TENANT_ADMIN of the tenant or SUPER_ADMIN.
// Errors: IDENT_UNAUTHENTICATED; IDENT_CROSS_TENANT (an admin of another
// tenant; nothing is written); IDENT_FORBIDDEN; IDENT_VALIDATION with fields
// name (empty, too long, invalid UTF-8 or control characters), scopes
// (unknown or none) or expiresAt (not in the future);
// IDENT_NOT_FOUND for an unknown tenant; IDENT_UNAVAILABLE.
func (s *Service) Create(ctx context.Context, in CreateInput) (Created, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return Created{}, err
	}
	tenantID := in.TenantID
	if tenantID == "" {
		tenantID = acc.Principal.TenantID
	}
	if err := acc.CanAdminister(tenantID); err != nil {
		return Created{}, err
	}
	now := s.now()
	fields := map[string]string{}
	name := strings.TrimSpace(in.Name)
	if name == "" || len(name) > MaxNameLen {
		fields["name"] = "required, at most " + strconv.Itoa(MaxNameLen) + " bytes"
	} else if why := core.TextProblem(name, false); why != "" {
		fields["name"] = why
	}
	scopes, err := scope.Normalize("scopes", in.Scopes)
	if err != nil {
		fields["scopes"] = core.AsError(err).Fields["scopes"]
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		fields["expiresAt"] = "must be in the future"
	}
	if len(fields) > 0 {
		return Created{}, core.Invalid("invalid API key", fields)
	}
	if !core.ValidID(tenantID) {
		return Created{}, core.NotFound("tenant")
	}
	k := Key{ID: core.NewID(), TenantID: tenantID, Name: name, Scopes: scopes, CreatedBy: acc.Principal.ID, CreatedAt: now}
	if in.ExpiresAt != nil {
		at := in.ExpiresAt.UTC().Truncate(time.Microsecond)
		k.ExpiresAt = &at
	}
	var raw string
	for attempt := 0; ; attempt++ {
		var prefix string
		if raw, prefix, err = newKeyString(); err != nil {
			return Created{}, core.Internal(err)
		}
		_, secret, _ := ParseAPIKey(raw)
		k.Prefix, k.SecretHash = prefix, hashSecret(s.hmacKey, secret)
		err = s.store.InTx(ctx, func(ctx context.Context) error {
			if err := s.store.InsertAPIKey(ctx, k); err != nil {
				return err
			}
			return s.store.AddEvents(ctx, keyEvent(now, EventIssued, k))
		})
		if err == nil || !core.IsKind(err, core.KindConflict) || attempt == 2 {
			break
		}
	}
	if core.IsKind(err, core.KindNotFound) {
		return Created{}, core.NotFound("tenant")
	}
	if err != nil {
		return Created{}, err
	}
	s.cache.forget(k.Prefix) // drop a cached "unknown" for this prefix
	s.logger.InfoContext(ctx, "api key issued", "api_key_id", k.ID, "tenant_id", k.TenantID, "actor_id", acc.Principal.ID)
	return Created{Key: public(k), Secret: raw}, nil
}

// Rotate gives key id a new secret and keeps the current one valid until
// now + overlap (nil: DefaultOverlap; 0 ends it at once; at most
// MaxOverlap), replacing any earlier previous secret. It emits
// identity.api_key.rotated.v1 in the same transaction.
//
// Authorization as for Create, on the key's tenant.
// Errors: IDENT_UNAUTHENTICATED; IDENT_VALIDATION (fields.overlapSeconds);
// IDENT_NOT_FOUND; IDENT_CROSS_TENANT; IDENT_FORBIDDEN; IDENT_STATE_CONFLICT
// for a revoked or expired key; IDENT_UNAVAILABLE.
func (s *Service) Rotate(ctx context.Context, id string, overlap *time.Duration) (Rotated, error) {
	d := DefaultOverlap
	if overlap != nil {
		d = *overlap
	}
	if d < 0 || d > MaxOverlap {
		return Rotated{}, core.InvalidField("overlapSeconds", "must be between 0 and "+strconv.Itoa(int(MaxOverlap/time.Second)))
	}
	acc, k, err := s.adminTarget(ctx, id)
	if err != nil {
		return Rotated{}, err
	}
	now := s.now()
	if err := rotatable(k, now); err != nil {
		return Rotated{}, err
	}
	secret := newSecret()
	prevUntil := now.Add(d)
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		ok, err := s.store.RotateAPIKey(ctx, k.ID, hashSecret(s.hmacKey, secret), prevUntil)
		if err != nil {
			return err
		}
		if !ok {
			return errStateConflict("rotate", "revoked")
		}
		if k, err = s.store.APIKeyByID(ctx, k.ID); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, keyEvent(now, EventRotated, k))
	})
	if err != nil {
		return Rotated{}, err
	}
	s.cache.forget(k.Prefix)
	s.logger.InfoContext(ctx, "api key rotated", "api_key_id", k.ID, "tenant_id", k.TenantID, "actor_id", acc.Principal.ID)
	return Rotated{ID: k.ID, Secret: k.Prefix + "_" + secret, PreviousSecretExpiresAt: prevUntil, Key: public(k)}, nil
}

func rotatable(k Key, now time.Time) error {
	if k.RevokedAt != nil {
		return errStateConflict("rotate", "revoked")
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return errStateConflict("rotate", "expired")
	}
	return nil
}

// Revoke revokes key id: from then on every secret of it is refused (at once
// on this instance, within CacheTTL on the others). It emits
// identity.api_key.revoked.v1 in the same transaction. Revoking a revoked
// key is idempotent: it succeeds, returns the key unchanged and emits no
// second event (DELETE stays repeatable).
//
// Authorization as for Create, on the key's tenant.
// Errors: IDENT_UNAUTHENTICATED; IDENT_NOT_FOUND; IDENT_CROSS_TENANT;
// IDENT_FORBIDDEN; IDENT_UNAVAILABLE.
func (s *Service) Revoke(ctx context.Context, id string) (Key, error) {
	acc, k, err := s.adminTarget(ctx, id)
	if err != nil {
		return Key{}, err
	}
	if k.RevokedAt != nil {
		return public(k), nil
	}
	now := s.now()
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		ok, err := s.store.RevokeAPIKey(ctx, k.ID, now)
		if err != nil {
			return err
		}
		if k, err = s.store.APIKeyByID(ctx, k.ID); err != nil || !ok {
			return err // !ok: a concurrent revocation won and emitted the event
		}
		return s.store.AddEvents(ctx, keyEvent(now, EventRevoked, k))
	})
	if err != nil {
		return Key{}, err
	}
	s.cache.forget(k.Prefix)
	s.logger.InfoContext(ctx, "api key revoked", "api_key_id", k.ID, "tenant_id", k.TenantID, "actor_id", acc.Principal.ID)
	return public(k), nil
}

// List returns the keys of tenantID (the caller's tenant when empty), newest
// first, without secrets or hashes; revoked and expired keys included.
//
// Authorization as for Create.
// Errors: IDENT_UNAUTHENTICATED; IDENT_CROSS_TENANT; IDENT_FORBIDDEN;
// IDENT_UNAVAILABLE.
func (s *Service) List(ctx context.Context, tenantID string) ([]Key, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return nil, err
	}
	if tenantID == "" {
		tenantID = acc.Principal.TenantID
	}
	if err := acc.CanAdminister(tenantID); err != nil {
		return nil, err
	}
	if !core.ValidID(tenantID) {
		return []Key{}, nil
	}
	keys, err := s.store.ListAPIKeys(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	out := make([]Key, 0, len(keys))
	for _, k := range keys {
		out = append(out, public(k))
	}
	return out, nil
}

// adminTarget authenticates the caller, loads key id and checks that the
// caller may administer it. A caller who administers nothing is refused
// before the lookup, so it cannot probe for ids.
func (s *Service) adminTarget(ctx context.Context, id string) (*core.Access, Key, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return nil, Key{}, err
	}
	if !acc.SuperAdmin && len(acc.AdminOf) == 0 {
		return nil, Key{}, core.Forbidden("requires TENANT_ADMIN or SUPER_ADMIN")
	}
	if !core.ValidID(id) {
		return nil, Key{}, core.NotFound("API key")
	}
	k, err := s.store.APIKeyByID(ctx, id)
	if core.IsKind(err, core.KindNotFound) {
		return nil, Key{}, core.NotFound("API key")
	}
	if err != nil {
		return nil, Key{}, err
	}
	if err := acc.CanAdminister(k.TenantID); err != nil {
		return nil, Key{}, err
	}
	return acc, k, nil
}

func errStateConflict(action, state string) *core.Error {
	return core.E(core.KindConflict, core.CodeStateConflict, "cannot "+action+" an API key that is "+state)
}
