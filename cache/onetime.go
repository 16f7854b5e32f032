package cache

import (
	"context"
	"strings"
	"time"

	"github.com/valkey-io/valkey-go"
)

// Single-use record keys:
//
//	identity:onetime:{namespace}:{key}   opaque value (PX = the record's ttl)
//
// A record is written with SET … PX and consumed with GETDEL (Redis ≥ 6.2,
// every Valkey), which returns and deletes in one atomic step: of any number
// of concurrent takers, on any number of instances, exactly one gets it.

// ValkeyOneTime stores short-lived, single-use records (federation.FlowStore)
// under one namespace on Valkey, shared by every instance. Records are never
// read through the client-side cache. Safe for concurrent use.
type ValkeyOneTime struct {
	v      *Valkey
	prefix string // identity:onetime:{namespace}:
}

// OneTime returns the single-use record store of namespace on this server.
// namespace names the kind of record (for example "oidc-state" or
// "login-code") so that stores of different kinds never see each other's
// keys. It must be non-empty and must not contain ':' (which would make
// {namespace}:{key} ambiguous); OneTime panics otherwise, as namespaces are
// constants chosen when the service is wired.
func (v *Valkey) OneTime(namespace string) ValkeyOneTime {
	if namespace == "" || strings.Contains(namespace, ":") {
		panic("cache: one-time namespace must be non-empty and contain no ':': " + namespace)
	}
	return ValkeyOneTime{v: v, prefix: keyPrefix + "onetime:" + namespace + ":"}
}

func (s ValkeyOneTime) key(k string) string { return s.prefix + k }

// Put stores value under key for ttl, replacing any record of that key.
// ttl must be positive (rounded up to whole milliseconds). Errors:
// core.KindInternal for ttl ≤ 0; core.KindUnavailable (IDENT_UNAVAILABLE)
// when the server cannot be reached or fails.
func (s ValkeyOneTime) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return errInvalid("one-time record ttl must be positive")
	}
	c := s.v.client
	// SET with an absolute value is idempotent, so it may be retried after a
	// network error.
	cmd := c.B().Set().Key(s.key(key)).Value(valkey.BinaryString(value)).PxMilliseconds(millis(ttl)).Build().ToRetryable()
	if err := c.Do(ctx, cmd).Error(); err != nil {
		return unavailable("one-time put", err)
	}
	return nil
}

// Take returns the record of key and deletes it in one atomic step (GETDEL);
// ok is false when there is no such record (never stored, expired, or
// already taken). An empty stored value is returned as a non-nil empty
// slice with ok true. Take is not retried after a network error: a retry
// could find the record consumed by the lost first attempt, so the caller
// sees IDENT_UNAVAILABLE instead, and the record is at worst lost, never
// used twice. Errors: core.KindUnavailable (IDENT_UNAVAILABLE).
func (s ValkeyOneTime) Take(ctx context.Context, key string) ([]byte, bool, error) {
	c := s.v.client
	b, err := c.Do(ctx, c.B().Getdel().Key(s.key(key)).Build()).AsBytes()
	if valkey.IsValkeyNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, unavailable("one-time take", err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, true, nil
}
