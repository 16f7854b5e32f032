package rest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/core/exchange"
)

// TokenExchange is the RFC 8693 token exchange (*exchange.Service).
type TokenExchange interface {
	Exchange(ctx context.Context, req exchange.Request) (exchange.Result, error)
}

// exchangeJSON is the RFC 8693 §2.2.1 success body.
type exchangeJSON struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
}

// mountExchange registers POST /api/v1/auth/keycloak/token-exchange, which
// speaks RFC 8693: snake_case parameters in a form or JSON body (at most
// MaxBodyBytes). Request-shape failures (*exchange.OAuthError) are
// {"error","error_description"} with 400; a rejected subject token or an
// unknown user is the contract's 401 IDENT_INVALID_CREDENTIALS as
// problem+json, like every other core error.
func mountExchange(mux *http.ServeMux, errs Errors, svc TokenExchange) {
	mux.HandleFunc("POST /api/v1/auth/keycloak/token-exchange", func(w http.ResponseWriter, r *http.Request) {
		req, err := readExchangeRequest(w, r)
		if err == nil {
			var res exchange.Result
			if res, err = svc.Exchange(r.Context(), req); err == nil {
				noStore(w)
				writeJSON(w, http.StatusOK, exchangeJSON{AccessToken: res.AccessToken,
					IssuedTokenType: exchange.TokenTypeAccessToken, TokenType: "Bearer",
					ExpiresIn: int64((res.ExpiresIn + time.Second - 1) / time.Second)})
				return
			}
		}
		var oe *exchange.OAuthError
		if errors.As(err, &oe) {
			noStore(w)
			writeJSON(w, oe.Status, oauthErrorJSON{Error: oe.Code, Description: oe.Description})
			return
		}
		errs.Write(w, r, err)
	})
}

func exchangeInvalid(desc string) *exchange.OAuthError {
	return &exchange.OAuthError{Code: exchange.ErrInvalidRequest, Description: desc, Status: http.StatusBadRequest}
}

// readExchangeRequest parses the body (form or JSON; query parameters are
// ignored, repeated form parameters are invalid_request).
func readExchangeRequest(w http.ResponseWriter, r *http.Request) (exchange.Request, error) {
	var in exchange.Request
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		mt = ""
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return in, exchangeInvalid("the body is too large or unreadable")
	}
	switch {
	case mt == "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return in, exchangeInvalid("the body is not valid application/x-www-form-urlencoded")
		}
		for k, v := range form {
			if len(v) > 1 {
				return in, exchangeInvalid("parameter " + k + " is repeated")
			}
		}
		in = exchange.Request{GrantType: form.Get("grant_type"), SubjectToken: form.Get("subject_token"),
			SubjectTokenType: form.Get("subject_token_type"), Audience: form.Get("audience")}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var j struct {
			GrantType        string `json:"grant_type"`
			SubjectToken     string `json:"subject_token"`
			SubjectTokenType string `json:"subject_token_type"`
			Audience         string `json:"audience"`
		}
		if err := json.Unmarshal(body, &j); err != nil {
			return in, exchangeInvalid("the body is not a valid JSON object of string parameters")
		}
		in = exchange.Request(j)
	default:
		return in, exchangeInvalid("the body must be application/x-www-form-urlencoded or application/json")
	}
	return in, nil
}
