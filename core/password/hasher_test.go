package password

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
)

// lowParams keeps the suite fast; only TestDefaultParamsHash uses the
// production cost.
var lowParams = Params{Memory: 64, Time: 1, Threads: 1}

func newLowHasher(t *testing.T, slots int, timeout time.Duration) *Hasher {
	t.Helper()
	return NewHasher(lowParams, slots, timeout)
}

// hold occupies one slot of h until the returned func is called; it reaches
// into the semaphore because there is no other way to keep a hash "running"
// deterministically.
func hold(h *Hasher) (release func()) {
	h.sem <- struct{}{}
	return func() { <-h.sem }
}

func requireOverloaded(t *testing.T, err error) {
	t.Helper()
	var ce *core.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, core.KindUnavailable, ce.Kind)
	require.Equal(t, core.CodeOverloaded, ce.Code)
	require.GreaterOrEqual(t, ce.RetryAfter, time.Second)
	require.LessOrEqual(t, ce.RetryAfter, 2*time.Second)
}

func TestDefaultParamsHash(t *testing.T) {
	// The one test at production cost: a single hash, no verify.
	h := NewHasher(DefaultParams(), 1, 0)
	encoded, err := h.Hash(context.Background(), "correct horse battery staple")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(encoded, "$argon2id$v=19$m=65536,t=3,p=1$"), encoded)

	parsed, err := parsePHC(encoded)
	require.NoError(t, err)
	require.Equal(t, DefaultParams(), parsed.params)
	require.Len(t, parsed.salt, SaltLen)
	require.Len(t, parsed.key, KeyLen)
}

func TestHashAndVerify(t *testing.T) {
	ctx := context.Background()
	h := newLowHasher(t, 2, time.Second)

	tests := []struct {
		name    string
		stored  string
		attempt string
		wantOK  bool
	}{
		{"match", "s3cret-passw0rd", "s3cret-passw0rd", true},
		{"wrong", "s3cret-passw0rd", "s3cret-passw0rD", false},
		{"prefix", "s3cret-passw0rd", "s3cret", false},
		{"empty attempt", "s3cret-passw0rd", "", false},
		{"unicode", "pässwörd-日本語-🔑", "pässwörd-日本語-🔑", true},
		{"empty password hashes", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			encoded, err := h.Hash(ctx, tc.stored)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(encoded, "$argon2id$v=19$m=64,t=1,p=1$"), encoded)

			ok, rehash, err := h.Verify(ctx, tc.attempt, encoded)
			require.NoError(t, err)
			require.Equal(t, tc.wantOK, ok)
			require.False(t, rehash)
		})
	}

	// Fresh salt each time: equal passwords give different strings.
	a, err := h.Hash(ctx, "same")
	require.NoError(t, err)
	b, err := h.Hash(ctx, "same")
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	require.Zero(t, len(h.sem), "slots are released")
}

