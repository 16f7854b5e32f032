package scope_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/scope"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr bool
	}{
		{"sorted and de-duplicated", []string{" tenant:users:read", scope.LicensingRead, "tenant:users:read"}, []string{scope.LicensingRead, scope.UsersRead}, false},
		{"unknown", []string{scope.UsersRead, "tenant:users:delete"}, nil, true},
		{"wrong case", []string{"TENANT:USERS:READ"}, nil, true},
		{"empty", nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scope.Normalize("scopes", tc.in)
			if tc.wantErr {
				require.Equal(t, core.CodeValidation, core.CodeOf(err))
				require.Contains(t, core.AsError(err).Fields, "scopes")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	for _, s := range scope.Vocabulary() {
		require.Regexp(t, `^tenant:[a-z]+(_[a-z]+)*:[a-z]+$`, s)
		require.True(t, scope.Known(s))
	}
}
