package cache

import (
	"context"
	"sync"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// MaxLocalOneTime is how many live records a LocalOneTime holds. Each
// record is small (an authorization request or a login code, well under a
// kilobyte) and lives minutes at most, so 100 000 is far above any honest
// load of one node while bounding memory at roughly 100 MB even for
// unusually large values. It exists so that a flood of unfinished login
// flows cannot grow the process without limit.
const MaxLocalOneTime = 100_000

// LocalOneTime stores short-lived, single-use records (federation.FlowStore)
// in process memory: correct for one node only, since a record put on one
// instance cannot be taken on another. It starts no goroutine: expired
// records are dropped when touched, and swept from the whole map when an
// insert finds the map at its sweep mark (see minSweep) or full. Safe for
// concurrent use.
//
// When MaxLocalOneTime live records exist, Put of a new key fails with
// core.KindUnavailable and code IDENT_OVERLOADED (RetryAfter set to when
// the next record expires, at least a second): refusing to start a new flow
// is the safe answer, whereas evicting a live record would break a flow in
// progress that an honest user may be about to finish.
type LocalOneTime struct {
	clock core.Clock
	max   int

	mu      sync.Mutex
	records map[string]localRecord
	sweepAt int
	// minExp is a lower bound of the expiry of every record in the map
	// (exact just after a sweep); when the map is full, a sweep is only
	// worth it once minExp has passed.
	minExp time.Time
}

type localRecord struct {
	value []byte
	end   time.Time
}

// NewLocalOneTime returns an empty in-process store reading time from
// clock; a nil clock means core.SystemClock.
func NewLocalOneTime(clock core.Clock) *LocalOneTime {
	if clock == nil {
		clock = core.SystemClock{}
	}
	return &LocalOneTime{clock: clock, max: MaxLocalOneTime, records: map[string]localRecord{}, sweepAt: minSweep}
}

// Put stores a copy of value under key for ttl, replacing any record of
// that key. Errors: core.KindInternal for ttl ≤ 0; IDENT_OVERLOADED
// (core.KindUnavailable) when the store is full, see LocalOneTime.
func (s *LocalOneTime) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return errInvalid("one-time record ttl must be positive")
	}
	now := s.clock.Now()
	end := now.Add(ttl)
	rec := localRecord{value: append([]byte{}, value...), end: end}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[key]; !ok {
		n := len(s.records)
		if n >= s.sweepAt || (n >= s.max && !now.Before(s.minExp)) {
			s.sweepLocked(now)
		}
		if len(s.records) >= s.max {
			return &core.Error{Kind: core.KindUnavailable, Code: core.CodeOverloaded,
				Msg:        "too many sign-in flows in progress; try again later",
				RetryAfter: max(time.Second, s.minExp.Sub(now))}
		}
	}
	if len(s.records) == 0 || end.Before(s.minExp) {
		s.minExp = end
	}
	s.records[key] = rec
	return nil
}

// Take returns the record of key and deletes it; ok is false when there is
// no live record of key. It never fails.
func (s *LocalOneTime) Take(_ context.Context, key string) ([]byte, bool, error) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.records[key]
	if !ok {
		return nil, false, nil
	}
	delete(s.records, key)
	if !now.Before(rec.end) {
		return nil, false, nil
	}
	return rec.value, true, nil
}

// sweepLocked drops every expired record, recomputes minExp and moves the
// sweep mark.
func (s *LocalOneTime) sweepLocked(now time.Time) {
	s.minExp = time.Time{}
	for k, r := range s.records {
		if !now.Before(r.end) {
			delete(s.records, k)
			continue
		}
		if s.minExp.IsZero() || r.end.Before(s.minExp) {
			s.minExp = r.end
		}
	}
	s.sweepAt = nextSweep(len(s.records))
}
