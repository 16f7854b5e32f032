package core_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
)

func TestCleanText(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		max  int
		want string
	}{
		"plain":                   {"Mozilla/5.0 (Android 14)", 512, "Mozilla/5.0 (Android 14)"},
		"empty":                   {"", 512, ""},
		"latin-1 byte":            {"Caf\xe9App/1.0", 512, "Caf\uFFFDApp/1.0"},
		"NUL and controls":        {"a\x00b\tc\r\nd\x7f", 512, "a b c  d "},
		"cut at a byte":           {"abcdef", 4, "abcd"},
		"never split a rune":      {"ab\u00e9\u00e9", 3, "ab"},
		"never split a 4-byte":    {"a\U0001F600", 4, "a"},
		"exact fit of a rune":     {"a\U0001F600", 5, "a\U0001F600"},
		"zero budget":             {"abc", 0, ""},
		"negative budget":         {"abc", -1, ""},
		"replacement grows":       {"\xffa\xffb\xffc", 8, "\uFFFDa\uFFFDb"},
		"invalid run is one mark": {strings.Repeat("\xff", 10), 512, "\uFFFD"},
	} {
		t.Run(name, func(t *testing.T) {
			got := core.CleanText(tc.in, tc.max)
			require.Equal(t, tc.want, got)
			require.True(t, utf8.ValidString(got))
			require.LessOrEqual(t, len(got), max(tc.max, 0))
		})
	}
}
