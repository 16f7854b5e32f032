package password

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Length bounds of the password policy (NIST SP 800-63B §5.1.1.2), in
// Unicode code points.
const (
	MinLength = 8
	MaxLength = 128
)

// The field a policy violation names, and the reasons it gives. They are
// part of the API contract (the 400 body's fields member); clients may show
// them verbatim.
const (
	PolicyField          = "password"
	ReasonTooShort       = "must be at least 8 characters"
	ReasonTooLong        = "must be at most 128 characters"
	ReasonTooCommon      = "is too common; choose a less guessable password"
	ReasonMatchesContext = "must not be the same as your email address or other account details"
)

// bundledList is the bundled common-password list; see the header of
// common_passwords.txt for its source and licence.
//
//go:embed common_passwords.txt
var bundledList string

// bundledSet is the parsed bundledList. It is built once per process, on
// first use, and never written afterwards, so every Policy shares it.
var bundledSet = sync.OnceValue(parseBundled)

func parseBundled() map[string]struct{} {
	set := make(map[string]struct{}, 32*1024)
	for line := range strings.Lines(bundledList) {
		addEntry(set, line)
	}
	return set
}

// Policy is the password policy of NIST SP 800-63B §5.1.1.2 for passwords a
// user chooses (registration, first password, change, reset):
//
//   - at least MinLength and at most MaxLength characters, counted as
//     Unicode code points of the string as given, without normalisation
//     (a byte that is not valid UTF-8 counts as one): "ääääääää" with the
//     precomposed ä (U+00E4, two bytes in UTF-8) is 8 characters, the same
//     text with each ä decomposed (a + U+0308) is 16;
//   - no composition rules (no required digits, symbols or mixed case), and
//     spaces and any Unicode characters are allowed;
//   - not on the bundled list of the 30,000 most common passwords nor on the
//     optional extra list, compared case-insensitively.
//
// It checks new passwords only; login never consults it. A Policy is
// immutable and safe for concurrent use. A nil *Policy has no lists: its
// Check tests length only (CheckFor adds the context rule), so callers and
// tests may pass nil.
type Policy struct {
	bundled map[string]struct{} // shared, read-only
	extra   map[string]struct{} // from extraListPath; nil when none
}

// NewPolicy returns a Policy with the bundled common-password list and, when
// extraListPath is not empty, the passwords in that file
// (IDENTITY_BREACHED_PASSWORDS_FILE): UTF-8 text, one password per line;
// blank lines and lines starting with '#' are ignored, a trailing "\r" is
// removed and nothing else is trimmed. Entries are compared
// case-insensitively; entries longer than MaxLength are skipped since no
// acceptable password can equal them.
//
// The error names the path when the file cannot be opened or read; it
// wraps the underlying error (errors.Is(err, fs.ErrNotExist) for a missing
// file).
func NewPolicy(extraListPath string) (*Policy, error) {
	p := &Policy{bundled: bundledSet()}
	if extraListPath == "" {
		return p, nil
	}
	f, err := os.Open(extraListPath)
	if err != nil {
		return nil, fmt.Errorf("password: open breached-password list %q: %w", extraListPath, err)
	}
	defer f.Close()
	extra := make(map[string]struct{})
	if err := addList(extra, f); err != nil {
		return nil, fmt.Errorf("password: read breached-password list %q: %w", extraListPath, err)
	}
	p.extra = extra
	return p, nil
}

// Len returns the number of distinct entries on the policy's lists (the
// bundled list plus the extra file, counting an entry on both once);
// 0 for a nil Policy. Useful for a startup log line.
func (p *Policy) Len() int {
	if p == nil {
		return 0
	}
	n := len(p.bundled)
	for w := range p.extra {
		if _, ok := p.bundled[w]; !ok {
			n++
		}
	}
	return n
}

// Check returns nil when plain is acceptable as a new password, otherwise a
// *core.Error of KindInvalid and CodeValidation whose Fields map
// PolicyField ("password") to ReasonTooShort, ReasonTooLong or
// ReasonTooCommon (checked in that order; the first failing rule is
// reported). The password itself never appears in the error.
func (p *Policy) Check(plain string) error {
	if err := checkLength(plain); err != nil {
		return err
	}
	if p.isListed(plain) {
		return core.InvalidField(PolicyField, ReasonTooCommon)
	}
	return nil
}

// CheckFor is Check plus one more rule: plain must not equal, ignoring case,
// any of context — values an attacker targeting this account would try
// first, such as the user's email address, first and last name or the
// tenant's name. For a context value that contains '@' the part before the
// last '@' (an email's local part) is compared as well, so for
// "amina.khan@example.org" both that address and "amina.khan" are refused.
// Context values are trimmed of surrounding white space; empty ones are
// ignored. The violation's reason is ReasonMatchesContext; the length rules
// take precedence over it, and it over the list.
//
// Only equality is checked, not containment: "amina.khan-blue-river-42" is
// fine (NIST SP 800-63B asks for a check against context-specific words,
// not for a ban on passwords that contain them).
func (p *Policy) CheckFor(plain string, context ...string) error {
	if err := checkLength(plain); err != nil {
		return err
	}
	for _, c := range context {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if strings.EqualFold(plain, c) {
			return core.InvalidField(PolicyField, ReasonMatchesContext)
		}
		if at := strings.LastIndexByte(c, '@'); at > 0 && strings.EqualFold(plain, c[:at]) {
			return core.InvalidField(PolicyField, ReasonMatchesContext)
		}
	}
	if p.isListed(plain) {
		return core.InvalidField(PolicyField, ReasonTooCommon)
	}
	return nil
}

// checkLength applies the length rules in code points.
func checkLength(plain string) error {
	// Every code point takes at most utf8.UTFMax bytes (and an invalid byte
	// counts as one code point), so a longer string is too long without
	// counting: this bounds the work a huge request body can cause.
	if len(plain) > MaxLength*utf8.UTFMax {
		return core.InvalidField(PolicyField, ReasonTooLong)
	}
	switch n := utf8.RuneCountInString(plain); {
	case n < MinLength:
		return core.InvalidField(PolicyField, ReasonTooShort)
	case n > MaxLength:
		return core.InvalidField(PolicyField, ReasonTooLong)
	}
	return nil
}

// isListed reports whether plain is on one of p's lists, ignoring case. A
// nil Policy has no lists.
func (p *Policy) isListed(plain string) bool {
	if p == nil {
		return false
	}
	key := strings.ToLower(plain)
	if _, ok := p.bundled[key]; ok {
		return true
	}
	_, ok := p.extra[key]
	return ok
}

// addList adds the entries read from r to set (format at NewPolicy). It
// reads line by line, so a large file is never held in memory whole.
func addList(set map[string]struct{}, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		addEntry(set, line)
		if err != nil { // io.EOF
			return nil
		}
	}
}

// addEntry adds one line of a list, lower-cased and without its line
// ending, to set unless it is blank, a '#' comment or longer than MaxLength.
func addEntry(set map[string]struct{}, line string) {
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") ||
		len(line) > MaxLength*utf8.UTFMax || utf8.RuneCountInString(line) > MaxLength {
		return
	}
	// ToLower returns line itself when it has no upper case, so the bundled
	// (already lower-case) entries share the embedded text instead of
	// copying it.
	set[strings.ToLower(line)] = struct{}{}
}
