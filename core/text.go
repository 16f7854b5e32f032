package core

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// CleanText makes untrusted free text that is recorded rather than
// validated (a User-Agent header, say) safe to store and show: invalid UTF-8
// becomes U+FFFD, control characters become spaces, and the result is cut
// to at most maxBytes without splitting a character. Postgres refuses NUL
// and invalid UTF-8 in text, so storing such a value raw would fail the
// request that carried it.
func CleanText(s string, maxBytes int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) <= maxBytes {
		return s
	}
	cut := max(maxBytes, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
