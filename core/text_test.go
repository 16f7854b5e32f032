package core_test

import (
	"encoding/json"
	"math/rand/v2"
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

func TestHasLoneSurrogateEscape(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string // JSON text, as sent
		lone bool
	}{
		"no escapes":                {`{"a":"b"}`, false},
		"empty":                     {``, false},
		"BMP escape":                {`"\u00e9\u0041"`, false},
		"pair (emoji)":              {`"\ud83d\ude00"`, false},
		"pair, upper-case hex":      {`"\uD83D\uDE00"`, false},
		"pair, mixed-case hex":      {`"\uD83d\uDe00"`, false},
		"pair, lowest and highest":  {`"\ud800\udc00\udbff\udfff"`, false},
		"pairs back to back":        {`"\ud83d\ude00\ud83d\ude01"`, false},
		"raw emoji":                 {`"😀"`, false},
		"lone high":                 {`"a\ud800b"`, true},
		"lone high, upper-case":     {`"\uDBFF"`, true},
		"lone high at end":          {`"\ud800`, true},
		"lone low":                  {`"a\udfffb"`, true},
		"lone low, upper-case":      {`"\uDC00"`, true},
		"low then high":             {`"\udc00\ud800"`, true},
		"high, non-low escape":      {`"\ud800\u0041"`, true},
		"high, high":                {`"\ud800\udbff"`, true},
		"high, high then low":       {`"\ud800\ud800\udc00"`, true},
		"high, escaped backslash":   {`"\ud800\\udc00"`, true},
		"high, then text":           {`"\ud800x\udc00"`, true},
		"high, truncated low":       {`"\ud800\udc0"`, true},
		"pair then lone low":        {`"\ud83d\ude00\ude00"`, true},
		"in a member name":          {`{"\ud800":1}`, true},
		"escaped backslash, high":   {`"\\ud800"`, false},
		"escaped backslash, low":    {`"\\udfff"`, false},
		"two escaped backslashes":   {`"\\\\ud800"`, false},
		"escaped backslash, escape": {`"\\\ud800"`, true},
		"escaped quote, then high":  {`"\"\ud800"`, true},
		"not hex":                   {`"\uZZZZ"`, false},
		"short escape":              {`"\u12"`, false},
		"trailing backslash":        {`"\`, false},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.lone, core.HasLoneSurrogateEscape([]byte(tc.in)))
			require.Equal(t, !tc.lone, core.ValidJSONText([]byte(tc.in)))
			// Where the text is JSON, encoding/json stores U+FFFD exactly
			// when the scanner finds a lone surrogate.
			var v any
			if json.Unmarshal([]byte(tc.in), &v) == nil {
				out, err := json.Marshal(v)
				require.NoError(t, err)
				require.Equal(t, tc.lone, strings.ContainsRune(string(out), utf8.RuneError), "decoded %s", out)
			}
		})
	}
	require.False(t, core.ValidJSONText([]byte("\"a\xffb\"")), "invalid UTF-8")
}

// TestHasLoneSurrogateEscapeMatchesDecoder compares the scanner with what
// encoding/json makes of random strings built from escapes and text: a
// U+FFFD in the decoded value is a surrogate escape the scanner must find.
func TestHasLoneSurrogateEscapeMatchesDecoder(t *testing.T) {
	parts := []string{`\ud800`, `\udbff`, `\udc00`, `\uDFFF`, `\ud83d`, `\ude00`, `\u0041`, `\\`, `\"`, `\n`, `a`, `é`}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		var b strings.Builder
		b.WriteByte('"')
		for range rng.IntN(6) + 1 {
			b.WriteString(parts[rng.IntN(len(parts))])
		}
		b.WriteByte('"')
		var s string
		require.NoError(t, json.Unmarshal([]byte(b.String()), &s), b.String())
		require.Equal(t, strings.ContainsRune(s, utf8.RuneError), core.HasLoneSurrogateEscape([]byte(b.String())), b.String())
	}
}
