// Package password hashes and verifies passwords with argon2id (RFC 9106)
// and stores them in the PHC string format
//
//	$argon2id$v=19$m=65536,t=3,p=1$<salt>$<key>
//
// where salt and key are standard base64 without padding. Every hash runs
// behind a semaphore (see Hasher) because one argon2id hash at the default
// cost holds 64 MiB: without a bound a login storm would exhaust memory.
package password

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Bounds on Params. The lower memory bound is the one RFC 9106 imposes
// (8 KiB per lane); the upper bound keeps a misconfiguration (or a tampered
// stored hash) from asking for more than 4 GiB per hash.
const (
	MinMemoryPerThread = 8               // KiB per lane
	MaxMemory          = 4 * 1024 * 1024 // KiB = 4 GiB
	MinTime            = 1
	MinThreads         = 1
	MaxThreads         = 255
)

// ErrInvalidParams is wrapped by every error ParseParams and Params.Validate
// return, so callers can tell a bad configuration with errors.Is.
var ErrInvalidParams = errors.New("invalid argon2id parameters")

// Params is the argon2id cost: Memory in KiB, Time (iterations) and Threads
// (lanes, the PHC "p").
type Params struct {
	Memory  uint32
	Time    uint32
	Threads uint8
}

// DefaultParams is the production cost from DESIGN.md: m=64 MiB, t=3, p=1.
func DefaultParams() Params {
	return Params{Memory: 64 * 1024, Time: 3, Threads: 1}
}

// String renders p in the PHC parameter syntax, "m=65536,t=3,p=1", which
// ParseParams accepts back.
func (p Params) String() string {
	return fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads)
}

// Validate reports whether p is within the bounds above. The returned error
// wraps ErrInvalidParams and names the offending parameter.
func (p Params) Validate() error {
	switch {
	case p.Threads < MinThreads:
		return fmt.Errorf("%w: p=%d, must be between %d and %d", ErrInvalidParams, p.Threads, MinThreads, MaxThreads)
	case p.Time < MinTime:
		return fmt.Errorf("%w: t=%d, must be at least %d", ErrInvalidParams, p.Time, MinTime)
	case p.Memory < MinMemoryPerThread*uint32(p.Threads):
		return fmt.Errorf("%w: m=%d KiB, must be at least 8*p = %d KiB", ErrInvalidParams, p.Memory, MinMemoryPerThread*uint32(p.Threads))
	case p.Memory > MaxMemory:
		return fmt.Errorf("%w: m=%d KiB, must be at most %d KiB (4 GiB)", ErrInvalidParams, p.Memory, MaxMemory)
	}
	return nil
}

// ParseParams parses "m=<KiB>,t=<iterations>,p=<threads>" (the value of
// IDENTITY_ARGON2_PARAMS and the parameter segment of a PHC string). The
// three keys may come in any order, each exactly once; spaces around items
// are ignored. Errors wrap ErrInvalidParams and say what is wrong: an empty
// string, an unknown, repeated or missing key, a value that is not a
// decimal number of the right size, or a value out of bounds (see Validate).
func ParseParams(s string) (Params, error) {
	var (
		p                   Params
		seenM, seenT, seenP bool
	)
	if strings.TrimSpace(s) == "" {
		return Params{}, fmt.Errorf("%w: empty; want m=<KiB>,t=<iterations>,p=<threads>", ErrInvalidParams)
	}
	for item := range strings.SplitSeq(s, ",") {
		key, val, found := strings.Cut(strings.TrimSpace(item), "=")
		if !found {
			return Params{}, fmt.Errorf("%w: %q is not key=value", ErrInvalidParams, item)
		}
		switch key {
		case "m":
			if seenM {
				return Params{}, fmt.Errorf("%w: m given twice", ErrInvalidParams)
			}
			n, err := parseUint(key, val, 32)
			if err != nil {
				return Params{}, err
			}
			p.Memory, seenM = uint32(n), true
		case "t":
			if seenT {
				return Params{}, fmt.Errorf("%w: t given twice", ErrInvalidParams)
			}
			n, err := parseUint(key, val, 32)
			if err != nil {
				return Params{}, err
			}
			p.Time, seenT = uint32(n), true
		case "p":
			if seenP {
				return Params{}, fmt.Errorf("%w: p given twice", ErrInvalidParams)
			}
			n, err := parseUint(key, val, 32)
			if err != nil {
				return Params{}, err
			}
			if n > MaxThreads {
				return Params{}, fmt.Errorf("%w: p=%d, must be between %d and %d", ErrInvalidParams, n, MinThreads, MaxThreads)
			}
			p.Threads, seenP = uint8(n), true
		default:
			return Params{}, fmt.Errorf("%w: unknown key %q (want m, t, p)", ErrInvalidParams, key)
		}
	}
	if !seenM || !seenT || !seenP {
		return Params{}, fmt.Errorf("%w: %q must set all of m, t and p", ErrInvalidParams, s)
	}
	if err := p.Validate(); err != nil {
		return Params{}, err
	}
	return p, nil
}

// parseUint accepts only plain decimal digits: ParseUint alone would also
// accept "+1" and underscores are rejected by it already, but an explicit
// check keeps the accepted syntax obvious.
func parseUint(key, val string, bits int) (uint64, error) {
	if val == "" || strings.TrimLeft(val, "0123456789") != "" {
		return 0, fmt.Errorf("%w: %s=%q is not a decimal number", ErrInvalidParams, key, val)
	}
	n, err := strconv.ParseUint(val, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: %s=%s does not fit in %d bits", ErrInvalidParams, key, val, bits)
	}
	return n, nil
}
