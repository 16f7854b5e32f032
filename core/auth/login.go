package auth

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

// maxUserAgentLen bounds the user agent stored with a session.
const maxUserAgentLen = 512

// LoginInput is POST /auth/login. TenantID and ContextNodeID are optional;
// UserAgent (optional) is stored with the session.
type LoginInput struct {
	Email         string
	Password      string
	TenantID      string
	ContextNodeID string
	UserAgent     string
}

// Login checks an email and password and opens a session.
//
// Every failure — unknown email, wrong password, a user who is suspended,
// deactivated or pending verification, an email held in several tenants
// without TenantID, a TenantID or ContextNodeID that does not fit the user —
// is the same IDENT_INVALID_CREDENTIALS, and every path computes exactly one
// argon2id hash (a dummy one when there is no single user with a password),
// so neither the answer nor its timing tells whether the account exists.
//
// Throttling happens before any hash (see throttle): the client IP
// (core.ClientIPFrom) is refused once it has too many failures, and the
// attempt is counted under the account (the normalized email, whatever the
// TenantID); when either is over its limit the answer is IDENT_RATE_LIMITED
// with RetryAfter — for a correct password too. Only a failed login
// (IDENT_INVALID_CREDENTIALS) counts against the IP, so shared NATs do not
// accumulate successes; a success, IDENT_MFA_REQUIRED or an overloaded
// hasher takes the account count back.
//
// On success the session (absolute lifetime Config.SessionTTL), its first
// refresh token, a rehash of an outdated password hash, and the events
// identity.session.created.v1 and identity.user.logged_in.v1 commit in one
// transaction, and an access token is issued with sub = user, tid = the
// user's tenant, tids = that tenant plus the tenants of the user's
// memberships, amr ["pwd"], context_node_id when given and
// jti = "<sessionId>.<random>".
//
// ContextNodeID must be a node one of the user's memberships covers: the
// membership's own node or a descendant of it; a tenant-wide membership
// covers every node of its tenant.
//
// Errors: IDENT_INVALID_CREDENTIALS; IDENT_RATE_LIMITED (RetryAfter);
// IDENT_OVERLOADED (from the hasher, RetryAfter); IDENT_UNAVAILABLE;
// IDENT_MFA_REQUIRED when Deps.SecondFactor asks for a second factor (the
// password was right, so the throttle counts are taken back as for a
// success; see VerifyMFA). A password rehash is skipped on that path.
func (s *Service) Login(ctx context.Context, in LoginInput) (resp TokenResponse, err error) {
	start := time.Now()
	ctx, span := s.tracer.Start(ctx, SpanLogin)
	outcome := telemetry.OutcomeError
	defer func() {
		s.metrics.RecordLogin(ctx, time.Since(start), outcome)
		span.SetAttributes(attribute.String("outcome", outcome))
		if err != nil {
			span.SetStatus(codes.Error, core.CodeOf(err))
		}
		span.End()
	}()

	ip := core.ClientIPFrom(ctx)
	acct, err := s.throttle(ctx, ip, in.Email)
	if err != nil {
		outcome = loginOutcome(err)
		return TokenResponse{}, err
	}
	resp, err = s.login(ctx, in, ip)
	outcome = loginOutcome(err)
	switch c := core.CodeOf(err); {
	case err == nil || c == core.CodeOverloaded || c == core.CodeMFARequired:
		s.undo(ctx, acct)
	case c == core.CodeInvalidCredentials:
		s.failedFromIP(ctx, ip)
	}
	return resp, err
}

