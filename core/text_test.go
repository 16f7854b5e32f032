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

func TestTextProblem(t *testing.T) {
	for name, tc := range map[string]struct {
		in            string
		single, multi string // "" = accepted
	}{
		"plain":        {"Kabul Clinic 7", "", ""},
		"empty":        {"", "", ""},
		"unicode":      {"کابل \u00e9 \U0001F600", "", ""},
		"long":         {strings.Repeat("x", 100_000), "", ""},
		"NUL":          {"a\x00b", "must not contain control characters", "must not contain control characters other than tab and line breaks"},
		"BEL":          {"a\ab", "must not contain control characters", "must not contain control characters other than tab and line breaks"},
		"DEL":          {"a\x7fb", "must not contain control characters", "must not contain control characters other than tab and line breaks"},
		"C1 control":   {"a\u0085b", "must not contain control characters", "must not contain control characters other than tab and line breaks"},
		"CRLF":         {"a\r\nb", "must not contain control characters", ""},
		"tab":          {"a\tb", "must not contain control characters", ""},
		"invalid byte": {"a\xffb", "must be valid UTF-8", "must be valid UTF-8"},
		"surrogate":    {"a\xed\xa0\x80b", "must be valid UTF-8", "must be valid UTF-8"},
		"truncated":    {"a\xe2\x82", "must be valid UTF-8", "must be valid UTF-8"},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.single, core.TextProblem(tc.in, false))
			require.Equal(t, tc.multi, core.TextProblem(tc.in, true))
		})
	}
}

func TestValidSubject(t *testing.T) {
	for sub, want := range map[string]bool{
		"248289761001":           true,
		"auth0|5f7c8ec7c33c6c0":  true,
		"ünïcode-sub":            true,
		strings.Repeat("s", 255): true,
		"":                       false,
		strings.Repeat("s", 256): false,
		"nul\x00sub":             false,
		"new\nline":              false,
		"bad\xffutf8":            false,
	} {
		require.Equal(t, want, core.ValidSubject(sub), "%q", sub)
	}
}
