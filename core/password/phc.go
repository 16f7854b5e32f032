package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Sizes of what Hash produces. Verify accepts other sizes within the bounds
// below (and then asks for a rehash) so that hashes imported from elsewhere
// keep working.
const (
	SaltLen = 16
	KeyLen  = 32

	minSaltLen = 8 // RFC 9106 minimum
	maxSaltLen = 1024
	// A stored key shorter than 16 bytes is rejected rather than compared:
	// an empty key would otherwise compare equal to an empty prefix of any
	// derived key and let every password in.
	minKeyLen = 16
	maxKeyLen = 1024
)

const algorithm = "argon2id"

// ErrMalformedHash is wrapped by the error Verify returns for a stored
// string that is not a well-formed argon2id v=19 PHC string.
var ErrMalformedHash = errors.New("malformed argon2id PHC string")

// b64 is the PHC encoding: standard alphabet, no padding. Strict rejects
// non-zero trailing bits so each byte string has exactly one encoding.
var b64 = base64.RawStdEncoding.Strict()

// phc is a parsed PHC string.
type phc struct {
	params Params
	salt   []byte
	key    []byte
}

// encode renders h as "$argon2id$v=19$m=…,t=…,p=…$salt$key".
func (h phc) encode() string {
	return "$" + algorithm + "$v=" + strconv.Itoa(argon2.Version) + "$" + h.params.String() +
		"$" + b64.EncodeToString(h.salt) + "$" + b64.EncodeToString(h.key)
}

// parsePHC parses s. It never computes a hash, so it is cheap to call on
// untrusted input (and to fuzz). Errors wrap ErrMalformedHash; they name
// the faulty segment but never echo the salt or key.
func parsePHC(s string) (phc, error) {
	parts := strings.Split(s, "$")
	// parts[0] is the empty string before the leading '$'.
	if len(parts) != 6 || parts[0] != "" {
		return phc{}, fmt.Errorf("%w: want 5 '$'-separated fields, got %d", ErrMalformedHash, len(parts)-1)
	}
	if parts[1] != algorithm {
		return phc{}, fmt.Errorf("%w: algorithm %q is not %s", ErrMalformedHash, truncate(parts[1]), algorithm)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, fmt.Errorf("%w: version %q is not v=%d", ErrMalformedHash, truncate(parts[2]), argon2.Version)
	}
	params, err := ParseParams(parts[3])
	if err != nil {
		return phc{}, fmt.Errorf("%w: %w", ErrMalformedHash, err)
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return phc{}, fmt.Errorf("%w: salt is not unpadded base64", ErrMalformedHash)
	}
	if len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return phc{}, fmt.Errorf("%w: salt is %d bytes, want %d..%d", ErrMalformedHash, len(salt), minSaltLen, maxSaltLen)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return phc{}, fmt.Errorf("%w: key is not unpadded base64", ErrMalformedHash)
	}
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return phc{}, fmt.Errorf("%w: key is %d bytes, want %d..%d", ErrMalformedHash, len(key), minKeyLen, maxKeyLen)
	}
	return phc{params: params, salt: salt, key: key}, nil
}

// truncate keeps error messages short when a stored value is garbage.
func truncate(s string) string {
	const n = 16
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
