package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/ghasi-ehealth/identity-service/core"
)

// DefaultAcquireTimeout is how long a caller waits for a hashing slot when
// NewHasher is given no positive timeout.
const DefaultAcquireTimeout = 2 * time.Second

// Hasher hashes and verifies passwords with argon2id. It is safe for
// concurrent use.
//
// At most maxConcurrency hashes run at once. A caller that cannot get a slot
// within the acquire timeout is refused with IDENT_OVERLOADED instead of
// queueing without bound: queued requests would each hold a goroutine and
// a client connection, and when the slots free up the queue would still be
// there, so shedding early keeps latency bounded for those that get in.
type Hasher struct {
	params         Params
	sem            chan struct{}
	acquireTimeout time.Duration
	// waiting counts callers queued for a slot; hashNanos is a moving
	// average of one hash's duration. Together they predict a newcomer's
	// wait, so overflow is refused at once instead of after the timeout.
	waiting   atomic.Int64
	hashNanos atomic.Int64
	// dummy is a PHC string with h's params, a random salt and a random key.
	// VerifyDummy checks against it: the cost is that of a real Verify and
	// no password can match it (finding one would mean inverting argon2id).
	dummy phc
}

// NewHasher returns a Hasher that creates hashes with params.
// maxConcurrency ≤ 0 means runtime.NumCPU(); acquireTimeout ≤ 0 means
// DefaultAcquireTimeout.
//
// params must be valid (ParseParams and DefaultParams return valid ones);
// NewHasher panics otherwise, since that is a wiring bug, not a runtime
// condition.
func NewHasher(params Params, maxConcurrency int, acquireTimeout time.Duration) *Hasher {
	if err := params.Validate(); err != nil {
		panic("password.NewHasher: " + err.Error())
	}
	if maxConcurrency <= 0 {
		maxConcurrency = runtime.NumCPU()
	}
	if acquireTimeout <= 0 {
		acquireTimeout = DefaultAcquireTimeout
	}
	return &Hasher{
		params:         params,
		sem:            make(chan struct{}, maxConcurrency),
		acquireTimeout: acquireTimeout,
		dummy:          phc{params: params, salt: randomBytes(SaltLen), key: randomBytes(KeyLen)},
	}
}

// Params returns the parameters used for new hashes.
func (h *Hasher) Params() Params { return h.params }

// Hash derives a new argon2id hash of plain with a fresh 16-byte salt and
// returns it as a PHC string. Password policy (length, breached list) is the
// caller's business; Hash accepts any string.
//
// Errors: a *core.Error with Kind KindUnavailable and Code CodeOverloaded
// (RetryAfter set) when no slot is free within the acquire timeout, at once
// when the callers already queued predict a longer wait than that, or when
// ctx ends first; when ctx ended, the error also wraps ctx.Err().
func (h *Hasher) Hash(ctx context.Context, plain string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	salt := randomBytes(SaltLen)
	p := h.params
	key := h.derive([]byte(plain), salt, p, KeyLen)
	return phc{params: p, salt: salt, key: key}.encode(), nil
}

// Verify reports whether plain matches encoded, a stored PHC string. The derived
// and stored keys are compared in constant time. needsRehash is true only
// when ok is true and the stored hash was made with other parameters (or
// other salt or key sizes) than h's, so the caller should store a fresh
// Hash(plain) now that it knows the password.
//
// The stored hash is parsed before a slot is taken, so a malformed one costs
// nothing. Errors:
//   - a *core.Error of KindInternal wrapping ErrMalformedHash when encoded is not
//     a well-formed argon2id v=19 PHC string (a data problem, never shown
//     to the client);
//   - the overload error described at Hash.
func (h *Hasher) Verify(ctx context.Context, plain, encoded string) (ok, needsRehash bool, err error) {
	stored, err := parsePHC(encoded)
	if err != nil {
		return false, false, core.Internal(err)
	}
	ok, err = h.verify(ctx, plain, stored)
	if err != nil || !ok {
		return false, false, err
	}
	needsRehash = stored.params != h.params || len(stored.salt) != SaltLen || len(stored.key) != KeyLen
	return true, needsRehash, nil
}

