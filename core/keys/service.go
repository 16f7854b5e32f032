package keys

import (
	"cmp"
	"context"
	"crypto/rsa"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/ghasi-ehealth/identity-service/core"
)

var (
	errNotInitialized  = errors.New("keys: keyring not loaded; call Init first")
	errIncomplete      = errors.New("keys: the keyring lacks an active or a next key; run Init")
	errRotatedMeantime = errors.New("keys: the active key changed since this instance last loaded the keyring")
	errLostRace        = errors.New("keys: a key left the expected state during rotation")
)

// Service owns the jwt keyring: it creates and rotates keys in the Store and
// serves the in-memory snapshot to token issuing, verification and JWKS.
type Service struct {
	store   Store
	wrapper Wrapper
	clock   core.Clock
	authz   *core.Authorizer
	log     *slog.Logger
	cfg     Config
	sched   cron.Schedule

	ring     atomic.Pointer[keyring]
	reloadMu sync.Mutex // serializes reloads so an older read never replaces a newer one

	catchUp catchUp // the reloads of VerificationKey (catchup.go)

	caMu sync.Mutex // guards ca (DeviceCA)
	ca   *deviceCA
}

// NewService validates cfg and returns a Service; call Init before use.
// A nil clock means the system clock and a nil logger discards. authz may be
// nil, in which case the admin-only methods always answer IDENT_FORBIDDEN.
// An invalid RotationCron fails with IDENT_VALIDATION naming
// IDENTITY_KEY_ROTATION_CRON.
func NewService(store Store, wrapper Wrapper, clock core.Clock, authz *core.Authorizer, logger *slog.Logger, cfg Config) (*Service, error) {
	if store == nil || wrapper == nil {
		return nil, errors.New("keys: NewService needs a store and a wrapper")
	}
	if clock == nil {
		clock = core.SystemClock{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	sched, err := cron.ParseStandard(cfg.RotationCron)
	if err != nil {
		e := core.InvalidField("IDENTITY_KEY_ROTATION_CRON",
			"not a valid 5-field cron expression ("+err.Error()+"); default is \""+DefaultRotationCron+"\"")
		e.Err = err
		return nil, e
	}
	return &Service{store: store, wrapper: wrapper, clock: clock, authz: authz, log: logger, cfg: cfg, sched: sched}, nil
}

// now is the clock at the storage precision of both dialects (microseconds),
// so what is stored, emitted and kept in memory agree.
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// Init makes sure an active and a next jwt key exist, creating the missing
// ones in one transaction (no event: nothing was rotated), and loads the
// keyring. Instances starting together on an empty database race on the
// one-active/one-next indexes; the loser re-reads and uses the winner's keys.
// Errors are the store's (IDENT_UNAVAILABLE when the database is down) or
// internal ones when a stored key cannot be unwrapped (wrong master key).
func (s *Service) Init(ctx context.Context) error {
	const attempts = 3
	for i := 1; ; i++ {
		err := s.ensureKeys(ctx)
		if err == nil {
			break
		}
		if !core.IsKind(err, core.KindConflict) || i == attempts {
			return err
		}
	}
	if err := s.reload(ctx); err != nil {
		return core.AsError(err)
	}
	return nil
}

func (s *Service) ensureKeys(ctx context.Context) error {
	rows, err := s.store.ListKeys(ctx, PurposeJWT)
	if err != nil {
		return err
	}
	active, next := current(rows)
	if active != nil && next != nil {
		return nil
	}
	// Generate outside the transaction: RSA generation takes tens of ms.
	now := s.now()
	var fresh []StoredKey
	for _, st := range []State{StateActive, StateNext} {
		if (st == StateActive && active != nil) || (st == StateNext && next != nil) {
			continue
		}
		k, err := newKey(s.wrapper, PurposeJWT, st, now)
		if err != nil {
			return core.Internal(err)
		}
		fresh = append(fresh, k)
	}
	return s.store.InTx(ctx, func(ctx context.Context) error {
		rows, err := s.store.ListKeys(ctx, PurposeJWT)
		if err != nil {
			return err
		}
		active, next := current(rows)
		for _, k := range fresh {
			if (k.State == StateActive && active != nil) || (k.State == StateNext && next != nil) {
				continue
			}
			if err := s.store.InsertKey(ctx, k); err != nil {
				return err
			}
			s.log.InfoContext(ctx, "signing key created", "kid", k.KID, "state", string(k.State))
		}
		return nil
	})
}

// current returns the active and next rows (nil when absent).
func current(rows []StoredKey) (active, next *StoredKey) {
	for i := range rows {
		switch rows[i].State {
		case StateActive:
			active = &rows[i]
		case StateNext:
			next = &rows[i]
		}
	}
	return active, next
}

// Rotate retires the active key (published for RetiredPublishFor more),
// promotes the next key to active and creates a new next key, emitting
// identity.jwks.rotated.v1 in the same transaction, then reloads the keyring.
// It returns the new active key. Errors: IDENT_STATE_CONFLICT (KindConflict)
// when another instance rotated concurrently or since this instance last
// loaded the keyring (the keyring is reloaded, so a retry works); the store's
// errors (IDENT_UNAVAILABLE); internal errors before Init.
func (s *Service) Rotate(ctx context.Context) (SigningKey, error) {
	k, _, err := s.rotate(ctx, 0)
	return k, err
}

// RotateAsAdmin is Rotate for a SUPER_ADMIN caller (GraphQL rotateSigningKey).
// Errors: IDENT_UNAUTHENTICATED, IDENT_FORBIDDEN, then those of Rotate.
func (s *Service) RotateAsAdmin(ctx context.Context) (SigningKey, error) {
	if err := s.requireSuperAdmin(ctx); err != nil {
		return SigningKey{}, err
	}
	return s.Rotate(ctx)
}

// rotate rotates unless minActiveAge > 0 and the active key is younger than
// that (then it reports rotated=false): a scheduled rotation on several
// instances sharing a database thus happens once.
func (s *Service) rotate(ctx context.Context, minActiveAge time.Duration) (key SigningKey, rotated bool, err error) {
	cur := s.ring.Load()
	if cur == nil {
		return SigningKey{}, false, core.Internal(errNotInitialized)
	}
	now := s.now()
	fresh, err := newKey(s.wrapper, PurposeJWT, StateNext, now)
	if err != nil {
		return SigningKey{}, false, core.Internal(err)
	}
	var promoted StoredKey
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		rows, err := s.store.ListKeys(ctx, PurposeJWT)
		if err != nil {
			return err
		}
		active, next := current(rows)
		if active == nil || next == nil {
			return core.Internal(errIncomplete)
		}
		if minActiveAge > 0 && active.ActivatedAt != nil && now.Sub(*active.ActivatedAt) < minActiveAge {
			return nil
		}
		// The caller rotates the key it knows; if another instance got
		// there first, this rotation must not happen a second time.
		if active.KID != cur.signer.kid {
			return conflict(errRotatedMeantime)
		}
		publishUntil := now.Add(s.cfg.RetiredPublishFor)
		ok, err := s.store.TransitionKey(ctx, active.KID, StateActive, StateRetired, now, &publishUntil)
		if err != nil {
			return err
		}
		if !ok {
			return conflict(errLostRace)
		}
		if ok, err = s.store.TransitionKey(ctx, next.KID, StateNext, StateActive, now, nil); err != nil {
			return err
		} else if !ok {
			return conflict(errLostRace)
		}
		if err := s.store.InsertKey(ctx, fresh); err != nil {
			return err
		}
		evt := core.NewEvent(now, EventJWKSRotated, next.KID, "", RotatedData{
			NewKid:               next.KID,
			PreviousKid:          active.KID,
			PreviousKeyRetiresAt: publishUntil.UTC().Format(time.RFC3339),
		})
		if err := s.store.AddEvents(ctx, evt); err != nil {
			return err
		}
		promoted = *next
		promoted.State = StateActive
		promoted.ActivatedAt = &now
		return nil
	})
	if err != nil {
		if core.IsKind(err, core.KindConflict) {
			// Catch up with the winner so the next attempt starts from it.
			_ = s.Refresh(ctx)
			return SigningKey{}, false, conflict(err)
		}
		return SigningKey{}, false, err
	}
	if promoted.KID == "" {
		return SigningKey{}, false, nil
	}
	s.log.InfoContext(ctx, "signing key rotated", "newKid", promoted.KID, "newNextKid", fresh.KID)
	if err := s.reload(ctx); err != nil {
		// Committed; the periodic refresh will pick the new keys up.
		s.log.WarnContext(ctx, "keyring reload after rotation failed", "error", err)
	}
	return promoted.view(), true, nil
}

