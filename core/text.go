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

// ValidJSONText reports whether data, a JSON document as a client sent it,
// holds only text the client can have meant: it is valid UTF-8 and no \u
// escape names half of a UTF-16 surrogate pair on its own. encoding/json
// decodes an invalid byte and a lone surrogate escape alike to U+FFFD, so a
// value the client did not send would be validated and stored.
func ValidJSONText(data []byte) bool {
	return utf8.Valid(data) && !HasLoneSurrogateEscape(data)
}

// HasLoneSurrogateEscape reports whether data holds a JSON escape \uD800–
// \uDBFF (a high surrogate) not immediately followed by an escape \uDC00–
// \uDFFF (a low one), or a low-surrogate escape not immediately preceded by
// a high one. Hex digits may be in either case. An escaped backslash (\\)
// starts no escape, so "\\ud800" is the six characters \ud800. data is
// scanned rather than parsed: a backslash outside a string is a syntax error
// the JSON decoder reports anyway, and an escape that is not \u is left to
// it too.
func HasLoneSurrogateEscape(data []byte) bool {
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		r, ok := unicodeEscape(data[i:])
		switch {
		case !ok:
			i++ // \\, \" and the like: the escaped byte starts nothing
		case r >= 0xDC00 && r <= 0xDFFF:
			return true // a low surrogate no high one took
		case r >= 0xD800 && r <= 0xDBFF:
			low, ok := unicodeEscape(data[i+6:])
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return true
			}
			i += 11
		default:
			i += 5
		}
	}
	return false
}

// unicodeEscape decodes the \uXXXX escape at the start of b.
func unicodeEscape(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
