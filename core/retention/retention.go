// Package retention deletes records whose life has ended: sessions and
// their refresh tokens, email-verification tokens, MFA login challenges,
// WebAuthn registration ceremonies and inbox dedupe records. Without it
// these tables grow without bound.
//
// Each kind of record is kept for a grace period after it ended (expired,
// was revoked or used, or was processed), because some of them still mean
// something for a while after that — a used refresh token is what makes a
// second presentation a detected replay. The grace periods are constants
// below, each with its reason.
//
// Never deleted here: the events table (the outbox is also the audit
// trail), license history, users, memberships, devices and their
// certificates (the CRL lists revoked certificates until they expire),
// signing keys (their own lifecycle in core/keys), API keys and service
// accounts.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

// Kind names one kind of record the sweeper deletes; the value is the table
// and the kind label of identity.retention.deleted.
type Kind string

const (
	// KindRefreshTokens: refresh tokens of a session past SessionGrace.
	KindRefreshTokens Kind = "refresh_tokens"
	// KindSessions: sessions that expired or were revoked more than
	// SessionGrace ago and have no refresh token left.
	KindSessions Kind = "sessions"
	// KindVerificationTokens: email-verification tokens that expired or
	// were used more than VerificationTokenGrace ago.
	KindVerificationTokens Kind = "verification_tokens"
	// KindMFAChallenges: login MFA challenges that expired more than
	// ChallengeGrace ago.
	KindMFAChallenges Kind = "mfa_challenges"
	// KindWebAuthnCeremonies: passkey registration ceremonies that expired
	// more than ChallengeGrace ago.
	KindWebAuthnCeremonies Kind = "webauthn_ceremonies"
	// KindInbox: inbox dedupe records processed more than InboxGrace ago.
	KindInbox Kind = "inbox"
)

// Grace periods: how long a record is kept after it ended.
const (
	// SessionGrace applies to sessions and their refresh tokens, counted
	// from the session's expiry or revocation, whichever came first.
	// Sessions live 8 h; a week more keeps refresh-token replay detection
	// working after the session ended: the used token's row is what makes a
	// second presentation IDENT_REFRESH_REPLAY with a security incident
	// event, rather than an unknown token answered with a plain 401 and no
	// trace — a token stolen from a device and tried days later is still
	// reported. The session row (IP, user agent, revoke reason) is also what
	// on-call reads when investigating such an incident, and a week spans a
	// weekend plus the ticket alert's next-working-day response. The
	// revocation fallbacks read only sessions revoked within the last
	// access-token lifetime (15 min), far inside this.
	SessionGrace = 7 * 24 * time.Hour

	// VerificationTokenGrace applies to email-verification tokens, counted
	// from their expiry or use, whichever came first. Redemption refuses an
	// expired or used token exactly like an unknown one
	// (IDENT_VERIFICATION_TOKEN_INVALID), so the row serves nothing after
	// it ended; a day keeps it for support to see whether a link a user
	// calls broken was issued and used.
	VerificationTokenGrace = 24 * time.Hour

	// ChallengeGrace applies to MFA login challenges and WebAuthn
	// registration ceremonies, counted from their expiry (they live 5
	// minutes and are refused once expired, present or not). The hour
	// covers clock skew between instances and a verification that loaded
	// its challenge just before expiry and is still finishing; nothing
	// reads them after that.
	ChallengeGrace = time.Hour

	// InboxGrace applies to inbox dedupe records, counted from when the
	// consumer processed the event. A record must outlive every redelivery
	// of its event, or the redelivered copy is processed twice. JetStream
	// redelivers an unacknowledged message (ack lost, consumer crashed)
	// until the stream drops it: messaging keeps IDENTITY_EVENTS 7 days
	// (streamMaxAge), counted from publication, which precedes processing.
	// Seven days would be exactly that window with no margin for clock
	// skew between NATS and the database, or for tenant-service's stream
	// (tenant.*.v1), whose age limit this service does not control; twice
	// it is cheap, since a record is three short columns.
	InboxGrace = 14 * 24 * time.Hour
)

// Rule is the grace period of one kind of record.
type Rule struct {
	Kind  Kind
	Grace time.Duration
}

// rules in sweep order: refresh tokens before their sessions (a session is
// deleted only once it has no token left).
var rules = []Rule{
	{KindRefreshTokens, SessionGrace},
	{KindSessions, SessionGrace},
	{KindVerificationTokens, VerificationTokenGrace},
	{KindMFAChallenges, ChallengeGrace},
	{KindWebAuthnCeremonies, ChallengeGrace},
	{KindInbox, InboxGrace},
}

// Rules returns every kind with its grace period, in sweep order.
func Rules() []Rule { return append([]Rule(nil), rules...) }

// Defaults.
const (
	// DefaultInterval is the time between sweeps (IDENTITY_RETENTION_INTERVAL).
	// Rows are due days after they ended, so sweeping more often gains
	// nothing; an hour keeps each sweep small.
	DefaultInterval = time.Hour
	// DefaultBatchSize bounds the rows one DELETE removes, so a statement
	// holds its locks (on SQLite, the database write lock) for
	// milliseconds even when a large backlog is first cleared.
	DefaultBatchSize = 1000
	// maxFirstDelay bounds the wait before the first sweep after start.
	maxFirstDelay = time.Minute
)