// conflict reports a lost rotation race as IDENT_STATE_CONFLICT.
func conflict(cause error) error {
	if e, ok := errors.AsType[*core.Error](cause); ok && e.Code == core.CodeStateConflict {
		return e
	}
	return core.Wrap(cause, core.KindConflict, core.CodeStateConflict, "the signing key was rotated concurrently; retry")
}

// stateRank orders states from the newest to the oldest stage of life.
func stateRank(s State) int {
	switch s {
	case StateNext:
		return 0
	case StateActive:
		return 1
	default:
		return 2
	}
}

// SigningKeys lists every jwt key, newest first (GraphQL signingKeys).
// Errors: IDENT_UNAUTHENTICATED, IDENT_FORBIDDEN unless SUPER_ADMIN, and the
// store's (IDENT_UNAVAILABLE).
func (s *Service) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	if err := s.requireSuperAdmin(ctx); err != nil {
		return nil, err
	}
	rows, err := s.store.ListKeys(ctx, PurposeJWT)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rows, func(a, b StoredKey) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		// Init creates the active and next keys at the same instant.
		if c := cmp.Compare(stateRank(a.State), stateRank(b.State)); c != 0 {
			return c
		}
		return cmp.Compare(a.KID, b.KID)
	})
	out := make([]SigningKey, len(rows))
	for i, k := range rows {
		out[i] = k.view()
	}
	return out, nil
}

