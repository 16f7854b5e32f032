package password

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseParams(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Params
	}{
		{"default", "m=65536,t=3,p=1", Params{Memory: 65536, Time: 3, Threads: 1}},
		{"any order", "p=2,m=1024,t=4", Params{Memory: 1024, Time: 4, Threads: 2}},
		{"spaces around items", " m=64 , t=1 ,p=1 ", Params{Memory: 64, Time: 1, Threads: 1}},
		{"minimum memory for p", "m=32,t=1,p=4", Params{Memory: 32, Time: 1, Threads: 4}},
		{"max memory", "m=4194304,t=1,p=1", Params{Memory: MaxMemory, Time: 1, Threads: 1}},
		{"max threads", "m=2040,t=1,p=255", Params{Memory: 2040, Time: 1, Threads: 255}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseParams(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			// String is the inverse of ParseParams.
			again, err := ParseParams(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again)
		})
	}
}

func TestParseParamsErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"blank", "   "},
		{"no equals", "m65536,t=3,p=1"},
		{"unknown key", "m=65536,t=3,p=1,x=2"},
		{"missing p", "m=65536,t=3"},
		{"missing m", "t=3,p=1"},
		{"repeated m", "m=65536,m=65536,t=3,p=1"},
		{"repeated t", "m=65536,t=3,t=3,p=1"},
		{"repeated p", "m=65536,t=3,p=1,p=1"},
		{"negative", "m=-1,t=3,p=1"},
		{"plus sign", "m=+65536,t=3,p=1"},
		{"hex", "m=0x10000,t=3,p=1"},
		{"empty value", "m=,t=3,p=1"},
		{"memory overflows uint32", "m=4294967296,t=1,p=1"},
		{"memory above 4 GiB", "m=4194305,t=1,p=1"},
		{"memory below 8*p", "m=15,t=1,p=2"},
		{"memory below 8", "m=7,t=1,p=1"},
		{"zero time", "m=65536,t=0,p=1"},
		{"zero threads", "m=65536,t=3,p=0"},
		{"threads above 255", "m=65536,t=3,p=256"},
		{"trailing comma", "m=65536,t=3,p=1,"},
		{"upper-case key", "M=65536,t=3,p=1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseParams(tc.in)
			require.Error(t, err)
			require.ErrorIs(t, err, ErrInvalidParams)
		})
	}
}

func TestParamsValidate(t *testing.T) {
	require.NoError(t, DefaultParams().Validate())
	require.Equal(t, Params{Memory: 65536, Time: 3, Threads: 1}, DefaultParams())
	require.Equal(t, "m=65536,t=3,p=1", DefaultParams().String())

	for _, p := range []Params{
		{},
		{Memory: 64, Time: 0, Threads: 1},
		{Memory: 64, Time: 1, Threads: 0},
		{Memory: 8*9 - 1, Time: 1, Threads: 9},
		{Memory: MaxMemory + 1, Time: 1, Threads: 1},
	} {
		err := p.Validate()
		require.Truef(t, errors.Is(err, ErrInvalidParams), "%+v: %v", p, err)
	}
}
