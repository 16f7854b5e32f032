package rest

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"

	"github.com/ghasi-ehealth/identity-service/core/auth"
)

// Auth is login, refresh, logout and whoami as the REST transport uses them.
type Auth interface {
	Login(ctx context.Context, in auth.LoginInput) (auth.TokenResponse, error)
	Refresh(ctx context.Context, refreshToken string) (auth.TokenResponse, error)
	Logout(ctx context.Context, refreshToken *string) error
	LogoutAll(ctx context.Context) error
	Whoami(ctx context.Context) (auth.Identity, error)
}

// tokenResponseJSON is the contract's token response (CONTRACT.md §3).
type tokenResponseJSON struct {
	AccessToken      string        `json:"accessToken"`
	RefreshToken     string        `json:"refreshToken"`
	TokenType        string        `json:"tokenType"`
	ExpiresIn        int64         `json:"expiresIn"`
	RefreshExpiresIn int64         `json:"refreshExpiresIn"`
	User             tokenUserJSON `json:"user"`
}

type tokenUserJSON struct {
	ID        string `json:"id"`
	TenantID  string `json:"tenantId"`
	Email     string `json:"email"`
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	Status    string `json:"status"`
}

func tokenResponseOut(t auth.TokenResponse) tokenResponseJSON {
	u := t.User
	return tokenResponseJSON{
		AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: "Bearer",
		ExpiresIn: seconds(t.ExpiresIn.Seconds()), RefreshExpiresIn: seconds(t.RefreshExpiresIn.Seconds()),
		User: tokenUserJSON{ID: u.ID, TenantID: u.TenantID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName, Status: string(u.Status)},
	}
}

func seconds(s float64) int64 { return int64(math.Round(s)) }

type whoamiJSON struct {
	Type      string   `json:"type"`
	ID        string   `json:"id"`
	TenantID  string   `json:"tenantId"`
	TenantIDs []string `json:"tenantIds"`
	Scopes    []string `json:"scopes,omitempty"`
	AMR       []string `json:"amr,omitempty"`
}

func mountAuth(mux *http.ServeMux, errs Errors, svc Auth) {
	mux.HandleFunc("POST /api/v1/auth/login", errs.handler(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			Email         string `json:"email"`
			Password      string `json:"password"`
			TenantID      string `json:"tenantId"`
			ContextNodeID string `json:"contextNodeId"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		t, err := svc.Login(r.Context(), auth.LoginInput{Email: in.Email, Password: in.Password, TenantID: in.TenantID,
			ContextNodeID: in.ContextNodeID, UserAgent: r.UserAgent()})
		return http.StatusOK, tokenResponseOut(t), err
	}))
	mux.HandleFunc("POST /api/v1/auth/refresh", errs.handler(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			RefreshToken string `json:"refreshToken"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		t, err := svc.Refresh(r.Context(), in.RefreshToken)
		return http.StatusOK, tokenResponseOut(t), err
	}))
	mux.HandleFunc("POST /api/v1/auth/logout", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			RefreshToken *string `json:"refreshToken"`
		}
		if err := decodeOptionalJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		return http.StatusNoContent, nil, svc.Logout(r.Context(), in.RefreshToken)
	})))
	// authenticated: the restricted MFA-enrolment credential is refused here
	// as everywhere but the enrolment endpoints and whoami.
	mux.HandleFunc("POST /api/v1/auth/logout-all", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		return http.StatusNoContent, nil, svc.LogoutAll(r.Context())
	})))
	mux.HandleFunc("GET /api/v1/auth/whoami", errs.handler(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		id, err := svc.Whoami(r.Context())
		if err != nil {
			return 0, nil, err
		}
		out := whoamiJSON{Type: string(id.Type), ID: id.ID, TenantID: id.TenantID, TenantIDs: id.TenantIDs, Scopes: id.Scopes, AMR: id.AMR}
		if out.TenantIDs == nil {
			out.TenantIDs = []string{}
		}
		return http.StatusOK, out, nil
	}))
}

// decodeOptionalJSON is DecodeJSON for endpoints whose body may be absent.
func decodeOptionalJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if r.ContentLength == 0 {
		return nil
	}
	if r.ContentLength < 0 { // chunked: peek for an empty body
		var one [1]byte
		n, err := io.ReadFull(r.Body, one[:])
		if n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			return nil
		}
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(one[:n]), r.Body))
	}
	return DecodeJSON(w, r, dst)
}
