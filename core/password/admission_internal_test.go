package password

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
)

// TestAcquireShedsAtOnce: when the callers already queued would not get a
// slot within the timeout (queue × average hash time / slots), a newcomer
// is refused at once with IDENT_OVERLOADED instead of after the timeout;
// a short queue still waits for its slot.
//
// The timeout and the average are minutes, so waiting for the timeout is
// unmistakable: the refusal must come from the admission check (its own
// message, no timer, not the caller's deadline), and a generous bound
// confirms that it did not wait.
func TestAcquireShedsAtOnce(t *testing.T) {
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 1, 2*time.Minute)
	h.hashNanos.Store(int64(time.Minute))
	h.sem <- struct{}{} // the one slot is busy

	h.waiting.Store(2) // two ahead: 3 × 1 min > 2 min
	// A caller's deadline far below the timeout, so that a broken check
	// fails the test in seconds rather than after two minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := h.acquire(ctx)
	require.Equal(t, core.CodeOverloaded, core.CodeOf(err))
	require.ErrorContains(t, err, "3 callers queued for 1 password-hash slots", "refused by the admission check")
	require.NotErrorIs(t, err, context.DeadlineExceeded, "not by the caller's deadline")
	require.Less(t, time.Since(start), 5*time.Second, "refused without waiting")
	require.Equal(t, int64(2), h.waiting.Load(), "the refused caller left the queue")

	h.waiting.Store(0) // nobody ahead: 1 × 1 min ≤ 2 min, so it waits
	go func() {
		time.Sleep(50 * time.Millisecond)
		h.release()
	}()
	require.NoError(t, h.acquire(context.Background()))
	h.release()
}

// TestDeriveUpdatesAverage: every hash feeds the moving average the
// admission check uses, and releases its slot.
func TestDeriveUpdatesAverage(t *testing.T) {
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 1, time.Second)
	_, err := h.Hash(context.Background(), "correct horse")
	require.NoError(t, err)
	require.Positive(t, h.hashNanos.Load())
	require.Empty(t, h.sem, "slot released")
}
