package auth_test

import (
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// lookupCountingStore counts the refresh-token lookups that reach the store.
type lookupCountingStore struct {
	auth.Store
	lookups atomic.Int64
}

func (s *lookupCountingStore) ConsumeRefreshToken(ctx context.Context, hash string, now time.Time) (string, bool, error) {
	s.lookups.Add(1)
	return s.Store.ConsumeRefreshToken(ctx, hash, now)
}

var refreshTokenShape = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// FuzzRefreshToken feeds arbitrary strings to the refresh-token parsing
// helpers (wellFormedRefreshToken, hashRefreshToken, SessionIDOf) and to
// Service.Refresh over a real SQLite store that holds a used token (r1, whose
// replay revoked its session), the live-looking token of that revoked session
// (r2) and an active session whose token is never shown to the fuzzer. It
// must never panic or succeed; the only answers are IDENT_REFRESH_REPLAY for
// r1 and IDENT_UNAUTHENTICATED for everything else (Refresh's doc comment also
// allows IDENT_UNAVAILABLE, which a local SQLite file never causes); and
// malformed input never reaches the store.
// Run with: go test -run '^$' -fuzz '^FuzzRefreshToken$' ./core/auth
func FuzzRefreshToken(f *testing.F) {
	e := newEnv(f, sqliteOnly)
	store := &lookupCountingStore{Store: e.sessions}
	e.deps.Store = store
	e.svc = auth.NewService(e.deps, e.cfg)
	ta := e.tenant(f, "a")
	e.user(f, ta, "ada@example.org", user.StatusActive)
	e.user(f, ta, "grace@example.org", user.StatusActive)
	first := e.login(f, "ada@example.org", "192.0.2.1")
	second, err := e.svc.Refresh(ipCtx("192.0.2.1"), first.RefreshToken)
	require.NoError(f, err)
	_, err = e.svc.Refresh(ipCtx("192.0.2.1"), first.RefreshToken)
	requireCode(f, err, core.KindUnauthenticated, core.CodeRefreshReplay) // revokes ada's session
	e.login(f, "grace@example.org", "192.0.2.2")                          // a live session nobody presents
	used, revoked := first.RefreshToken, second.RefreshToken
	jti, _ := claims(f, second.AccessToken)["jti"].(string)

	for _, seed := range []string{
		used,
		revoked,
		revoked[:42] + "A",
		revoked[:42],
		revoked + "A",
		revoked + "=",
		" " + revoked,
		strings.ToUpper(revoked),
		strings.NewReplacer("-", "+", "_", "/").Replace(revoked),
		revoked[:21] + "\x00" + revoked[22:],
		revoked[:21] + "é" + revoked[23:],
		e.svc.HashRefreshToken(revoked), // the stored form is no token
		second.AccessToken,              // nor is an access token
		jti,
		"." + jti,
		"a.b.c",
		strings.Repeat("A", auth.RefreshTokenLen),
		strings.Repeat("_", auth.RefreshTokenLen),
		strings.Repeat("A", 4096),
		"",
		"null",
		"\xff\xfe",
	} {
		f.Add(seed)
	}

	ctx := ipCtx("198.51.100.9")
	f.Fuzz(func(t *testing.T, raw string) {
		// SessionIDOf: the part before the first '.', never empty.
		sid, ok := auth.SessionIDOf(raw)
		if ok {
			require.NotEmpty(t, sid)
			require.NotContains(t, sid, ".")
			require.True(t, strings.HasPrefix(raw, sid+"."))
		} else {
			require.Empty(t, sid)
			require.True(t, !strings.Contains(raw, ".") || strings.HasPrefix(raw, "."), "%q", raw)
		}

		// wellFormedRefreshToken: exactly 43 base64url characters, which
		// always decode to the token's 32 bytes.
		wellFormed := auth.WellFormedRefreshToken(raw)
		require.Equal(t, refreshTokenShape.MatchString(raw), wellFormed, "%q", raw)
		if wellFormed {
			b, err := base64.RawURLEncoding.DecodeString(raw)
			require.NoError(t, err)
			require.Len(t, b, 32)
		}

		// hashRefreshToken: deterministic 64 hex digits, never the input.
		h := e.svc.HashRefreshToken(raw)
		require.Regexp(t, `^[0-9a-f]{64}$`, h)
		require.Equal(t, h, e.svc.HashRefreshToken(raw))
		require.NotEqual(t, raw, h)

		before := store.lookups.Load()
		resp, err := e.svc.Refresh(ctx, raw)
		require.Error(t, err, "refresh with %q must fail", raw)
		require.Empty(t, resp.AccessToken)
		require.Empty(t, resp.RefreshToken)
		ce := core.AsError(err)
		require.Equal(t, core.KindUnauthenticated, ce.Kind, "error: %v", err)
		if raw == used {
			require.Equal(t, core.CodeRefreshReplay, ce.Code, "error: %v", err)
		} else {
			require.Equal(t, core.CodeUnauthenticated, ce.Code, "error: %v", err)
		}
		if len(raw) >= 8 {
			require.NotContains(t, ce.Msg, raw, "the client-visible message never echoes the token")
		}
		if !wellFormed {
			require.Equal(t, before, store.lookups.Load(), "malformed input never reaches the store")
		}
	})
}