func TestVerifyNeedsRehash(t *testing.T) {
	ctx := context.Background()
	old := NewHasher(Params{Memory: 32, Time: 1, Threads: 1}, 1, time.Second)
	cur := newLowHasher(t, 1, time.Second)

	oldHash, err := old.Hash(ctx, "pw")
	require.NoError(t, err)
	curHash, err := cur.Hash(ctx, "pw")
	require.NoError(t, err)
	// Same params but an 8-byte salt and 16-byte key, as an import might have.
	short := phc{params: lowParams, salt: []byte("12345678"), key: nil}
	short.key = deriveForTest("pw", short.salt, lowParams, 16)

	tests := []struct {
		name       string
		encoded    string
		plain      string
		wantOK     bool
		wantRehash bool
	}{
		{"other params, right password", oldHash, "pw", true, true},
		{"other params, wrong password", oldHash, "nope", false, false},
		{"current params", curHash, "pw", true, false},
		{"other salt and key sizes", short.encode(), "pw", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := cur.Verify(ctx, tc.plain, tc.encoded)
			require.NoError(t, err)
			require.Equal(t, tc.wantOK, ok)
			require.Equal(t, tc.wantRehash, rehash)
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	ctx := context.Background()
	h := newLowHasher(t, 1, time.Second)
	good, err := h.Hash(ctx, "pw")
	require.NoError(t, err)
	f := strings.Split(good, "$") // "", alg, v, params, salt, key

	join := func(parts ...string) string { return strings.Join(parts, "$") }
	tests := []struct {
		name    string
		encoded string
	}{
		{"empty", ""},
		{"plain text", "pw"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", join("", "argon2i", f[2], f[3], f[4], f[5])},
		{"no leading dollar", strings.TrimPrefix(good, "$")},
		{"old version", join("", f[1], "v=16", f[3], f[4], f[5])},
		{"missing version", join("", f[1], f[3], f[4], f[5])},
		{"extra field", good + "$x"},
		{"bad params", join("", f[1], f[2], "m=64,t=0,p=1", f[4], f[5])},
		{"huge memory", join("", f[1], f[2], "m=4194305,t=1,p=1", f[4], f[5])},
		{"padded salt", join("", f[1], f[2], f[3], f[4]+"==", f[5])},
		{"url alphabet", join("", f[1], f[2], f[3], "____________________w", f[5])},
		{"salt too short", join("", f[1], f[2], f[3], "AAAAAA", f[5])},
		{"empty key", join("", f[1], f[2], f[3], f[4], "")},
		{"key too short", join("", f[1], f[2], f[3], f[4], "AAAAAAAAAAAAAAAAAAAA")},
		{"key not base64", join("", f[1], f[2], f[3], f[4], "!!!!")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(ctx, "pw", tc.encoded)
			require.Error(t, err)
			require.False(t, ok)
			require.False(t, rehash)
			require.ErrorIs(t, err, ErrMalformedHash)
			require.Equal(t, core.KindInternal, core.KindOf(err))
		})
	}
	require.Zero(t, len(h.sem), "a malformed hash never takes a slot")
}

func TestVerifyDummy(t *testing.T) {
	ctx := context.Background()
	h := newLowHasher(t, 1, time.Second)
	require.NoError(t, h.VerifyDummy(ctx, "anything"))
	require.NoError(t, h.VerifyDummy(ctx, ""))

	// The dummy carries the hasher's own cost, so it takes as long as a
	// verify of a fresh hash.
	require.Equal(t, h.Params(), h.dummy.params)
	require.Len(t, h.dummy.salt, SaltLen)
	require.Len(t, h.dummy.key, KeyLen)

	// It competes for slots like a real verify.
	release := hold(h)
	defer release()
	h.acquireTimeout = 10 * time.Millisecond
	requireOverloaded(t, h.VerifyDummy(ctx, "anything"))
}

func TestOverloadedWhenNoSlot(t *testing.T) {
	ctx := context.Background()
	const timeout = 50 * time.Millisecond
	h := newLowHasher(t, 1, timeout)
	encoded, err := h.Hash(ctx, "pw")
	require.NoError(t, err)

	release := hold(h)
	start := time.Now()
	_, err = h.Hash(ctx, "pw")
	// Lower bound only: the caller waited for the timeout before giving up.
	require.GreaterOrEqual(t, time.Since(start), timeout)
	requireOverloaded(t, err)

	_, _, err = h.Verify(ctx, "pw", encoded)
	requireOverloaded(t, err)

	// Once the slot is free again, work proceeds.
	release()
	ok, _, err := h.Verify(ctx, "pw", encoded)
	require.NoError(t, err)
	require.True(t, ok)
}

func TestWaiterGetsFreedSlot(t *testing.T) {
	h := newLowHasher(t, 1, time.Minute)
	release := hold(h)

	done := make(chan error, 1)
	go func() {
		_, err := h.Hash(context.Background(), "pw")
		done <- err
	}()
	release()
	require.NoError(t, <-done)
}

func TestContextEndsWhileWaiting(t *testing.T) {
	// A long acquire timeout, so only ctx can end the wait.
	h := newLowHasher(t, 1, time.Minute)
	release := hold(h)
	defer release()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.Hash(ctx, "pw")
		done <- err
	}()
	cancel()
	err := <-done
	requireOverloaded(t, err)
	require.ErrorIs(t, err, context.Canceled)

	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer dcancel()
	_, _, err = h.Verify(dctx, "pw", NewHasher(lowParams, 1, 0).dummy.encode())
	requireOverloaded(t, err)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestContextAlreadyEnded(t *testing.T) {
	h := newLowHasher(t, 1, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.Hash(ctx, "pw")
	requireOverloaded(t, err)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, len(h.sem))
}

func TestConcurrentHashes(t *testing.T) {
	// More callers than slots, all patient enough: every one succeeds and
	// every slot is handed back.
	const slots = 3
	h := newLowHasher(t, slots, time.Minute)
	var (
		wg   sync.WaitGroup
		errs = make(chan error, 20)
	)
	for range 20 {
		wg.Go(func() {
			encoded, err := h.Hash(context.Background(), "pw")
			if err == nil {
				var ok bool
				ok, _, err = h.Verify(context.Background(), "pw", encoded)
				if err == nil && !ok {
					err = errors.New("verify of own hash failed")
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Zero(t, len(h.sem))
	require.Equal(t, slots, cap(h.sem))
}

func TestNewHasherDefaults(t *testing.T) {
	h := NewHasher(lowParams, 0, 0)
	require.Positive(t, cap(h.sem))
	require.Equal(t, DefaultAcquireTimeout, h.acquireTimeout)
	require.Panics(t, func() { NewHasher(Params{}, 1, time.Second) })
}
