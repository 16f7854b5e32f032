package keys_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/keys"
)

func TestNewMasterKeyNeeds32Bytes(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		_, err := keys.NewMasterKey(make([]byte, n))
		require.Error(t, err, "%d bytes", n)
	}
	_, err := keys.NewMasterKey(make([]byte, 32))
	require.NoError(t, err)
}

func TestMasterKeyWrapRoundTrip(t *testing.T) {
	m := newMaster(t)
	for _, pt := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("secret"), 300)} {
		w, err := m.Wrap(pt, []byte("kid-1"))
		require.NoError(t, err)
		require.Len(t, w, 1+12+len(pt)+16, "version || nonce || ciphertext+tag")
		require.Equal(t, byte(1), w[0])
		got, err := m.Unwrap(w, []byte("kid-1"))
		require.NoError(t, err)
		require.Equal(t, len(pt), len(got))
		require.True(t, bytes.Equal(pt, got))
	}
	a, err := m.Wrap([]byte("same"), nil)
	require.NoError(t, err)
	b, err := m.Wrap([]byte("same"), nil)
	require.NoError(t, err)
	require.NotEqual(t, a, b, "fresh nonce per wrap")
}

func TestMasterKeyUnwrapRejects(t *testing.T) {
	m := newMaster(t)
	aad := []byte("kid-1")
	wrapped, err := m.Wrap([]byte("private key bytes"), aad)
	require.NoError(t, err)
	flip := func(i int) []byte {
		c := bytes.Clone(wrapped)
		c[i] ^= 0x01
		return c
	}
	cases := []struct {
		name    string
		key     *keys.MasterKey
		wrapped []byte
		aad     []byte
	}{
		{"wrong aad (moved to another row)", m, wrapped, []byte("kid-2")},
		{"missing aad", m, wrapped, nil},
		{"other master key", newMaster(t), wrapped, aad},
		{"version byte", m, flip(0), aad},
		{"nonce", m, flip(5), aad},
		{"ciphertext", m, flip(14), aad},
		{"tag", m, flip(len(wrapped) - 1), aad},
		{"truncated", m, wrapped[:len(wrapped)-1], aad},
		{"too short", m, wrapped[:20], aad},
		{"empty", m, nil, aad},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.key.Unwrap(tc.wrapped, tc.aad)
			require.Error(t, err)
		})
	}
}

func TestDeriveSecret(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, 32)
	m1, err := keys.NewMasterKey(raw)
	require.NoError(t, err)
	m2, err := keys.NewMasterKey(raw)
	require.NoError(t, err)

	s := m1.DeriveSecret("refresh-token-hmac")
	require.Len(t, s, 32)
	require.Equal(t, s, m2.DeriveSecret("refresh-token-hmac"), "deterministic for one master key")
	require.NotEqual(t, s, m1.DeriveSecret("api-key-hmac"), "labels are independent")
	require.NotEqual(t, s, newMaster(t).DeriveSecret("refresh-token-hmac"), "master keys are independent")
	require.NotEqual(t, raw, s, "never the raw master key")
}

func TestMasterKeyNeverPrinted(t *testing.T) {
	raw := bytes.Repeat([]byte{0xAB}, 32)
	m, err := keys.NewMasterKey(raw)
	require.NoError(t, err)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, m)
		require.NotContains(t, out, "ab ab", verb)
		require.NotContains(t, out, "171", verb)
		require.Contains(t, out, "redacted", verb)
	}
}