func (s *Service) login(ctx context.Context, in LoginInput, ip string) (TokenResponse, error) {
	u, needsRehash, err := s.authenticate(ctx, in)
	if err != nil {
		return TokenResponse{}, err
	}
	ms, err := s.dir.MembershipsOfUser(ctx, u.ID)
	if err != nil {
		return TokenResponse{}, err
	}
	if in.ContextNodeID != "" {
		ok, err := s.nodeCovered(ctx, in.ContextNodeID, ms)
		if err != nil {
			return TokenResponse{}, err
		}
		if !ok {
			return TokenResponse{}, errInvalidCredentials(ErrContextNode)
		}
	}
	ua := core.CleanText(in.UserAgent, maxUserAgentLen)
	eip := eventIP(ip)
	if s.mfa != nil {
		req := ChallengeRequest{User: u, ContextNodeID: in.ContextNodeID, IP: eip, UserAgent: ua}
		if err := s.mfa.Challenge(ctx, req); err != nil {
			return TokenResponse{}, err
		}
	}
	newHash := ""
	if needsRehash {
		// Best effort: a busy hasher must not fail a login that succeeded.
		if h, err := s.hasher.Hash(ctx, in.Password); err == nil {
			newHash = h
		} else {
			s.log.WarnContext(ctx, "password rehash skipped", "userId", u.ID, "error", err)
		}
	}
	return s.openSession(ctx, u, core.TenantIDs(u.TenantID, ms), in.ContextNodeID, eip, ua, newHash, passwordAMR())
}

// authenticate finds the one user the input names and verifies the password,
// computing exactly one hash on every path.
func (s *Service) authenticate(ctx context.Context, in LoginInput) (user.User, bool, error) {
	email := user.NormalizeEmail(in.Email)
	var candidates []user.User
	// An address no user can have (empty, a NUL byte, …) is not looked up:
	// it takes the same dummy-hash path as an unknown one.
	if user.ValidEmail(email) && (in.TenantID == "" || core.ValidID(in.TenantID)) {
		var err error
		if candidates, err = s.users.UsersByEmail(ctx, email, in.TenantID); err != nil {
			return user.User{}, false, err
		}
	}
	if len(candidates) != 1 || candidates[0].PasswordHash == "" {
		return user.User{}, false, s.dummy(ctx, in.Password, ErrUnknownUser)
	}
	u := candidates[0]
	ok, needsRehash, err := s.hasher.Verify(ctx, in.Password, u.PasswordHash)
	if core.IsKind(err, core.KindUnavailable) {
		return user.User{}, false, err // overloaded or cancelled
	}
	if err != nil {
		// A malformed stored hash is a data problem; the client learns nothing.
		s.log.ErrorContext(ctx, "stored password hash unusable", "userId", u.ID, "error", err)
		return user.User{}, false, s.dummy(ctx, in.Password, err)
	}
	if !ok {
		return user.User{}, false, errInvalidCredentials(ErrWrongPassword)
	}
	if u.Status != user.StatusActive {
		return user.User{}, false, errInvalidCredentials(ErrUserInactive)
	}
	return u, needsRehash, nil
}

// dummy pays for one hash and answers IDENT_INVALID_CREDENTIALS (or the
// hasher's overload error).
func (s *Service) dummy(ctx context.Context, plain string, cause error) error {
	if err := s.hasher.VerifyDummy(ctx, plain); err != nil {
		return err
	}
	return errInvalidCredentials(cause)
}

// openSession stores a new session with its first refresh token and the
// login events, and issues the tokens, in one transaction.
func (s *Service) openSession(ctx context.Context, u user.User, tids []string, nodeID, ip, ua, newHash string, amr []string) (TokenResponse, error) {
	ctx, span := s.tracer.Start(ctx, SpanSessionCreate)
	defer span.End()
	now := s.now()
	sess := Session{
		ID: core.NewID(), UserID: u.ID, TenantID: u.TenantID, AMR: amr,
		ContextNodeID: nodeID, IP: ip, UserAgent: ua,
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionTTL), LastUsedAt: now,
	}
	refresh := newRefreshToken()
	var resp TokenResponse
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.InsertSession(ctx, sess); err != nil {
			return err
		}
		if err := s.store.InsertRefreshToken(ctx, s.hashRefreshToken(refresh), sess.ID, now); err != nil {
			return err
		}
		if newHash != "" {
			if _, err := s.users.UpdatePasswordHash(ctx, u.ID, u.PasswordHash, newHash); err != nil {
				return err
			}
		}
		if err := s.store.AddEvents(ctx, sessionCreatedEvent(now, sess), loggedInEvent(now, sess)); err != nil {
			return err
		}
		var err error
		resp, err = s.tokens(ctx, sess, u, tids, refresh, now)
		return err
	})
	if err != nil {
		span.SetStatus(codes.Error, core.CodeOf(err))
		return TokenResponse{}, err
	}
	return resp, nil
}