// VerifyDummy does the work of a Verify against a hash that no password
// matches. Call it when the user is unknown (or has no password) so that
// the response time does not reveal whether the account exists. Like a real
// Verify it waits for a slot, so it returns the overload error described at
// Hash under the same conditions; otherwise nil.
func (h *Hasher) VerifyDummy(ctx context.Context, plain string) error {
	_, err := h.verify(ctx, plain, h.dummy)
	return err
}

func (h *Hasher) verify(ctx context.Context, plain string, stored phc) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	p := stored.params
	key := h.derive([]byte(plain), stored.salt, p, uint32(len(stored.key)))
	return subtle.ConstantTimeCompare(key, stored.key) == 1, nil
}

// derive computes argon2id in the slot the caller acquired and releases
// it, feeds the duration into the moving average, and then (outside the
// slot) collects the finished hash's memory (p.Memory KiB, 64 MiB by
// default) at once: left to the pacer, the garbage of finished hashes piles
// up to twice the live heap during a login storm (peak RSS 381 MiB with 2
// slots, 274 MiB with this; docs/PERFORMANCE.md). The live heap is a few
// MiB plus the hashes in flight, which hold no pointers, so a cycle costs
// little next to the hash.
func (h *Hasher) derive(plain, salt []byte, p Params, keyLen uint32) []byte {
	start := time.Now()
	key := argon2.IDKey(plain, salt, p.Time, p.Memory, p.Threads, keyLen)
	took := int64(time.Since(start))
	h.release()
	if avg := h.hashNanos.Load(); avg == 0 {
		h.hashNanos.Store(took)
	} else {
		h.hashNanos.Store(avg + (took-avg)/8)
	}
	if p.Memory >= 8*1024 {
		runtime.GC()
	}
	return key
}

// acquire takes a slot or returns the overload error. A request whose ctx
// has already ended is refused even when a slot is free: nobody is waiting
// for its 64 MiB hash.
func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return overloaded(err)
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	default:
	}
	// Refuse at once when the callers ahead would not be through within
	// the timeout anyway (a storm): the client gets its 503 in
	// microseconds, not after waiting in vain.
	queued := h.waiting.Add(1)
	defer h.waiting.Add(-1)
	if avg := time.Duration(h.hashNanos.Load()); avg > 0 && time.Duration(queued)*avg/time.Duration(cap(h.sem)) > h.acquireTimeout {
		return overloaded(fmt.Errorf("%d callers queued for %d password-hash slots", queued, cap(h.sem)))
	}
	timer := time.NewTimer(h.acquireTimeout)
	defer timer.Stop()
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-timer.C:
		return overloaded(fmt.Errorf("no password-hash slot free within %s", h.acquireTimeout))
	case <-ctx.Done():
		return overloaded(ctx.Err())
	}
}

func (h *Hasher) release() { <-h.sem }

// overloaded builds the IDENT_OVERLOADED error. RetryAfter is 1 or 2 seconds
// at random so that refused clients do not all come back in the same second
// (Retry-After is whole seconds).
func overloaded(cause error) *core.Error {
	e := core.Wrap(cause, core.KindUnavailable, core.CodeOverloaded,
		"too many password checks in progress; try again shortly")
	e.RetryAfter = time.Duration(1+mrand.IntN(2)) * time.Second
	return e
}

// randomBytes returns n bytes from crypto/rand, which never returns an error
// on supported platforms (Go 1.24+ crashes the program instead), so there is
// nothing to handle here.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// MemoryBudget is the Go soft memory limit identityd sets (unless GOMEMLIMIT
// is set) for hashing with params in slots parallel slots: slots × m plus
// 160 MiB for everything else. The target for the whole process is slots × m
// + 200 MiB (docs/PERFORMANCE.md); the limit is soft, so it sits 40 MiB
// below to absorb the overshoot of a 64 MiB allocation landing while a
// collection runs. With the collection after every hash (derive) a login
// storm stays within the target.
func MemoryBudget(params Params, slots int) int64 {
	return int64(slots)*int64(params.Memory)*1024 + 160<<20
}
