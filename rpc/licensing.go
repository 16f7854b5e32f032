package rpc

import (
	"context"

	"connectrpc.com/connect"

	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
)

// licensingServer implements identityv1connect.LicensingServiceHandler on top
// of a LicensingResolver.
type licensingServer struct {
	resolver LicensingResolver
}

func (s *licensingServer) GetEffectiveLicenses(
	ctx context.Context,
	req *connect.Request[identityv1.GetEffectiveLicensesRequest],
) (*connect.Response[identityv1.GetEffectiveLicensesResponse], error) {
	if s.resolver == nil {
		return nil, unimplemented(req.Spec(), "the licensing resolver")
	}
	mods, err := s.resolver.EffectiveLicenses(ctx, EffectiveLicensesQuery{
		TenantID:   req.Msg.GetTenantId(),
		NodeID:     req.Msg.GetNodeId(),
		ProviderID: req.Msg.GetProviderId(),
	})
	if err != nil {
		return nil, err
	}
	out := make([]*identityv1.EffectiveModule, len(mods))
	for i, m := range mods {
		out[i] = &identityv1.EffectiveModule{
			Code:         m.Code,
			Status:       m.Status,
			Granted:      m.Granted,
			Scope:        m.Scope,
			SourceNodeId: m.SourceNodeID,
			AssignmentId: m.AssignmentID,
		}
	}
	return connect.NewResponse(&identityv1.GetEffectiveLicensesResponse{Modules: out}), nil
}

func (s *licensingServer) CheckModuleAccess(
	ctx context.Context,
	req *connect.Request[identityv1.CheckModuleAccessRequest],
) (*connect.Response[identityv1.CheckModuleAccessResponse], error) {
	if s.resolver == nil {
		return nil, unimplemented(req.Spec(), "the licensing resolver")
	}
	access, err := s.resolver.CheckModuleAccess(ctx, ModuleAccessQuery{
		TenantID:   req.Msg.GetTenantId(),
		NodeID:     req.Msg.GetNodeId(),
		ModuleCode: req.Msg.GetModuleCode(),
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&identityv1.CheckModuleAccessResponse{
		Granted: access.Granted,
		Status:  access.Status,
	}), nil
}
