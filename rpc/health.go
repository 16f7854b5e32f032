package rpc

import (
	"context"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
)

// readinessChecker answers grpc.health.v1.Health/Check from one readiness
// function, the same one behind /readyz, so orchestrators probing over gRPC
// and over HTTP get the same verdict.
type readinessChecker struct {
	ready func(context.Context) error
	log   *slog.Logger
	// services are the names a client may ask about; "" is the whole server.
	services map[string]bool
}

func newReadinessChecker(ready func(context.Context) error, log *slog.Logger, services ...string) *readinessChecker {
	c := &readinessChecker{ready: ready, log: log, services: map[string]bool{"": true}}
	for _, s := range services {
		c.services[s] = true
	}
	return c
}

// Check reports SERVING while the readiness function returns nil (or when
// there is none) and NOT_SERVING otherwise. An unknown service is NotFound,
// as the gRPC health protocol prescribes.
func (c *readinessChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if !c.services[req.Service] {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Service))
	}
	if c.ready != nil {
		if err := c.ready(ctx); err != nil {
			// The reason stays in the log: health checks are unauthenticated.
			c.log.WarnContext(ctx, "rpc: health check not serving", "service", req.Service, "error", err)
			return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
		}
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}
