package auth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

func TestThrottlePerIP(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta := e.tenant(t, "a")
		e.user(t, ta, "ada@example.org", user.StatusActive)
		ctx := ipCtx("203.0.113.50")
		for i := range 6 {
			// Different accounts, so only the IP limit can bite.
			_, err := e.svc.Login(ctx, auth.LoginInput{Email: fmt.Sprintf("guess%d@example.org", i), Password: "x"})
			requireCode(t, err, core.KindUnauthenticated, core.CodeInvalidCredentials)
		}
		hashes := e.hasher.computed()

		e.clock.Advance(time.Minute)
		_, err := e.svc.Login(ctx, auth.LoginInput{Email: "guess7@example.org", Password: "x"})
		ce := requireCode(t, err, core.KindRateLimited, core.CodeRateLimited)
		require.Equal(t, 4*time.Minute, ce.RetryAfter, "until the 5-minute window ends")

		_, err = e.svc.Login(ctx, auth.LoginInput{Email: "ada@example.org", Password: goodPassword})
		requireCode(t, err, core.KindRateLimited, core.CodeRateLimited)
		require.Equal(t, hashes, e.hasher.computed(), "blocked attempts compute no hash")

		// Another address is not affected.
		e.login(t, "ada@example.org", "203.0.113.51")

		e.clock.Advance(4 * time.Minute)
		e.login(t, "ada@example.org", "203.0.113.50")
	})
}

// TestThrottleUndo: successful logins from one address (a clinic's NAT) are
// taken back and never add up to a block.
func TestThrottleUndo(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	ta := e.tenant(t, "a")
	e.user(t, ta, "ada@example.org", user.StatusActive)
	for range 20 {
		e.login(t, "ada@example.org", "203.0.113.60")
	}
	n, _, err := e.limiter.Peek(context.Background(), "login:ip:203.0.113.60")
	require.NoError(t, err)
	require.Zero(t, n)
	// Failures still count, and a later success takes back only itself.
	for range 5 {
		_, err := e.svc.Login(ipCtx("203.0.113.60"), auth.LoginInput{Email: "ada@example.org", Password: "wrong"})
		requireCode(t, err, core.KindUnauthenticated, core.CodeInvalidCredentials)
	}
	e.login(t, "ada@example.org", "203.0.113.60")
	n, _, err = e.limiter.Peek(context.Background(), "login:ip:203.0.113.60")
	require.NoError(t, err)
	require.Equal(t, int64(5), n)
}

// TestThrottlePerAccount: 10 failures for one account from ten addresses
// block the account everywhere; unknown emails are treated alike.
func TestThrottlePerAccount(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta := e.tenant(t, "a")
		e.user(t, ta, "ada@example.org", user.StatusActive)
		for _, email := range []string{"ada@example.org", "ghost@example.org"} {
			for i := range 10 {
				_, err := e.svc.Login(ipCtx(fmt.Sprintf("198.51.100.%d", i+1)), auth.LoginInput{Email: email, Password: "wrong"})
				requireCode(t, err, core.KindUnauthenticated, core.CodeInvalidCredentials)
			}
			_, err := e.svc.Login(ipCtx("198.51.100.200"), auth.LoginInput{Email: " " + email, Password: goodPassword})
			ce := requireCode(t, err, core.KindRateLimited, core.CodeRateLimited)
			require.Equal(t, 15*time.Minute, ce.RetryAfter, email)
		}
		// Naming a tenant buys no extra guesses: the account key is the address.
		_, err := e.svc.Login(ipCtx("198.51.100.201"), auth.LoginInput{Email: "ada@example.org", Password: goodPassword, TenantID: ta})
		requireCode(t, err, core.KindRateLimited, core.CodeRateLimited)

		e.clock.Advance(15 * time.Minute)
		e.login(t, "ada@example.org", "198.51.100.202")
	})
}

