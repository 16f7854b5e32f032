package password

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
)

func newPolicy(t testing.TB, extraListPath string) *Policy {
	t.Helper()
	p, err := NewPolicy(extraListPath)
	require.NoError(t, err)
	require.NotNil(t, p)
	return p
}

// requireViolation asserts that err is the policy's 400 for reason and that
// the password does not leak into it.
func requireViolation(t *testing.T, err error, reason string) {
	t.Helper()
	require.Error(t, err)
	var ce *core.Error
	require.True(t, errors.As(err, &ce), "want *core.Error, got %T", err)
	require.Equal(t, core.KindInvalid, ce.Kind)
	require.Equal(t, core.CodeValidation, ce.Code)
	require.Equal(t, map[string]string{PolicyField: reason}, ce.Fields)
	// The message is fixed text and there is no cause, so the password
	// cannot leak into a response or a log line.
	require.Equal(t, PolicyField+": "+reason, ce.Msg)
	require.NoError(t, ce.Err)
}

func requireVerdict(t *testing.T, err error, reason string) {
	t.Helper()
	if reason == "" {
		require.NoError(t, err)
		return
	}
	requireViolation(t, err, reason)
}

func TestPolicyLength(t *testing.T) {
	const (
		aUml       = "ä"       // U+00E4: one code point, two bytes
		aUmlDecomp = "a\u0308" // a + combining diaeresis: two code points
		emoji      = "🦊"       // one code point, four bytes
	)
	tests := []struct {
		name   string
		plain  string
		runes  int
		reason string
	}{
		{"empty", "", 0, ReasonTooShort},
		{"7 ASCII", "k3x9-qp", 7, ReasonTooShort},
		{"8 ASCII", "k3x9-qpz", 8, ""},
		{"128 ASCII", strings.Repeat("k3x9-qpz", 16), 128, ""},
		{"129 ASCII", strings.Repeat("k3x9-qpz", 16) + "w", 129, ReasonTooLong},
		{"7 two-byte", strings.Repeat(aUml, 7), 7, ReasonTooShort},
		{"8 two-byte is 8 not 16", strings.Repeat(aUml, 8), 8, ""},
		{"128 two-byte", strings.Repeat(aUml, 128), 128, ""},
		{"129 two-byte", strings.Repeat(aUml, 129), 129, ReasonTooLong},
		{"decomposed counts each code point", strings.Repeat(aUmlDecomp, 4), 8, ""},
		{"decomposed 3.5 is 7", strings.Repeat(aUmlDecomp, 3) + "b", 7, ReasonTooShort},
		{"7 four-byte", strings.Repeat(emoji, 7), 7, ReasonTooShort},
		{"8 four-byte", strings.Repeat(emoji, 8), 8, ""},
		{"128 four-byte (512 bytes)", strings.Repeat(emoji, 128), 128, ""},
		{"129 four-byte", strings.Repeat(emoji, 129), 129, ReasonTooLong},
		{"huge", strings.Repeat("x", 1<<20), 1 << 20, ReasonTooLong},
		{"invalid UTF-8 bytes count one each", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", 8, ""},
		{"spaces allowed", "        ", 8, ""},
	}
	policies := map[string]*Policy{"nil": nil, "bundled": newPolicy(t, "")}
	for _, tt := range tests {
		require.Equal(t, tt.runes, utf8.RuneCountInString(tt.plain), "%s: test data", tt.name)
		for pname, p := range policies {
			t.Run(pname+"/"+tt.name, func(t *testing.T) {
				requireVerdict(t, p.Check(tt.plain), tt.reason)
				requireVerdict(t, p.CheckFor(tt.plain, "someone@example.org"), tt.reason)
			})
		}
	}
}

func TestPolicyNoCompositionRules(t *testing.T) {
	p := newPolicy(t, "")
	for _, plain := range []string{
		"correct horse battery staple",
		"violet-tundra-ferry-9-anchor",
		"zebracrossingumbrella",          // lower case only
		"ZEBRACROSSINGUMBRELLA",          // upper case only
		"1234567890123456789",            // digits only, not on the list
		"ääääääää",                       // non-ASCII only
		"گذرواژه من خیلی طولانی است",     // Persian, with spaces
		"🦊🦊🦊 in the henhouse at 3am 🦊🦊🦊", // emoji
		"Tr0ub4dor&3",
		strings.Repeat("q7", 64), // exactly 128
	} {
		require.NoError(t, p.Check(plain), "%q", plain)
	}
}

func TestPolicyCommonPasswords(t *testing.T) {
	p := newPolicy(t, "")
	tests := []struct {
		plain  string
		reason string
	}{
		{"password", ReasonTooCommon},
		{"PASSWORD", ReasonTooCommon},
		{"PassWord", ReasonTooCommon},
		{"12345678", ReasonTooCommon},
		{"123456789", ReasonTooCommon},
		{"qwertyuiop", ReasonTooCommon},
		{"QwertyUIOP", ReasonTooCommon},
		{"iloveyou", ReasonTooCommon},
		{"ILoveYou", ReasonTooCommon},
		{"trustno1", ReasonTooCommon},
		{"1qaz2wsx", ReasonTooCommon},
		{"football", ReasonTooCommon},
		{"Sunshine", ReasonTooCommon},
		// Shorter than 8: the length rule is reported first.
		{"123456", ReasonTooShort},
		{"qwerty", ReasonTooShort},
		// Near misses are not on the list.
		{"password ", ""},
		{" password", ""},
		{"passwordpassword", ""},
	}
	for _, tt := range tests {
		t.Run(tt.plain, func(t *testing.T) {
			requireVerdict(t, p.Check(tt.plain), tt.reason)
			requireVerdict(t, p.CheckFor(tt.plain, "amina@example.org"), tt.reason)
		})
	}
}

// TestBundledList checks what parsing the embedded list yields. How long
// the parse takes is a performance target (50 ms), measured by
// BenchmarkParseBundled and recorded in docs/PERFORMANCE.md, not asserted.
func TestBundledList(t *testing.T) {
	set := bundledSet()
	require.GreaterOrEqual(t, len(set), 10_000)
	require.Equal(t, 30_000, len(set), "zxcvbn 4.4.2 ships 30,000 distinct passwords")
	for _, w := range []string{"123456", "password", "12345678", "qwerty", "123456789", "letmein", "iloveyou", "dragon"} {
		require.Contains(t, set, w)
	}
	for w := range set {
		require.Equal(t, strings.ToLower(w), w, "entries are lower-cased")
		require.NotEmpty(t, strings.TrimSpace(w))
		require.False(t, strings.HasPrefix(w, "#"), "header comment leaked: %q", w)
		require.NotContains(t, w, "\n")
		require.NotContains(t, w, "\r")
	}
	// The first data line is the most common password: the header is
	// comments only.
	for line := range strings.Lines(bundledList) {
		if !strings.HasPrefix(line, "#") && strings.TrimSpace(line) != "" {
			require.Equal(t, "123456\n", line)
			break
		}
	}
	require.Less(t, len(bundledList), 1<<20, "keep the embedded list under 1 MiB")
	require.Equal(t, len(set), newPolicy(t, "").Len())
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestPolicyExtraList(t *testing.T) {
	path := writeFile(t, "breached.txt", strings.Join([]string{
		"# breached passwords, exported 2031-01-01",
		"",
		"Summer-Harvest-2031",
		"zebra crossing umbrella\r", // CRLF line ending
		"   ",
		"  leading spaces kept",
		"#not-a-password-but-a-comment",
		"Ünïcödé-Passwört",
		strings.Repeat("z", MaxLength+1), // can never match; skipped
		"password",                       // also on the bundled list
		"no-final-newline",
	}, "\n"))
	p := newPolicy(t, path)
	bundledOnly := newPolicy(t, "")
	require.Equal(t, bundledOnly.Len()+5, p.Len())

	tests := []struct {
		plain  string
		reason string
	}{
		{"Summer-Harvest-2031", ReasonTooCommon},
		{"summer-harvest-2031", ReasonTooCommon},
		{"SUMMER-HARVEST-2031", ReasonTooCommon},
		{"zebra crossing umbrella", ReasonTooCommon},
		{"zebra crossing umbrella\r", ""},
		{"  leading spaces kept", ReasonTooCommon},
		{"leading spaces kept", ""},
		{"ünïcödé-passwört", ReasonTooCommon},
		{"ÜNÏCÖDÉ-PASSWÖRT", ReasonTooCommon},
		{"no-final-newline", ReasonTooCommon},
		{"#not-a-password-but-a-comment", ""},
		{"password", ReasonTooCommon}, // bundled list still applies
		{"violet-tundra-ferry-9-anchor", ""},
	}
	for _, tt := range tests {
		t.Run(tt.plain, func(t *testing.T) {
			requireVerdict(t, p.Check(tt.plain), tt.reason)
		})
	}
	// The extra list belongs to its Policy only.
	require.NoError(t, bundledOnly.Check("Summer-Harvest-2031"))
}

func TestPolicyExtraListEmptyFile(t *testing.T) {
	p := newPolicy(t, writeFile(t, "empty.txt", ""))
	require.Equal(t, newPolicy(t, "").Len(), p.Len())
	requireViolation(t, p.Check("password"), ReasonTooCommon)
}

func TestPolicyExtraListErrors(t *testing.T) {
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "no-such-list.txt")
		p, err := NewPolicy(path)
		require.Error(t, err)
		require.Nil(t, p)
		require.ErrorIs(t, err, fs.ErrNotExist)
		require.Contains(t, err.Error(), path)
	})
	t.Run("directory", func(t *testing.T) {
		path := t.TempDir()
		p, err := NewPolicy(path)
		require.Error(t, err)
		require.Nil(t, p)
		require.Contains(t, err.Error(), path)
	})
}

