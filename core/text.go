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

// TextProblem returns why s cannot be taken as text a client sent — it is not
// valid UTF-8, or it holds a control character (a NUL byte among them) — or
// "" when it can. Postgres refuses NUL and invalid UTF-8 in text while SQLite
// stores them, so core checks every string it stores or looks up with this
// before it reaches a database. multiline admits tab, line feed and carriage
// return, for free text such as descriptions and reasons. Length and
// emptiness are the caller's rules.
func TextProblem(s string, multiline bool) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) && !(multiline && (r == '\t' || r == '\n' || r == '\r'))
	}):
		if multiline {
			return "must not contain control characters other than tab and line breaks"
		}
		return "must not contain control characters"
	}
	return ""
}

// MaxSubjectLen bounds the subject (sub) of an external identity, in bytes:
// OpenID Connect Core 1.0 §2 allows at most 255 ASCII characters.
const MaxSubjectLen = 255

// ValidSubject reports whether sub, an IdP's subject identifier, can be
// stored as the key of a linked identity: 1 to MaxSubjectLen bytes of text
// (TextProblem) — a NUL byte would be refused by Postgres and stored by
// SQLite.
func ValidSubject(sub string) bool {
	return sub != "" && len(sub) <= MaxSubjectLen && TextProblem(sub, false) == ""
}
