package core_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
)

func TestPublicCode(t *testing.T) {
	for _, tc := range []struct {
		kind       core.Kind
		code, want string
	}{
		{core.KindConflict, core.CodeEmailDuplicate, core.CodeEmailDuplicate},
		{core.KindConflict, "", core.CodeConflict},
		{core.KindUnprocessable, "", core.CodeValidation},
		{core.KindNotFound, "IDENT_", core.CodeNotFound},
		{core.KindForbidden, "ident_forbidden", core.CodeForbidden},
		{core.KindInvalid, "IDENT\r\nX-Injected: 1", core.CodeValidation},
		{core.KindUnavailable, "GRAPHQL_PARSE_FAILED", core.CodeUnavailable},
		{core.Kind(99), "IDENT_X", "IDENT_X"},
		{core.Kind(-1), "", core.CodeInternal},
	} {
		require.Equal(t, tc.want, (&core.Error{Kind: tc.kind, Code: tc.code}).PublicCode(), "%v %q", tc.kind, tc.code)
	}
}

func TestServerFault(t *testing.T) {
	for k := core.Kind(-2); k < 12; k++ {
		want := k == core.KindInternal || k == core.KindUnavailable || k < 0 || k > core.KindUnavailable
		require.Equal(t, want, k.ServerFault(), "%d", k)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		-time.Second: 0, 0: 0, 1: 1, time.Millisecond: 1, time.Second: 1, time.Second + 1: 2,
		time.Minute: 60, time.Minute + time.Nanosecond: 61,
		5*time.Second*1e9 + 1:   5e9 + 1, // float64 seconds would round this down to 5e9
		math.MaxInt64:           math.MaxInt64/int64(time.Second) + 1,
		math.MaxInt64 - 1e9 + 2: math.MaxInt64 / int64(time.Second), // (d+1s-1)/1s would overflow
	} {
		require.Equal(t, want, core.RetryAfterSeconds(d), "%d", int64(d))
	}
}
