package auth

import (
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Event types emitted by this package (CONTRACT.md §8).
const (
	EventSessionCreated   = "identity.session.created.v1"
	EventSessionRevoked   = "identity.session.revoked.v1"
	EventLoggedIn         = "identity.user.logged_in.v1"
	EventSecurityIncident = "identity.user.security_incident.v1"
)

// SessionCreatedReasonLogin is the reason of identity.session.created.v1 for a
// password login (the schema requires a reason; MFA and federation will add
// their own).
const SessionCreatedReasonLogin = "login"

// IncidentRefreshReplay is the kind of identity.user.security_incident.v1
// emitted when a used refresh token is presented again.
const IncidentRefreshReplay = "refresh_replay"

// Span names (DESIGN.md "Telemetry").
const (
	SpanLogin         = "identity.auth.login"
	SpanSessionCreate = "identity.session.create"
	SpanRefresh       = "identity.auth.refresh"
	SpanLogout        = "identity.auth.logout"
	SpanMFAVerify     = "identity.auth.mfa_verify"
)

type sessionData struct {
	SessionID string `json:"sessionId"`
	UserID    string `json:"userId"`
	TenantID  string `json:"tenantId"`
	Reason    string `json:"reason"`
}

type loggedInData struct {
	UserID    string   `json:"userId"`
	TenantID  string   `json:"tenantId"`
	SessionID string   `json:"sessionId"`
	AMR       []string `json:"amr"`
	IP        string   `json:"ip"`
}

type incidentData struct {
	UserID    string `json:"userId"`
	TenantID  string `json:"tenantId"`
	Kind      string `json:"kind"`
	SessionID string `json:"sessionId"`
	IP        string `json:"ip"`
}

func sessionCreatedEvent(now time.Time, s Session) core.Event {
	return core.NewEvent(now, EventSessionCreated, s.ID, s.TenantID,
		sessionData{SessionID: s.ID, UserID: s.UserID, TenantID: s.TenantID, Reason: SessionCreatedReasonLogin})
}

func loggedInEvent(now time.Time, s Session) core.Event {
	return core.NewEvent(now, EventLoggedIn, s.UserID, s.TenantID,
		loggedInData{UserID: s.UserID, TenantID: s.TenantID, SessionID: s.ID, AMR: s.AMR, IP: s.IP})
}

func sessionRevokedEvent(now time.Time, r RevokedSession, reason string) core.Event {
	return core.NewEvent(now, EventSessionRevoked, r.ID, r.TenantID,
		sessionData{SessionID: r.ID, UserID: r.UserID, TenantID: r.TenantID, Reason: reason})
}

func replayIncidentEvent(now time.Time, s Session, ip string) core.Event {
	return core.NewEvent(now, EventSecurityIncident, s.UserID, s.TenantID,
		incidentData{UserID: s.UserID, TenantID: s.TenantID, Kind: IncidentRefreshReplay, SessionID: s.ID, IP: ip})
}
