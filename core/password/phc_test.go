package password

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/argon2"
)

func deriveForTest(plain string, salt []byte, p Params, keyLen uint32) []byte {
	return argon2.IDKey([]byte(plain), salt, p.Time, p.Memory, p.Threads, keyLen)
}

func TestPHCRoundTrip(t *testing.T) {
	in := phc{
		params: Params{Memory: 65536, Time: 3, Threads: 1},
		salt:   []byte("0123456789abcdef"),
		key:    []byte("0123456789abcdef0123456789abcdef"),
	}
	s := in.encode()
	require.Equal(t, "$argon2id$v=19$m=65536,t=3,p=1$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY", s)
	out, err := parsePHC(s)
	require.NoError(t, err)
	require.Equal(t, in, out)
}

// TestVerifyKnownVector checks interoperability with the reference C
// implementation: the strings below came from libargon2's
// argon2id_hash_encoded (password "password", salt "somesalt", 32-byte
// output). Their 8-byte salt differs from ours, so they ask for a rehash.
func TestVerifyKnownVector(t *testing.T) {
	h := NewHasher(lowParams, 1, 0)
	for _, encoded := range []string{
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$cpx6VEQbwTVZvcpxNIxOVUWZ5xnAipUmAe1cg2GMG70",
		"$argon2id$v=19$m=64,t=2,p=2$c29tZXNhbHQ$lDh0Fd+4TtGXdGWh6GJgc630K9Turh+qHdTiOh/2hZ8",
	} {
		ok, rehash, err := h.Verify(context.Background(), "password", encoded)
		require.NoError(t, err)
		require.True(t, ok, encoded)
		require.True(t, rehash, encoded)

		ok, rehash, err = h.Verify(context.Background(), "Password", encoded)
		require.NoError(t, err)
		require.False(t, ok, encoded)
		require.False(t, rehash, encoded)
	}
}

// FuzzParsePHC checks that the parser never panics, and that whatever it
// accepts is within bounds and survives an encode/parse round trip. It
// never derives a key, so hostile m/t values cost nothing.
func FuzzParsePHC(f *testing.F) {
	for _, seed := range []string{
		"$argon2id$v=19$m=65536,t=3,p=1$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY",
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$p=1,t=1,m=64$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2i$v=19$m=65536,t=3,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=16$m=65536,t=3,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=4294967295,t=4294967295,p=255$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=3,p=1$$",
		"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"$$$$$",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parsePHC(s)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformedHash)
			return
		}
		require.NoError(t, got.params.Validate())
		require.GreaterOrEqual(t, len(got.salt), minSaltLen)
		require.GreaterOrEqual(t, len(got.key), minKeyLen)
		again, err := parsePHC(got.encode())
		require.NoError(t, err)
		require.Equal(t, got, again)
	})
}

func BenchmarkHashDefault(b *testing.B) {
	h := NewHasher(DefaultParams(), 1, 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyDefault(b *testing.B) {
	h := NewHasher(DefaultParams(), 1, 0)
	ctx := context.Background()
	encoded, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ok, _, err := h.Verify(ctx, "correct horse battery staple", encoded)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