func TestNilPolicyIsLengthOnly(t *testing.T) {
	var p *Policy
	require.NoError(t, p.Check("password"))
	require.NoError(t, p.Check("12345678"))
	requireViolation(t, p.Check("1234567"), ReasonTooShort)
	requireViolation(t, p.Check(strings.Repeat("a", 129)), ReasonTooLong)
	// Context rules still apply; only the lists are missing.
	requireViolation(t, p.CheckFor("Amina@Example.org", "amina@example.org"), ReasonMatchesContext)
	require.NoError(t, p.CheckFor("password", "amina@example.org"))
	require.Zero(t, p.Len())
}

func TestPolicyCheckFor(t *testing.T) {
	p := newPolicy(t, "")
	const email = "Amina.Khan@Example.org"
	tests := []struct {
		name    string
		plain   string
		context []string
		reason  string
	}{
		{"email", "amina.khan@example.org", []string{email}, ReasonMatchesContext},
		{"email any case", "AMINA.KHAN@EXAMPLE.ORG", []string{email}, ReasonMatchesContext},
		{"local part", "amina.khan", []string{email}, ReasonMatchesContext},
		{"local part any case", "Amina.Khan", []string{email}, ReasonMatchesContext},
		{"contains email is fine", "amina.khan@example.org!", []string{email}, ""},
		{"contains local part is fine", "amina.khan-blue-river-42", []string{email}, ""},
		{"domain is not context", "example.org", []string{email}, ""},
		{"local part before last @", `"odd@name"`, []string{`"odd@name"@example.org`}, ReasonMatchesContext},
		{"second context value", "kabul clinic", []string{email, "  Kabul Clinic  "}, ReasonMatchesContext},
		{"name", "khanamina", []string{email, "Amina", "Khan", "khanamina"}, ReasonMatchesContext},
		{"no context", "amina.khan", nil, ""},
		{"empty context ignored", "violet-tundra", []string{"", "   "}, ""},
		{"length before context", "bob", []string{"bob@x.io"}, ReasonTooShort},
		{"list still applies", "password", []string{email}, ReasonTooCommon},
		{"context before list", "password", []string{"password@example.org"}, ReasonMatchesContext},
		{"unrelated", "violet-tundra-ferry-9-anchor", []string{email}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireVerdict(t, p.CheckFor(tt.plain, tt.context...), tt.reason)
		})
	}
	// Check ignores context entirely.
	require.NoError(t, p.Check("amina.khan@example.org"))
}

func TestPolicyConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			p, err := NewPolicy("")
			if err != nil {
				t.Error(err)
				return
			}
			for j := range 200 {
				plain := "password"
				if (i+j)%2 == 0 {
					plain = "violet-tundra-ferry-9-anchor"
				}
				err := p.Check(plain)
				if (plain == "password") != (err != nil) {
					t.Errorf("Check(%q) = %v", plain, err)
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkPolicyCheck(b *testing.B) {
	p := newPolicy(b, "")
	for _, bc := range []struct{ name, plain string }{
		{"accepted", "violet-tundra-ferry-9-anchor"},
		{"common", "Password"},
		{"too_long", strings.Repeat("x", 4096)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Check(bc.plain)
			}
		})
	}
}

// BenchmarkParseBundled is the cost of building the bundled list's set,
// paid once per process on first use; the target is 50 ms
// (docs/PERFORMANCE.md, "Foundation").
func BenchmarkParseBundled(b *testing.B) {
	b.ReportAllocs()
	var set map[string]struct{}
	for b.Loop() {
		set = parseBundled()
	}
	if len(set) != 30_000 {
		b.Fatalf("parsed %d entries, want 30000", len(set))
	}
}
