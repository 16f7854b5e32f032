package rpc

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1/identityv1connect"
)

// TestHealth checks grpc.health.v1 over gRPC and Connect: the readiness
// function decides SERVING / NOT_SERVING, unknown services are NotFound.
func TestHealth(t *testing.T) {
	down := func(context.Context) error { return errors.New("database: connection refused") }
	up := func(context.Context) error { return nil }
	cases := []struct {
		name     string
		ready    func(context.Context) error
		service  string
		want     grpchealth.Status
		wantCode connect.Code // 0 = no error
	}{
		{"no readiness function", nil, "", grpchealth.StatusServing, 0},
		{"ready", up, "", grpchealth.StatusServing, 0},
		{"ready, licensing", up, identityv1connect.LicensingServiceName, grpchealth.StatusServing, 0},
		{"ready, token", up, identityv1connect.TokenServiceName, grpchealth.StatusServing, 0},
		{"not ready", down, "", grpchealth.StatusNotServing, 0},
		{"not ready, token", down, identityv1connect.TokenServiceName, grpchealth.StatusNotServing, 0},
		{"unknown service", up, "identity.v1.Nope", 0, connect.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, Deps{}, Options{Ready: tc.ready})
			for _, opts := range [][]connect.ClientOption{{connect.WithGRPC()}, nil} {
				client := grpchealth.NewClient(srv.client, srv.url, opts...)
				res, err := client.Check(t.Context(), &grpchealth.CheckRequest{Service: tc.service})
				if tc.wantCode != 0 {
					require.Equal(t, tc.wantCode, connect.CodeOf(err))
					continue
				}
				require.NoError(t, err)
				require.Equal(t, tc.want, res.Status)
			}
		})
	}
}

// TestHealthNotServingIsLogged checks that the reason for NOT_SERVING goes
// to the log (health checks are unauthenticated, so not to the client).
func TestHealthNotServingIsLogged(t *testing.T) {
	log, logs := newCaptureLog()
	srv := startServer(t, Deps{}, Options{Logger: log, Ready: func(context.Context) error {
		return errors.New("valkey: i/o timeout")
	}})
	res, err := grpchealth.NewClient(srv.client, srv.url, connect.WithGRPC()).
		Check(t.Context(), &grpchealth.CheckRequest{})
	require.NoError(t, err)
	require.Equal(t, grpchealth.StatusNotServing, res.Status)
	recs := logs.all()
	require.Len(t, recs, 1)
	require.Contains(t, recs[0].attrs["error"], "valkey: i/o timeout")
}

// TestReflection checks that reflection v1 lists both identity.v1 services
// and serves their descriptors.
func TestReflection(t *testing.T) {
	srv := startServer(t, Deps{}, Options{})
	stream := grpcreflect.NewClient(srv.client, srv.url, connect.WithGRPC()).NewStream(t.Context())
	t.Cleanup(func() { _, _ = stream.Close() })

	names, err := stream.ListServices()
	require.NoError(t, err)
	require.ElementsMatch(t, []protoreflect.FullName{
		identityv1connect.LicensingServiceName,
		identityv1connect.TokenServiceName,
		grpchealth.HealthV1ServiceName,
	}, names)

	files, err := stream.FileContainingSymbol(identityv1connect.TokenServiceName)
	require.NoError(t, err)
	require.NotEmpty(t, files)
	require.Equal(t, "identity/v1/token.proto", files[0].GetName())
	require.Equal(t, "identity.v1", files[0].GetPackage())
}

// TestReflectionV1Alpha hides the v1 service, so the reflection client falls
// back to v1alpha, which older tools (grpcurl before 1.8.8) still use.
func TestReflectionV1Alpha(t *testing.T) {
	var alphaCalls atomic.Int32
	hideV1 := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasPrefix(r.URL.Path, "/grpc.reflection.v1."):
				http.NotFound(w, r)
				return
			case strings.HasPrefix(r.URL.Path, "/grpc.reflection.v1alpha."):
				alphaCalls.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	}
	srv := startServer(t, Deps{}, Options{}, hideV1)
	stream := grpcreflect.NewClient(srv.client, srv.url, connect.WithGRPC()).NewStream(t.Context())
	t.Cleanup(func() { _, _ = stream.Close() })

	names, err := stream.ListServices()
	require.NoError(t, err)
	require.Contains(t, names, protoreflect.FullName(identityv1connect.LicensingServiceName))
	require.Contains(t, names, protoreflect.FullName(identityv1connect.TokenServiceName))
	require.Positive(t, alphaCalls.Load(), "answered by v1alpha")
}
