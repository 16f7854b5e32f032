package main

// What TestHostileInput requires of groups of answers, beyond each answer's
// envelope: that the group's hostile values got past authentication and the
// fixture's state to the checks they aim at. Some cases change state (rotate
// a secret, end a session, make a module always-on, fail client
// authentications); were one group to share a resource with another, the
// second would get 401s and 422s in whatever order the requests ran, and the
// envelope checks alone would still pass.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ghasi-ehealth/identity-service/core"
)

// reach is a requirement on the answers to the cases whose names start with
// each of prefixes: every prefix names at least one case; for every prefix,
// at least one answer satisfies some (when set); no answer satisfies none
// (when set).
type reach struct {
	what       string
	prefixes   []string
	some, none func(verdict) bool
}

func (f *hostileFixture) reaches() []reach {
	module := "PATCH /api/v1/licensing/modules/" + f.moduleCode + " body "
	alwaysOn := coded("IDENT_LIC_ALWAYS_ON_IMMUTABLE")
	return []reach{
		{what: "a hostile scope is refused after client authentication (invalid_scope)",
			prefixes: []string{"POST /oauth2/token JSON scope=", "POST /oauth2/token form scope="}, some: coded("invalid_scope")},
		{what: "a hostile client secret is checked (not throttled first)",
			prefixes: []string{"POST /oauth2/token JSON client_secret=", "POST /oauth2/token form client_secret=", "POST /oauth2/token basic secret="},
			some:     said("invalid_client", "client authentication failed")},
		{what: "no token request meets the client-auth throttle",
			prefixes: []string{"POST /oauth2/token "}, none: said("invalid_client", "too many failed client authentications")},
		{what: "the rotated account's secret is rotated",
			prefixes: []string{"POST /api/v1/service-accounts/" + f.rotateSAID + "/rotate-secret body "}, some: statusIs(http.StatusOK)},
		{what: "every logout gets past authentication and reads its body",
			prefixes: []string{"POST /api/v1/auth/logout body refreshToken="}, some: coded(core.CodeValidation, "refreshToken"), none: statusIs(http.StatusUnauthorized)},
		{what: "every logout gets past authentication", prefixes: []string{"POST /api/v1/auth/logout body .="}, none: statusIs(http.StatusUnauthorized)},
		{what: "a hostile module name is refused by name",
			prefixes: []string{module + "name=", "GraphQL updateModule in.name="}, some: coded(core.CodeValidation, "name")},
		{what: "a hostile module description is refused by name",
			prefixes: []string{module + "description=", "GraphQL updateModule in.description="}, some: coded(core.CodeValidation, "description")},
		{what: "no update of the module meets the always-on rule first",
			prefixes: []string{module, "GraphQL updateModule in.name=", "GraphQL updateModule in.description=",
				"GraphQL updateModule in.dependsOn=", "GraphQL updateModule in.code="}, none: alwaysOn},
		{what: "an escaped lone surrogate is refused as invalid UTF-8",
			prefixes: []string{"POST /api/v1/users body firstName=lone high surrogate", "POST /api/v1/users body lastName=lone low surrogate"},
			some:     said(core.CodeValidation, "the body is not valid UTF-8")},
		{what: "an escaped lone surrogate is refused as invalid UTF-8",
			prefixes: []string{"GraphQL createUser in.firstName=lone high surrogate", "GraphQL createUser in.lastName=high surrogate, non-low escape"},
			some:     said(core.CodeValidation, "the request is not valid UTF-8")},
		{what: "an escaped surrogate pair is stored",
			prefixes: []string{"POST /api/v1/users body firstName=surrogate pair"}, some: statusIs(http.StatusCreated)},
	}
}

// checkReach reports every reach the answers do not meet.
func checkReach(t *testing.T, answers []answer, reaches []reach) {
	t.Helper()
	for _, r := range reaches {
		for _, p := range r.prefixes {
			var n, some int
			var bad []string
			for _, a := range answers {
				if !strings.HasPrefix(a.name, p) {
					continue
				}
				n++
				v := verdictOf(a.res)
				if r.some != nil && r.some(v) {
					some++
				}
				if r.none != nil && r.none(v) {
					bad = append(bad, fmt.Sprintf("%s: %d %s %q", a.name, v.status, v.code, v.detail))
				}
			}
			switch {
			case n == 0:
				t.Errorf("%s: no case %q…", r.what, p)
			case r.some != nil && some == 0:
				t.Errorf("%s: none of the %d cases %q… does", r.what, n, p)
			case len(bad) > 0:
				t.Errorf("%s: %d of the %d cases %q… do not, e.g. %s", r.what, len(bad), n, p, bad[0])
			}
		}
	}
}

// verdict is an answer in any transport's envelope: its status, its code
// (a problem's or first GraphQL error's IDENT code, or the RFC 6749 error),
// its detail (or message, or error_description) and the fields it names.
type verdict struct {
	status       int
	code, detail string
	fields       map[string]any
}

func verdictOf(r apiResponse) verdict {
	var doc struct {
		Code, Detail, Error string
		Description         string `json:"error_description"`
		Fields              map[string]any
		Errors              []struct {
			Message    string
			Extensions map[string]any
		}
	}
	_ = json.Unmarshal(r.Body, &doc)
	v := verdict{status: r.Status, code: doc.Code + doc.Error, detail: doc.Detail + doc.Description, fields: doc.Fields}
	if len(doc.Errors) > 0 {
		e := doc.Errors[0]
		v.code, _ = e.Extensions["code"].(string)
		v.detail = e.Message
		v.fields, _ = e.Extensions["fields"].(map[string]any)
	}
	return v
}

// coded matches an answer with code that names every one of fields.
func coded(code string, fields ...string) func(verdict) bool {
	return func(v verdict) bool {
		for _, f := range fields {
			if _, ok := v.fields[f]; !ok {
				return false
			}
		}
		return v.code == code
	}
}

// said matches an answer with code whose detail contains detail.
func said(code, detail string) func(verdict) bool {
	return func(v verdict) bool { return v.code == code && strings.Contains(v.detail, detail) }
}

func statusIs(want int) func(verdict) bool {
	return func(v verdict) bool { return v.status == want }
}
