package keys

import (
	"context"
	"crypto/rsa"
	"sync"
	"time"
)

// The reloads VerificationKey triggers are rate-limited by a token bucket,
// so tokens with unknown kids (foreign or forged) cost each instance at most
// a few small queries a second, while an occasional real rotation never
// waits.
const (
	catchUpRate  = 10 // reloads per second, sustained
	catchUpBurst = 5
)

// catchUp is the state of VerificationKey's reloads.
type catchUp struct {
	mu     sync.Mutex // held during a reload: concurrent callers share it
	began  time.Time  // when the last reload began (monotonic)
	tokens float64
	filled time.Time // when tokens was last topped up
}

// VerificationKey is PublicKey for a verifier holding a token, and notices a
// rotation made by another instance sharing the store without waiting for
// the periodic refresh (RefreshEvery, 1 minute by default):
//
//   - a kid this keyring does not publish may be a key another instance
//     created and then promoted since this one last loaded (two rotations
//     within RefreshEvery); its tokens would otherwise be refused here;
//   - a kid this keyring holds as the next key means another instance has
//     promoted it, while this one still signs with the retired key.
//
// In both cases the keyring is reloaded before answering. Concurrent callers
// share one reload (a caller waits for the reload in flight and then uses it
// if it began after the caller arrived), and reloads are rate-limited
// (catchUpRate, catchUpBurst): past the limit the current keyring answers.
// A failed reload keeps the current keyring (the periodic refresh logs store
// failures).
func (s *Service) VerificationKey(ctx context.Context, kid string) (*rsa.PublicKey, bool) {
	if p, ok := s.ring.Load().lookup(kid); ok && p.state != StateNext {
		return s.usable(p) // the common path: one lookup, no lock
	}
	s.catchUpReload(ctx)
	return s.PublicKey(kid)
}

func (s *Service) catchUpReload(ctx context.Context) {
	arrived := time.Now()
	c := &s.catchUp
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.began.After(arrived) {
		return // a reload that began after this call arrived has finished
	}
	if c.filled.IsZero() {
		c.tokens = catchUpBurst
	} else {
		c.tokens = min(catchUpBurst, c.tokens+now.Sub(c.filled).Seconds()*catchUpRate)
	}
	c.filled = now
	if c.tokens < 1 {
		return
	}
	c.tokens--
	c.began = now
	if err := s.reload(ctx); err != nil {
		s.log.DebugContext(ctx, "keyring reload for a token's kid failed", "error", err)
	}
}
