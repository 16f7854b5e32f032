package user

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// Erasure names the data subject whose personal data a GDPR erasure removes
// from stored event payloads (Store.RedactEvents):
//
//   - in the user's own events — subject or data.userId is UserID — every
//     member named firstName, lastName or email, at any depth, with a string
//     value becomes "";
//   - in any event, a string value containing Email (compared
//     case-insensitively) loses it: a value that is the address becomes "",
//     a longer ASCII value has the address cut out, any other becomes "";
//   - except events about a user listed in Keep: another account that still
//     holds the same address (in another tenant), whose data it is.
//
// Ids (userId, actorId, subject) are pseudonymous and stay, and so does the
// registered event's verificationUrl (a token, no personal data; the token
// itself is deleted by the erasure).
type Erasure struct {
	UserID string
	Email  string
	// Keep lists other users whose events keep the address (the store fills it).
	Keep []string
}

// piiMembers are the member names emptied in the erased user's own events
// (ip: the client address of its logins and security incidents).
var piiMembers = []string{"firstName", "lastName", "email", "ip"}

// SearchTerm returns a lower-case substring that the stored JSON text of any
// value containing Email also contains, whatever the JSON encoder escaped (it
// is a run of characters no encoder escapes). Stores use it to pre-select
// candidate events; RedactEvent makes the exact decision. Empty when Email is.
func (e Erasure) SearchTerm() string {
	email := NormalizeEmail(e.Email)
	best, cur := "", 0
	for i := 0; i <= len(email); i++ {
		if i < len(email) && jsonSafe(email[i]) {
			continue
		}
		if run := email[cur:i]; len(run) > len(best) {
			best = run
		}
		cur = i + 1
	}
	return best
}

// jsonSafe reports whether b is printable ASCII that JSON encoders (Go's,
// Postgres jsonb output) never escape.
func jsonSafe(b byte) bool {
	return b > 0x20 && b < 0x7f && !strings.ContainsRune(`"\<>&'`, rune(b))
}

// RedactEvent returns the JSON object data of an event with subject, with e's
// personal data removed as described at Erasure, and whether anything
// changed (unchanged data is returned as is). The result is valid JSON.
func (e Erasure) RedactEvent(subject string, data []byte) ([]byte, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keep numbers exactly as stored
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, false, err
	}
	var about string
	if obj, ok := doc.(map[string]any); ok {
		about, _ = obj["userId"].(string)
	}
	own := e.UserID != "" && (subject == e.UserID || about == e.UserID)
	if !own && (slices.Contains(e.Keep, subject) || (about != "" && slices.Contains(e.Keep, about))) {
		return data, false, nil
	}
	r := redactor{email: NormalizeEmail(e.Email), own: own}
	doc = r.walk(doc)
	if !r.changed {
		return data, false, nil
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

type redactor struct {
	email   string
	own     bool
	changed bool
}

func (r *redactor) walk(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && r.own && s != "" && slices.Contains(piiMembers, k) {
				x[k] = ""
				r.changed = true
				continue
			}
			x[k] = r.walk(val)
		}
	case []any:
		for i := range x {
			x[i] = r.walk(x[i])
		}
	case string:
		return r.scrub(x)
	}
	return v
}

// scrub removes the address from s.
func (r *redactor) scrub(s string) string {
	if r.email == "" {
		return s
	}
	lower := strings.ToLower(s)
	if !strings.Contains(lower, r.email) {
		return s
	}
	r.changed = true
	if strings.TrimSpace(lower) == r.email || !isASCII(s) {
		return ""
	}
	// ASCII: lower and s align byte for byte.
	var b strings.Builder
	for {
		i := strings.Index(lower, r.email)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s, lower = s[i+len(r.email):], lower[i+len(r.email):]
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