func (s *Service) requireSuperAdmin(ctx context.Context) error {
	if s.authz == nil {
		return core.Forbidden("requires SUPER_ADMIN")
	}
	_, err := s.authz.RequireSuperAdmin(ctx)
	return err
}

// Refresh reloads the keyring from the store. On failure the last good
// keyring keeps being served (a retired key that lapsed meanwhile is still
// dropped), a warning is logged, and the store's error is returned.
func (s *Service) Refresh(ctx context.Context) error {
	err := s.reload(ctx)
	if err == nil {
		return nil
	}
	s.log.WarnContext(ctx, "keyring refresh failed; serving the last good keyring", "error", err)
	s.dropLapsed()
	return core.AsError(err)
}

func (s *Service) reload(ctx context.Context) error {
	// Read under the lock too: otherwise a slow read that started before a
	// rotation could replace the keyring a faster, later read installed.
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	rows, err := s.store.ListKeys(ctx, PurposeJWT)
	if err != nil {
		return err
	}
	r, err := buildKeyring(rows, s.ring.Load(), s.wrapper, s.now(), s.log)
	if err != nil {
		return core.Internal(err)
	}
	s.ring.Store(r)
	return nil
}

// dropLapsed rebuilds the last good keyring without retired keys whose
// publish window has ended, so they leave JWKS even while the store is down.
func (s *Service) dropLapsed() {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cur := s.ring.Load()
	now := s.now()
	if cur == nil || !cur.stale(now) {
		return
	}
	if r, err := buildKeyring(cur.rows, cur, s.wrapper, now, s.log); err == nil {
		s.ring.Store(r)
	}
}

// JWKS returns the published key set document and its ETag (a quoted hash of
// the document). It reads the in-memory snapshot and allocates nothing; the
// returned slice is shared and must not be modified. Before Init it returns
// nil and "".
func (s *Service) JWKS() (doc []byte, etag string) {
	r := s.ring.Load()
	if r == nil {
		return nil, ""
	}
	return r.doc, r.etag
}

// PublicKey returns the verification key for kid if it is published: the
// next key, the active key, or a retired key within its publish window.
func (s *Service) PublicKey(kid string) (*rsa.PublicKey, bool) {
	p, ok := s.ring.Load().lookup(kid)
	if !ok {
		return nil, false
	}
	return s.usable(p)
}

// usable returns p's key unless p is a retired key whose publish window has
// ended.
func (s *Service) usable(p published) (*rsa.PublicKey, bool) {
	if !p.publishUntil.IsZero() && !s.clock.Now().Before(p.publishUntil) {
		return nil, false
	}
	return p.pub, true
}

// Signer returns the active key's signer. Errors: internal before Init.
func (s *Service) Signer() (*Signer, error) {
	r := s.ring.Load()
	if r == nil {
		return nil, core.Internal(errNotInitialized)
	}
	return r.signer, nil
}

// ActiveKeyAge returns how long the active signing key has been active (the
// identity.jwks.active_key_age gauge), read from the in-memory keyring, so
// it costs no query; ok is false before Init. Keyring refreshes pick up a
// rotation done by another instance within RefreshEvery.
func (s *Service) ActiveKeyAge() (age time.Duration, ok bool) {
	r := s.ring.Load()
	if r == nil {
		return 0, false
	}
	return max(s.clock.Now().Sub(r.activeAt), 0), true
}