// TestThrottleParallelGuesses: however many guesses at one account arrive
// at once, no more hashes are computed than the account limit allows (the
// account is counted before hashing; the IP only after failures).
func TestThrottleParallelGuesses(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ta := e.tenant(t, "a")
		e.user(t, ta, "ada@example.org", user.StatusActive)
		const n = 20
		errs := make(chan error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				<-start
				_, err := e.svc.Login(ipCtx("203.0.113.70"), auth.LoginInput{Email: "ada@example.org", Password: "wrong"})
				errs <- err
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		limited, invalid := 0, 0
		for err := range errs {
			switch core.CodeOf(err) {
			case core.CodeRateLimited:
				limited++
			case core.CodeInvalidCredentials:
				invalid++
			default:
				t.Errorf("unexpected: %v", err)
			}
		}
		// Guesses that arrive after six failures have landed are refused by
		// the IP as well, so between six and ten get a hash; never more.
		require.GreaterOrEqual(t, invalid, auth.DefaultIPFailureLimit)
		require.LessOrEqual(t, invalid, auth.DefaultAccountFailureLimit)
		require.Equal(t, n-invalid, limited)
		require.Equal(t, int32(invalid), e.hasher.computed())
		// The IP is blocked now: its failures are past the IP limit.
		_, err := e.svc.Login(ipCtx("203.0.113.70"), auth.LoginInput{Email: "other@example.org", Password: "x"})
		requireCode(t, err, core.KindRateLimited, core.CodeRateLimited)
	})
}

// TestThrottleNATBurst: many correct logins at once from one address (a
// clinic behind NAT) are never refused and leave no count behind.
func TestThrottleNATBurst(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	ta := e.tenant(t, "a")
	const n = 16
	for i := range n {
		e.user(t, ta, fmt.Sprintf("nurse%d@example.org", i), user.StatusActive)
	}
	errs := make(chan error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := e.svc.Login(ipCtx("203.0.113.90"), auth.LoginInput{Email: fmt.Sprintf("nurse%d@example.org", i), Password: goodPassword})
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	c, _, err := e.limiter.Peek(context.Background(), "login:ip:203.0.113.90")
	require.NoError(t, err)
	require.Zero(t, c)
}

// TestThrottleRefusalsDoNotExtendBlock: attempts refused while an address
// is blocked are not counted, so the block ends when its failures expire.
func TestThrottleRefusalsDoNotExtendBlock(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	ta := e.tenant(t, "a")
	e.user(t, ta, "ada@example.org", user.StatusActive)
	ctx := ipCtx("203.0.113.95")
	for i := range auth.DefaultIPFailureLimit {
		_, err := e.svc.Login(ctx, auth.LoginInput{Email: fmt.Sprintf("guess%d@example.org", i), Password: "x"})
		requireCode(t, err, core.KindUnauthenticated, core.CodeInvalidCredentials)
	}
	for range 3 {
		e.clock.Advance(time.Minute)
		for range 50 {
			_, err := e.svc.Login(ctx, auth.LoginInput{Email: "ada@example.org", Password: goodPassword})
			requireCode(t, err, core.KindRateLimited, core.CodeRateLimited)
		}
	}
	e.clock.Advance(2 * time.Minute) // the failures' 5-minute window has passed
	e.login(t, "ada@example.org", "203.0.113.95")
	sum := sha256.Sum256([]byte("ada@example.org"))
	n, _, err := e.limiter.Peek(context.Background(), "login:acct:"+hex.EncodeToString(sum[:16]))
	require.NoError(t, err)
	require.Zero(t, n, "refused attempts took back their account count")
}

func TestThrottleConfig(t *testing.T) {
	e := newEnv(t, sqliteOnly)
	cfg := e.cfg
	cfg.IPFailureLimit, cfg.IPFailureWindow = 2, time.Minute
	svc := auth.NewService(e.deps, cfg)
	for range 2 {
		_, err := svc.Login(ipCtx("203.0.113.80"), auth.LoginInput{Email: "x@example.org", Password: "x"})
		requireCode(t, err, core.KindUnauthenticated, core.CodeInvalidCredentials)
	}
	_, err := svc.Login(ipCtx("203.0.113.80"), auth.LoginInput{Email: "y@example.org", Password: "x"})
	ce := requireCode(t, err, core.KindRateLimited, core.CodeRateLimited)
	require.Equal(t, time.Minute, ce.RetryAfter)
}