// Config tunes the sweeper.
type Config struct {
	// Interval is the time between sweeps of Run, varied by ±10 % so that
	// instances started together do not sweep together. Zero or less
	// disables Run (Sweep still works).
	Interval time.Duration
	// BatchSize is the most rows one DELETE removes; ≤ 0 means
	// DefaultBatchSize.
	BatchSize int
}

// Deps are the sweeper's collaborators.
type Deps struct {
	Store Store
	// Clock gives the time cutoffs are computed from; nil means the system
	// clock.
	Clock core.Clock
	// Logger receives one line per sweep that deleted something or failed;
	// nil discards.
	Logger *slog.Logger
	// Metrics counts deleted rows and failures (identity.retention.*); nil
	// counts nothing.
	Metrics *telemetry.Metrics
}

// Service runs the retention sweeps.
type Service struct {
	store   Store
	clock   core.Clock
	log     *slog.Logger
	metrics *telemetry.Metrics
	cfg     Config
}

// NewService returns a sweeper over deps.Store.
func NewService(deps Deps, cfg Config) *Service {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	s := &Service{store: deps.Store, clock: deps.Clock, log: deps.Logger, metrics: deps.Metrics, cfg: cfg}
	if s.clock == nil {
		s.clock = core.SystemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "retention")
	return s
}

// Result is what one sweep deleted.
type Result struct {
	// Deleted counts the rows deleted per kind; every kind the sweep got
	// to is present, with 0 when nothing was due.
	Deleted map[Kind]int
}

// Total is the number of rows deleted across kinds.
func (r Result) Total() int {
	n := 0
	for _, d := range r.Deleted {
		n += d
	}
	return n
}

// Sweep makes one pass: for each kind, in Rules order, it deletes the rows
// that ended more than the kind's grace period before now, BatchSize rows
// per statement, until a batch comes back short. The cutoffs are fixed at
// the start, so rows that become due during the pass wait for the next.
// A kind that fails is counted (identity.retention.failures) and left for
// the next sweep; the other kinds are still swept.
//
// Errors: the store's (IDENT_UNAVAILABLE, IDENT_INTERNAL), one per failed
// kind, prefixed with the kind and joined (core.KindOf sees the first);
// ctx's error when ctx ends mid-pass. The Result holds what was deleted
// either way.
func (s *Service) Sweep(ctx context.Context) (Result, error) {
	res := Result{Deleted: make(map[Kind]int, len(rules))}
	now := s.clock.Now()
	var errs []error
	for _, r := range rules {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		before := now.Add(-r.Grace)
		res.Deleted[r.Kind] = 0
		for {
			n, err := s.store.DeleteExpired(ctx, r.Kind, before, s.cfg.BatchSize)
			if n > 0 {
				res.Deleted[r.Kind] += n
				s.metrics.RetentionDeleted(ctx, string(r.Kind), n)
			}
			if err != nil {
				if ctx.Err() != nil {
					// Stopping is not a failure of the kind.
					return res, ctx.Err()
				}
				s.metrics.RetentionFailed(ctx, string(r.Kind))
				errs = append(errs, fmt.Errorf("retention of %s: %w", r.Kind, err))
				break
			}
			if n < s.cfg.BatchSize {
				break
			}
			if err := ctx.Err(); err != nil {
				return res, err
			}
		}
	}
	return res, errors.Join(errs...)
}

// Run sweeps every Interval (±10 %) until ctx ends; the first sweep comes
// within a minute of the start (at a random point, so instances restarted
// together spread out). A failed sweep is logged and counted and the next
// one runs on schedule: Run never stops on an error. With an Interval of
// zero or less it returns at once.
func (s *Service) Run(ctx context.Context) {
	if s.cfg.Interval <= 0 {
		s.log.InfoContext(ctx, "retention sweeper disabled")
		return
	}
	timer := time.NewTimer(firstDelay(s.cfg.Interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		s.sweepOnce(ctx)
		timer.Reset(jittered(s.cfg.Interval))
	}
}

// sweepOnce runs one Sweep and logs its outcome.
func (s *Service) sweepOnce(ctx context.Context) {
	start := time.Now()
	res, err := s.Sweep(ctx)
	attrs := []any{"deleted", res.Deleted, "total", res.Total(), "duration", time.Since(start)}
	switch {
	case ctx.Err() != nil:
		// Shutting down; what was deleted stays deleted.
	case err != nil:
		s.log.ErrorContext(ctx, "retention sweep failed; retrying at the next interval", append(attrs, "error", err)...)
	case res.Total() > 0:
		s.log.InfoContext(ctx, "retention sweep done", attrs...)
	default:
		s.log.DebugContext(ctx, "retention sweep done", attrs...)
	}
}

// jittered returns d varied uniformly by up to ±10 %.
func jittered(d time.Duration) time.Duration {
	spread := int64(d / 10)
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread) + time.Duration(rand.Int64N(2*spread+1))
}

// firstDelay is a random wait in [0, min(interval, maxFirstDelay)): a fresh
// instance sweeps soon, but instances restarted together do not all sweep
// at once.
func firstDelay(interval time.Duration) time.Duration {
	limit := min(interval, maxFirstDelay)
	if limit <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(limit)))
}
