package token_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestEnrollmentCredential(t *testing.T) {
	f := newFixture(t, dbtest.SQLite(t), nil)
	ctx := context.Background()
	raw, exp, err := f.issuer.IssueEnrollment(ctx, token.Claims{Subject: userID, TenantID: tenantID, AMR: []string{token.AMRPassword}})
	require.NoError(t, err)
	require.Equal(t, f.clock.Now().Add(token.EnrollmentTTL).Unix(), exp.Unix(), "10 minutes")
	require.Contains(t, decodeSeg(t, strings.Split(raw, ".")[0]), `"typ":"mfa-enroll+jwt"`)

	p, err := f.verifier.Verify(ctx, raw)
	require.NoError(t, err)
	require.True(t, p.Restricted, "typ mfa-enroll+jwt maps to a restricted principal")
	require.Equal(t, userID, p.ID)
	require.Equal(t, []string{tenantID}, p.TenantIDs)

	pctx := core.WithPrincipal(ctx, p)
	_, err = core.RequirePrincipal(pctx)
	require.Equal(t, core.CodeForbidden, core.CodeOf(err), "refused everywhere a full credential is needed")
	got, err := core.RequireAnyPrincipal(pctx)
	require.NoError(t, err)
	require.Equal(t, userID, got.ID)

	at := f.issue(t, userClaims())
	p, err = f.verifier.Verify(ctx, at)
	require.NoError(t, err)
	require.False(t, p.Restricted, "an access token is not restricted")

	f.clock.Advance(token.EnrollmentTTL + token.Leeway)
	_, err = f.verifier.Verify(ctx, raw)
	require.ErrorIs(t, err, token.ErrExpired)

	hdr := f.validHeader(t)
	hdr["typ"] = "mfa-enroll"
	_, err = f.verifier.Verify(ctx, f.forge(t, hdr, f.validClaims()))
	require.ErrorIs(t, err, token.ErrType, "only the two known types")
}
