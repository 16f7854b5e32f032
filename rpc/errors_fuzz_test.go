package rpc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/internal/errtest"
	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
	"github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1/identityv1connect"
)

// causeMarker starts every cause FuzzConnectError builds, so a leaked cause
// is recognisable whatever the fuzzed text around it.
const causeMarker = "cause-marker-7f3a"

// connectCodeOf is the contract's Connect code of each kind; anything else
// is Internal.
var connectCodeOf = map[core.Kind]connect.Code{
	core.KindInvalid:         connect.CodeInvalidArgument,
	core.KindUnauthenticated: connect.CodeUnauthenticated,
	core.KindForbidden:       connect.CodePermissionDenied,
	core.KindNotFound:        connect.CodeNotFound,
	core.KindConflict:        connect.CodeAlreadyExists,
	core.KindUnprocessable:   connect.CodeFailedPrecondition,
	core.KindRateLimited:     connect.CodeResourceExhausted,
	core.KindUnavailable:     connect.CodeUnavailable,
	core.KindInternal:        connect.CodeInternal,
}

func (c captureLog) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.records = nil
}

// FuzzConnectError sends arbitrary core errors — any kind (also out of
// range), code, message, cause, Retry-After, bare, wrapped or foreign —
// through a real identity.v1 handler on a protocol chosen by the input. The
// client always gets the kind's Connect code, "IDENT_X: msg" (never the
// cause), identity-error-code and a rounded-up retry-after; every server
// fault (Internal, Unavailable) is logged with its cause.
// Run with: go test -run '^$' -fuzz '^FuzzConnectError$' ./rpc
func FuzzConnectError(f *testing.F) {
	log, logs := newCaptureLog()
	fake := &fakeCore{}
	mux := http.NewServeMux()
	Mount(mux, fake.deps(), Options{Logger: log})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	f.Cleanup(srv.Close)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	f.Cleanup(tr.CloseIdleConnections)
	httpClient := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var clients []identityv1connect.TokenServiceClient
	for _, p := range protocols() {
		clients = append(clients, identityv1connect.NewTokenServiceClient(httpClient, srv.URL, p.opts...))
	}

	for _, s := range []struct {
		kind             int
		code, msg, cause string
		retry            int64
		shape            uint8
	}{
		{int(core.KindInvalid), core.CodeValidation, "nodeId: must be a UUID", "", 0, 0},
		{int(core.KindUnauthenticated), core.CodeInvalidCredentials, "invalid credentials", "argon2: mismatch", 0, 1},
		{int(core.KindForbidden), core.CodeCrossTenant, "the resource belongs to another tenant", "", 0, 2 << 2},
		{int(core.KindNotFound), core.CodeNotFound, "node not found", "sql: no rows", 0, 3 << 2},
		{int(core.KindConflict), "", "taken", "", 0, 4 << 2},
		{int(core.KindUnprocessable), core.CodeLicTerminated, "assignment is terminated", "", 0, 5 << 2},
		{int(core.KindRateLimited), core.CodeRateLimited, "too many requests", "", int64(1500 * time.Millisecond), 0},
		{int(core.KindUnavailable), core.CodeOverloaded, "try again", "pool exhausted", int64(time.Second), 1 << 2},
		{int(core.KindUnavailable), core.CodeUnavailable, "a dependency is unavailable", "pq: password authentication failed", 0, 2},
		{int(core.KindInternal), core.CodeInternal, "internal error", "nil map", 0, 3},
		{int(core.KindInternal), "", "", "", 0, 0},
		{99, "IDENT_X", "m", "boom", 0, 0},
		{-7, "", "", "", 0, 2},
		{int(core.KindInvalid), "IDENT\r\nX-Injected: 1", "\xff\x00%\r\n", "", 0, 1 << 2},
		{int(core.KindRateLimited), core.CodeRateLimited, "", "", 1, 0},
		{int(core.KindRateLimited), core.CodeRateLimited, "", "", 1<<63 - 1, 0},
		{int(core.KindRateLimited), core.CodeRateLimited, "", "", -1, 0},
	} {
		f.Add(s.kind, s.code, s.msg, s.cause, s.retry, s.shape)
	}

	f.Fuzz(func(t *testing.T, kind int, code, msg, cause string, retry int64, shape uint8) {
		in := &core.Error{Kind: core.Kind(kind), Code: code, Msg: msg,
			Err: errors.New(causeMarker + ": " + cause), RetryAfter: time.Duration(retry)}
		var err error
		foreign := false
		switch shape % 4 {
		case 1:
			err = fmt.Errorf("handler: %w", in)
		case 2:
			err, foreign = fmt.Errorf("query: %w", in.Err), true
		case 3:
			err = errors.Join(context.Canceled, in)
		default:
			err = in
		}
		want := in
		if foreign {
			want = core.Internal(nil)
		}
		wantConnect, ok := connectCodeOf[want.Kind]
		if !ok {
			wantConnect = connect.CodeInternal
		}

		fake.setErr(err)
		logs.reset()
		client := clients[int(shape>>2)%len(clients)]
		_, got := client.VerifyApiKey(context.Background(), connect.NewRequest(&identityv1.VerifyApiKeyRequest{Key: "k"}))
		var ce *connect.Error
		require.ErrorAs(t, got, &ce)
		require.Equal(t, wantConnect, ce.Code(), "error: %v", got)

		// identity-error-code: the core code, or the kind's generic one.
		ident := errtest.WantCode(want)
		require.Equal(t, ident, ce.Meta().Get(MetaErrorCode))
		if utf8.ValidString(want.Msg) {
			wantMsg := ident
			if want.Msg != "" {
				wantMsg += ": " + want.Msg
			}
			require.Equal(t, wantMsg, ce.Message())
		}

		// retry-after: whole seconds, at least 1, never earlier than asked.
		if want.RetryAfter > 0 {
			secs, perr := strconv.ParseInt(ce.Meta().Get(MetaRetryAfter), 10, 64)
			require.NoError(t, perr, "retry-after %q", ce.Meta().Get(MetaRetryAfter))
			wantSecs := int64(want.RetryAfter / time.Second)
			if want.RetryAfter%time.Second != 0 {
				wantSecs++
			}
			require.Equal(t, max(1, wantSecs), secs)
		} else {
			require.Empty(t, ce.Meta().Get(MetaRetryAfter))
		}

		// The cause never reaches the client; server faults are logged with it.
		if !strings.Contains(code+msg, causeMarker) {
			require.NotContains(t, got.Error(), causeMarker)
			for k, vs := range ce.Meta() {
				require.NotContains(t, k+strings.Join(vs, ","), causeMarker)
			}
		}
		if wantConnect == connect.CodeInternal || wantConnect == connect.CodeUnavailable {
			recs := logs.all()
			require.Len(t, recs, 1, "one log line per server fault")
			require.Contains(t, recs[0].attrs["error"], causeMarker, "logged with its cause")
		}
	})
}
