package user_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/user"
)

func TestRedactEvent(t *testing.T) {
	const me, other, twin = "0196a000-0000-7000-8000-000000000001", "0196a000-0000-7000-8000-000000000002", "0196a000-0000-7000-8000-000000000003"
	e := user.Erasure{UserID: me, Email: "Ann.Lee@Example.org", Keep: []string{twin}}
	cases := []struct {
		name, subject, in, want string
	}{
		{"own event: names and email emptied, ids and url kept", me,
			`{"userId":"` + me + `","email":"ann.lee@example.org","firstName":"Ann","verificationUrl":"https://x/verify?token=t","n":1.50}`,
			`{"email":"","firstName":"","n":1.50,"userId":"` + me + `","verificationUrl":"https://x/verify?token=t"}`},
		{"own by data.userId, nested", "session-1",
			`{"userId":"` + me + `","profile":{"lastName":"Lee","tags":["a"]}}`,
			`{"profile":{"lastName":"","tags":["a"]},"userId":"` + me + `"}`},
		{"foreign event: the address is cut out, names stay", other,
			`{"userId":"` + other + `","firstName":"Bob","cc":["ANN.LEE@example.org"],"note":"mail ann.lee@example.org now"}`,
			`{"cc":[""],"firstName":"Bob","note":"mail  now","userId":"` + other + `"}`},
		{"non-ASCII text around the address is emptied", other,
			`{"note":"Grüße an ann.lee@example.org"}`, `{"note":""}`},
		{"another account holding the address keeps it", twin,
			`{"userId":"` + twin + `","email":"ann.lee@example.org"}`, ""},
		{"nothing to do", other, `{"userId":"` + other + `","email":"bob@example.org"}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, changed, err := e.RedactEvent(tc.subject, []byte(tc.in))
			require.NoError(t, err)
			if tc.want == "" {
				require.False(t, changed)
				require.Equal(t, tc.in, string(out))
				return
			}
			require.True(t, changed)
			require.True(t, json.Valid(out))
			require.JSONEq(t, tc.want, string(out))
			if strings.Contains(tc.in, "1.50") {
				require.Contains(t, string(out), "1.50", "numbers are kept as written")
			}
		})
	}
	_, _, err := e.RedactEvent(me, []byte(`{not json`))
	require.Error(t, err)
}

func TestSearchTerm(t *testing.T) {
	for email, want := range map[string]string{
		"Ann.Lee@Example.org":        "ann.lee@example.org",
		`o'brien&sons@example.org`:   "sons@example.org",
		"a<b>@x.org":                 "@x.org",
		"":                           "",
		"very.long.local@x.org":      "very.long.local@x.org",
		"x&very.long.local.part@y.z": "very.long.local.part@y.z",
	} {
		require.Equal(t, want, user.Erasure{Email: email}.SearchTerm(), email)
	}
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"A": true, "Zoë": true, "": false, "a\x00b": false, "tab\there": false,
		string(make([]rune, 100)): false, // NULs are control characters
	} {
		require.Equal(t, ok, user.ValidName(name), "%q", name)
	}
	require.Equal(t, "Amina", user.NormalizeName("  Amina\t"))
	for _, s := range []user.Status{user.StatusPendingVerification, user.StatusActive, user.StatusSuspended, user.StatusDeactivated} {
		require.True(t, s.Valid())
	}
	require.False(t, user.Status("").Valid())
	require.False(t, user.Status("ACTIVE").Valid())
}
