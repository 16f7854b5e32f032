package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLoginStoresAnyUserAgent: the User-Agent header is recorded with the
// session, never validated, so no header a client can send fails a login.
// HTTP allows obs-text bytes (a Latin-1 "é") that are not UTF-8; Postgres
// refuses those in text, which made such a login a 500 there.
func TestLoginStoresAnyUserAgent(t *testing.T) {
	for name, env := range authDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			f := newAuthFixture(t, s)
			u := f.activeUser(t, f.tenantA.ID, f.email("ua"), passwordA)
			for _, tc := range []struct{ name, header, stored string }{
				{"Latin-1 byte", "Caf\xe9Clinic/2.1 (Android)", "Caf\uFFFDClinic/2.1 (Android)"},
				{"over 512 bytes, cut on a character", strings.Repeat("\u00e9", 400), strings.Repeat("\u00e9", 256)},
				{"tab", "Ward\tTablet", "Ward Tablet"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					res := s.callWith(t, http.MethodPost, "/api/v1/auth/login", "",
						map[string]any{"email": u.Email, "password": passwordA}, http.Header{"User-Agent": {tc.header}})
					tr := requireTokenResponse(t, res)
					sid := s.decodeJWT(t, tr.AccessToken).sessionID()
					require.Equal(t, 1, s.count(t, "SELECT COUNT(*) FROM sessions WHERE id = ? AND user_agent = ?", sid, tc.stored))
				})
			}
		})
	}
}
