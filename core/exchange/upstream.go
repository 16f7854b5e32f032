package exchange

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Upstream defaults.
const (
	// UpstreamTimeout bounds each discovery or JWKS request.
	UpstreamTimeout = 2 * time.Second
	// MinRefreshInterval is the least time between two JWKS fetches
	// triggered by an unknown kid.
	MinRefreshInterval = time.Minute
	// UpstreamLeeway is the clock skew tolerated on exp and nbf.
	UpstreamLeeway = 30 * time.Second
	// maxDocBytes bounds discovery and JWKS documents.
	maxDocBytes = 1 << 20
)

// Causes of rejected upstream tokens (wrapped; test with errors.Is).
var (
	ErrUpstreamMalformed = errors.New("upstream: malformed token")
	ErrUpstreamAlgorithm = errors.New("upstream: algorithm not allowed")
	ErrUpstreamType      = errors.New("upstream: not an access token (typ)")
	ErrUpstreamKey       = errors.New("upstream: unknown kid")
	ErrUpstreamInvalid   = errors.New("upstream: signature or claims invalid")
	ErrUpstreamAudience  = errors.New("upstream: wrong audience")
	ErrUpstreamClaim     = errors.New("upstream: required claim missing")
)

// UpstreamConfig configures an OIDCVerifier.
type UpstreamConfig struct {
	// Issuer is IDENTITY_KEYCLOAK_ISSUER, e.g. https://kc.example/realms/ghasi;
	// the JWKS is discovered at Issuer + "/.well-known/openid-configuration".
	Issuer string
	// Audience is IDENTITY_KEYCLOAK_AUDIENCE: aud must contain it, or azp
	// must equal it (Keycloak access tokens often carry the client in azp).
	Audience string
	// HTTPClient defaults to a client with UpstreamTimeout; a client without
	// a timeout gets UpstreamTimeout.
	HTTPClient *http.Client
	// Clock defaults to the system clock.
	Clock core.Clock
}

// OIDCVerifier is the UpstreamVerifier for an OpenID Connect issuer
// (Keycloak realm): RS256/ES256 tokens signed by a key of the discovered
// JWKS. The JWKS is fetched on first use and cached; an unknown kid triggers
// a refresh at most once per MinRefreshInterval.
type OIDCVerifier struct {
	issuer   string
	audience string
	client   *http.Client
	clock    core.Clock

	mu        sync.Mutex
	jwksURI   string
	keys      jwk.Set
	fetchedAt time.Time
}

// NewOIDCVerifier returns a verifier for cfg; the issuer must be an absolute
// http(s) URL. No network access happens before the first Verify.
func NewOIDCVerifier(cfg UpstreamConfig) (*OIDCVerifier, error) {
	iss := strings.TrimRight(cfg.Issuer, "/")
	if err := checkURL(iss); err != nil {
		return nil, fmt.Errorf("exchange: issuer: %w", err)
	}
	if cfg.Audience == "" {
		return nil, errors.New("exchange: the upstream audience is required")
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: UpstreamTimeout}
	} else if client.Timeout == 0 || client.Timeout > UpstreamTimeout {
		c := *client
		c.Timeout = UpstreamTimeout
		client = &c
	}
	clock := cfg.Clock
	if clock == nil {
		clock = core.SystemClock{}
	}
	return &OIDCVerifier{issuer: iss, audience: cfg.Audience, client: client, clock: clock}, nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	return nil
}

type joseHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// Verify checks raw and returns its subject, email and email_verified.
// Errors: IDENT_UNAVAILABLE when no keys can be obtained from the issuer;
// otherwise an error wrapping one of the ErrUpstream* causes.
func (v *OIDCVerifier) Verify(ctx context.Context, raw string) (Identity, error) {
	hdr, err := readHeader(raw)
	if err != nil {
		return Identity{}, err
	}
	var alg jwa.SignatureAlgorithm
	switch hdr.Alg {
	case "RS256":
		alg = jwa.RS256()
	case "ES256":
		alg = jwa.ES256()
	default:
		return Identity{}, fmt.Errorf("%w: %q", ErrUpstreamAlgorithm, hdr.Alg)
	}
	switch strings.ToLower(hdr.Typ) {
	case "", "jwt", "at+jwt":
	default:
		return Identity{}, fmt.Errorf("%w: header %q", ErrUpstreamType, hdr.Typ)
	}
	key, err := v.key(ctx, hdr.Kid)
	if err != nil {
		return Identity{}, err
	}
	if ka, ok := key.Algorithm(); ok && ka.String() != alg.String() {
		return Identity{}, fmt.Errorf("%w: key is for %s", ErrUpstreamAlgorithm, ka)
	}
	tok, err := jwt.Parse([]byte(raw),
		jwt.WithKey(alg, key),
		jwt.WithValidate(true),
		jwt.WithIssuer(v.issuer),
		jwt.WithAcceptableSkew(UpstreamLeeway),
		jwt.WithClock(jwt.ClockFunc(v.clock.Now)),
	)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUpstreamInvalid, err)
	}
	if _, ok := tok.Expiration(); !ok {
		return Identity{}, fmt.Errorf("%w: exp", ErrUpstreamClaim)
	}
	sub, ok := tok.Subject()
	if !ok || sub == "" {
		return Identity{}, fmt.Errorf("%w: sub", ErrUpstreamClaim)
	}
	if !v.audienceOK(tok) {
		return Identity{}, ErrUpstreamAudience
	}
	var typ string
	if tok.Has("typ") {
		if err := tok.Get("typ", &typ); err != nil {
			return Identity{}, fmt.Errorf("%w: claim typ", ErrUpstreamType)
		}
		if !strings.EqualFold(typ, "Bearer") && !strings.EqualFold(typ, "JWT") {
			return Identity{}, fmt.Errorf("%w: claim %q", ErrUpstreamType, typ)
		}
	}
	id := Identity{Subject: sub}
	if tok.Has("email") {
		_ = tok.Get("email", &id.Email)
	}
	if tok.Has("email_verified") {
		var ev any
		if err := tok.Get("email_verified", &ev); err == nil {
			switch x := ev.(type) {
			case bool:
				id.EmailVerified = x
			case string:
				id.EmailVerified = x == "true"
			}
		}
	}
	return id, nil
}

func (v *OIDCVerifier) audienceOK(tok jwt.Token) bool {
	if aud, ok := tok.Audience(); ok {
		for _, a := range aud {
			if a == v.audience {
				return true
			}
		}
	}
	if tok.Has("azp") {
		var azp string
		if err := tok.Get("azp", &azp); err == nil && azp == v.audience {
			return true
		}
	}
	return false
}

func readHeader(raw string) (joseHeader, error) {
	var h joseHeader
	seg, _, ok := strings.Cut(raw, ".")
	if !ok || strings.Count(raw, ".") != 2 {
		return h, ErrUpstreamMalformed
	}
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return h, ErrUpstreamMalformed
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, ErrUpstreamMalformed
	}
	return h, nil
}

// key returns the key for kid (any key when kid is empty and the set holds
// exactly one), fetching the JWKS on first use and refreshing it on an
// unknown kid at most once per MinRefreshInterval.
func (v *OIDCVerifier) key(ctx context.Context, kid string) (jwk.Key, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys != nil {
		if k, ok := lookup(v.keys, kid); ok {
			return k, nil
		}
		if v.clock.Now().Sub(v.fetchedAt) < MinRefreshInterval {
			return nil, fmt.Errorf("%w: %q", ErrUpstreamKey, kid)
		}
	}
	if err := v.refresh(ctx); err != nil {
		if v.keys == nil {
			return nil, core.Unavailable(err)
		}
		return nil, fmt.Errorf("%w: %q (refresh failed: %w)", ErrUpstreamKey, kid, err)
	}
	if k, ok := lookup(v.keys, kid); ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUpstreamKey, kid)
}

func lookup(set jwk.Set, kid string) (jwk.Key, bool) {
	if kid == "" {
		if set.Len() == 1 {
			return set.Key(0)
		}
		return nil, false
	}
	return set.LookupKeyID(kid)
}

// refresh (under v.mu) discovers the jwks_uri if not known yet and fetches
// the JWKS. The attempt time is recorded even on failure, so a failing
// upstream is not hammered.
func (v *OIDCVerifier) refresh(ctx context.Context) error {
	v.fetchedAt = v.clock.Now()
	if v.jwksURI == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := v.getJSON(ctx, v.issuer+"/.well-known/openid-configuration", &doc); err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		if strings.TrimRight(doc.Issuer, "/") != v.issuer {
			return fmt.Errorf("discovery: issuer %q does not match the configured %q", doc.Issuer, v.issuer)
		}
		if err := checkURL(doc.JWKSURI); err != nil {
			return fmt.Errorf("discovery: jwks_uri: %w", err)
		}
		v.jwksURI = doc.JWKSURI
	}
	body, err := v.get(ctx, v.jwksURI)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	v.keys = set
	return nil
}

func (v *OIDCVerifier) getJSON(ctx context.Context, u string, dst any) error {
	body, err := v.get(ctx, u)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, dst)
}

func (v *OIDCVerifier) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxDocBytes))
}
