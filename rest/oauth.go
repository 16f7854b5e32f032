package rest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
)

// OAuthTokens is the client_credentials grant as the token endpoint uses it.
type OAuthTokens interface {
	ClientCredentials(ctx context.Context, in serviceaccount.ClientCredentialsInput) (serviceaccount.TokenGrant, error)
}

// oauthRealm is the realm of the Basic challenge on 401 answers.
const oauthRealm = `Basic realm="identity"`

// tokenJSON is the RFC 6749 §5.1 success body.
type tokenJSON struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
}

// oauthErrorJSON is the RFC 6749 §5.2 error body.
type oauthErrorJSON struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// mountOAuth registers POST /oauth2/token (absolute path), which speaks
// RFC 6749 rather than the API's conventions (CONTRACT.md §2): snake_case
// parameters in an application/x-www-form-urlencoded or JSON body, client
// authentication by client_secret_basic or client_secret_post (not both),
// and {"error", "error_description"} bodies with 400 or 401.
func mountOAuth(mux *http.ServeMux, errs Errors, svc OAuthTokens) {
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		in, err := readTokenRequest(w, r)
		if err == nil {
			var grant serviceaccount.TokenGrant
			if grant, err = svc.ClientCredentials(r.Context(), in); err == nil {
				noStore(w)
				writeJSON(w, http.StatusOK, tokenJSON{AccessToken: grant.AccessToken, TokenType: "Bearer",
					ExpiresIn: int64(grant.ExpiresIn / time.Second), Scope: grant.Scope})
				return
			}
		}
		writeOAuthError(w, r, errs, err)
	})
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// writeOAuthError renders err as RFC 6749 §5.2. Core errors (a dependency
// down, an internal failure) become server_error (500) or
// temporarily_unavailable (503), with the request logged.
func writeOAuthError(w http.ResponseWriter, r *http.Request, errs Errors, err error) {
	var oe *serviceaccount.OAuthError
	if !errors.As(err, &oe) {
		ce := core.AsError(err)
		oe = &serviceaccount.OAuthError{Code: "server_error", Description: "internal error", Status: http.StatusInternalServerError}
		if ce.Kind == core.KindUnavailable {
			oe = &serviceaccount.OAuthError{Code: "temporarily_unavailable", Status: http.StatusServiceUnavailable,
				Description: "a dependency is unavailable; try again later", RetryAfter: ce.RetryAfter}
		}
		if errs.Logger != nil {
			errs.Logger.ErrorContext(r.Context(), "token request failed", "code", ce.Code, "error", err,
				"request_id", core.RequestIDFrom(r.Context()))
		}
	}
	noStore(w)
	if oe.Status == http.StatusUnauthorized {
		// RFC 6749 §5.2 requires the challenge when Basic was used; it is
		// sent on every 401, which HTTP requires anyway.
		w.Header().Set("WWW-Authenticate", oauthRealm)
	}
	if oe.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((oe.RetryAfter+time.Second-1)/time.Second), 10))
	}
	writeJSON(w, oe.Status, oauthErrorJSON{Error: oe.Code, Description: oe.Description})
}

// readTokenRequest parses the token request: the body (form or JSON, at
// most MaxBodyBytes; parameters in the query string are ignored, repeated
// form parameters are invalid_request) and client_secret_basic.
func readTokenRequest(w http.ResponseWriter, r *http.Request) (serviceaccount.ClientCredentialsInput, error) {
	var in serviceaccount.ClientCredentialsInput
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		mt = ""
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return in, serviceaccount.InvalidRequest("the body is too large or unreadable")
	}
	switch {
	case mt == "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return in, serviceaccount.InvalidRequest("the body is not valid application/x-www-form-urlencoded")
		}
		for k, v := range form {
			if len(v) > 1 {
				return in, serviceaccount.InvalidRequest("parameter " + k + " is repeated")
			}
		}
		in = serviceaccount.ClientCredentialsInput{GrantType: form.Get("grant_type"), ClientID: form.Get("client_id"),
			ClientSecret: form.Get("client_secret"), Scope: form.Get("scope")}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var j struct {
			GrantType    string `json:"grant_type"`
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
			Scope        string `json:"scope"`
		}
		if err := json.Unmarshal(body, &j); err != nil {
			return in, serviceaccount.InvalidRequest("the body is not a valid JSON object of string parameters")
		}
		in = serviceaccount.ClientCredentialsInput{GrantType: j.GrantType, ClientID: j.ClientID,
			ClientSecret: j.ClientSecret, Scope: j.Scope}
	default:
		return in, serviceaccount.InvalidRequest("the body must be application/x-www-form-urlencoded or application/json")
	}
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return in, nil
	}
	scheme, raw, _ := strings.Cut(authz, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return in, serviceaccount.InvalidClient("unsupported client authentication scheme; use Basic or client_secret_post")
	}
	id, secret, ok := parseBasic(strings.TrimSpace(raw))
	if !ok {
		return in, serviceaccount.InvalidClient("malformed Basic credentials")
	}
	if in.ClientSecret != "" {
		return in, serviceaccount.InvalidRequest("use one client authentication method: client_secret_basic or client_secret_post, not both")
	}
	if in.ClientID != "" && in.ClientID != id {
		return in, serviceaccount.InvalidRequest("client_id in the body differs from the Basic credentials")
	}
	in.ClientID, in.ClientSecret = id, secret
	return in, nil
}

// parseBasic decodes client_secret_basic: base64(urlencode(id) ":"
// urlencode(secret)) per RFC 6749 §2.3.1.
func parseBasic(raw string) (id, secret string, ok bool) {
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return "", "", false
	}
	encID, encSecret, found := strings.Cut(string(b), ":")
	if !found {
		return "", "", false
	}
	if id, err = url.QueryUnescape(encID); err != nil {
		return "", "", false
	}
	if secret, err = url.QueryUnescape(encSecret); err != nil {
		return "", "", false
	}
	return id, secret, id != "" && secret != ""
}