// tokens issues the access token of sess (its exp never beyond the session's
// end) and assembles the response.
func (s *Service) tokens(ctx context.Context, sess Session, u user.User, tids []string, refresh string, now time.Time) (TokenResponse, error) {
	claims, err := s.accessClaims(sess, u, tids, now)
	if err != nil {
		return TokenResponse{}, err
	}
	return s.issueTokens(ctx, claims, sess, u, refresh, now)
}

// accessClaims are the claims of an access token of sess for u at now; it
// lives the issuer's TTL, cut to the session's end. Errors:
// IDENT_UNAUTHENTICATED when less than a second of the session is left.
func (s *Service) accessClaims(sess Session, u user.User, tids []string, now time.Time) (token.Claims, error) {
	exp := now.Add(s.issuer.TTL())
	if sess.ExpiresAt.Before(exp) {
		exp = sess.ExpiresAt
	}
	if exp.Sub(now) < time.Second {
		return token.Claims{}, core.Unauthenticated(ErrSessionExpired)
	}
	return token.Claims{
		Subject: u.ID, TenantID: u.TenantID, TenantIDs: tids, ID: newTokenID(sess.ID),
		AMR: sess.AMR, ContextNodeID: sess.ContextNodeID, IssuedAt: now, ExpiresAt: exp,
	}, nil
}

// issueTokens signs claims and builds the token response with refresh.
func (s *Service) issueTokens(ctx context.Context, claims token.Claims, sess Session, u user.User, refresh string, now time.Time) (TokenResponse, error) {
	at, expAt, err := s.issuer.Issue(ctx, claims)
	if err != nil {
		return TokenResponse{}, err
	}
	return TokenResponse{
		AccessToken: at, RefreshToken: refresh,
		ExpiresIn:        ceilSecond(expAt.Sub(now)),
		RefreshExpiresIn: ceilSecond(sess.ExpiresAt.Sub(now)),
		User:             public(u),
	}, nil
}

// ceilSecond rounds d up to whole seconds (the wire unit).
func ceilSecond(d time.Duration) time.Duration {
	if r := d % time.Second; r != 0 {
		d += time.Second - r
	}
	return d
}

// nodeCovered reports whether one of ms covers nodeID: a membership at the
// node or at one of its ancestors, or a tenant-wide membership of the node's
// tenant. An unknown or malformed node is covered by nothing.
func (s *Service) nodeCovered(ctx context.Context, nodeID string, ms []core.Membership) (bool, error) {
	if !core.ValidID(nodeID) || len(ms) == 0 {
		return false, nil
	}
	anc, err := s.dir.Ancestors(ctx, nodeID)
	if core.IsKind(err, core.KindNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	lineage := map[string]bool{nodeID: true}
	for _, a := range anc {
		lineage[a.ID] = true
	}
	tenant := ""
	if len(anc) > 0 {
		tenant = anc[0].TenantID
	} else if nr, ok := s.dir.(NodeReader); ok {
		n, err := nr.NodeByID(ctx, nodeID)
		if err != nil && !core.IsKind(err, core.KindNotFound) {
			return false, err
		}
		tenant = n.TenantID
	}
	for _, m := range ms {
		if m.NodeID == "" && tenant != "" && m.TenantID == tenant || m.NodeID != "" && lineage[m.NodeID] {
			return true, nil
		}
	}
	return false, nil
}
