package cache

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/valkey-io/valkey-go"
)

// hitScript counts one hit: INCR, and when the key has no expiry (it was
// just created, or something left it without one) PEXPIRE window. Returns
// {count, pttl}. Atomic on the server, so instances never lose a count.
const hitScript = `
local n = redis.call('INCR', KEYS[1])
local t = redis.call('PTTL', KEYS[1])
if t < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  t = tonumber(ARGV[1])
end
return {n, t}
`

// undoScript takes one hit back only when the key exists with a positive
// count: it never creates a key (which would have no expiry) and never
// goes below zero. DECR keeps the key's expiry, so the window is unchanged.
const undoScript = `
local n = tonumber(redis.call('GET', KEYS[1]))
if n and n > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
`

// valkeyLimiter is core.RateLimiter on Valkey; keys identity:rl:{key}.
type valkeyLimiter struct{ v *Valkey }

func limiterKey(key string) string { return keyPrefix + "rl:" + key }

func (l valkeyLimiter) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	if window <= 0 {
		return 0, 0, errInvalid("rate-limit window must be positive")
	}
	res, err := l.v.hit.Exec(ctx, l.v.client,
		[]string{limiterKey(key)}, []string{strconv.FormatInt(millis(window), 10)}).AsIntSlice()
	if err != nil {
		return 0, 0, unavailable("rate-limit hit", err)
	}
	if len(res) != 2 {
		return 0, 0, unavailable("rate-limit hit", fmt.Errorf("unexpected reply of %d values", len(res)))
	}
	return res[0], time.Duration(res[1]) * time.Millisecond, nil
}

func (l valkeyLimiter) Undo(ctx context.Context, key string) error {
	if err := l.v.undo.Exec(ctx, l.v.client, []string{limiterKey(key)}, nil).Error(); err != nil {
		return unavailable("rate-limit undo", err)
	}
	return nil
}

func (l valkeyLimiter) Peek(ctx context.Context, key string) (int64, time.Duration, error) {
	c, k := l.v.client, limiterKey(key)
	res := c.DoMulti(ctx, c.B().Get().Key(k).Build(), c.B().Pttl().Key(k).Build())
	count, err := res[0].AsInt64()
	if valkey.IsValkeyNil(err) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, unavailable("rate-limit peek", err)
	}
	pttl, err := res[1].AsInt64()
	if err != nil {
		return 0, 0, unavailable("rate-limit peek", err)
	}
	switch {
	case pttl == -2: // expired between GET and PTTL
		return 0, 0, nil
	case pttl < 0: // no expiry (not written by this package); the next Hit sets one
		return count, 0, nil
	}
	return count, time.Duration(pttl) * time.Millisecond, nil
}
