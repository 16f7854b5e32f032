package rpc

import (
	"context"
	"math"
	"time"

	"connectrpc.com/connect"

	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
)

// tokenServer implements identityv1connect.TokenServiceHandler. Its two
// methods have separate dependencies because token exchange is optional
// (only with an upstream realm configured) while key verification is not.
type tokenServer struct {
	exchanger TokenExchanger
	verifier  APIKeyVerifier
}

func (s *tokenServer) ExchangeToken(
	ctx context.Context,
	req *connect.Request[identityv1.ExchangeTokenRequest],
) (*connect.Response[identityv1.ExchangeTokenResponse], error) {
	if s.exchanger == nil {
		return nil, unimplemented(req.Spec(), "token exchange")
	}
	tok, err := s.exchanger.ExchangeToken(ctx, TokenExchangeRequest{
		SubjectToken:     req.Msg.GetSubjectToken(),
		SubjectTokenType: req.Msg.GetSubjectTokenType(),
		Audience:         req.Msg.GetAudience(),
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&identityv1.ExchangeTokenResponse{
		AccessToken:     tok.AccessToken,
		IssuedTokenType: tok.IssuedTokenType,
		TokenType:       tok.TokenType,
		ExpiresIn:       seconds(tok.ExpiresIn),
	}), nil
}

func (s *tokenServer) VerifyApiKey(
	ctx context.Context,
	req *connect.Request[identityv1.VerifyApiKeyRequest],
) (*connect.Response[identityv1.VerifyApiKeyResponse], error) {
	if s.verifier == nil {
		return nil, unimplemented(req.Spec(), "API key verification")
	}
	v, err := s.verifier.VerifyAPIKey(ctx, req.Msg.GetKey())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&identityv1.VerifyApiKeyResponse{
		Valid:    v.Valid,
		KeyId:    v.KeyID,
		TenantId: v.TenantID,
		Scopes:   v.Scopes,
	}), nil
}

// seconds converts d to whole seconds for the wire, rounding down (a token
// must not be believed valid longer than it is) and clamping to int32, which
// the proto uses so that JSON carries a number rather than an int64 string.
func seconds(d time.Duration) int32 {
	s := int64(d / time.Second)
	switch {
	case s < 0:
		return 0
	case s > math.MaxInt32:
		return math.MaxInt32
	default:
		return int32(s)
	}
}
