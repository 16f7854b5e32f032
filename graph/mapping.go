package graph

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/access"
	"github.com/ghasi-ehealth/identity-service/core/apikey"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/core/device"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/mfa"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/graph/model"
)

// Enum values are the lower-case state names in upper case (CONTRACT.md §5).
func signingKey(k keys.SigningKey) model.SigningKey {
	return model.SigningKey{
		Kid: k.KID, Algorithm: k.Algorithm, State: model.SigningKeyState(strings.ToUpper(string(k.State))),
		CreatedAt: k.CreatedAt, ActivatedAt: k.ActivatedAt, RetiredAt: k.RetiredAt, PublishUntil: k.PublishUntil,
	}
}

func eventConnection(p audit.Page) (*model.EventConnection, error) {
	conn := &model.EventConnection{Edges: make([]model.EventEdge, 0, len(p.Items)), PageInfo: &model.PageInfo{HasNextPage: p.HasNextPage}}
	if p.EndCursor != "" {
		conn.PageInfo.EndCursor = &p.EndCursor
	}
	for i, rec := range p.Items {
		data := map[string]any{}
		if err := json.Unmarshal(rec.Data, &data); err != nil {
			return nil, core.Internal(err)
		}
		evt := &model.Event{ID: rec.ID, Type: rec.Type, Subject: rec.Subject, Time: rec.Time, Data: data}
		if rec.TenantID != "" {
			tid := rec.TenantID
			evt.TenantID = &tid
		}
		conn.Edges = append(conn.Edges, model.EventEdge{Cursor: p.Cursors[i], Node: evt})
	}
	return conn, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func tenantOut(t tenancy.Tenant) *model.Tenant {
	return &model.Tenant{ID: t.ID, Name: t.Name, Slug: t.Slug, SelfRegistration: t.SelfRegistration,
		MfaRequired: t.MFARequired, CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC()}
}

func nodeOut(n tenancy.Node) *model.HierarchyNode {
	return &model.HierarchyNode{ID: n.ID, TenantID: n.TenantID, ParentID: n.ParentID, Name: n.Name, Kind: n.Kind, CreatedAt: n.CreatedAt.UTC()}
}

func membershipOut(m core.Membership) *model.Membership {
	out := &model.Membership{UserID: m.UserID, TenantID: m.TenantID, Roles: m.Roles}
	if m.NodeID != "" {
		node := m.NodeID
		out.NodeID = &node
	}
	if out.Roles == nil {
		out.Roles = []string{}
	}
	return out
}

func userOut(u user.User) *model.User {
	return &model.User{ID: u.ID, TenantID: u.TenantID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		Status: model.UserStatus(strings.ToUpper(string(u.Status))), CreatedAt: u.CreatedAt.UTC(), DeactivatedAt: u.DeactivatedAt}
}

func userConnection(p user.Page) *model.UserConnection {
	conn := &model.UserConnection{Edges: make([]model.UserEdge, 0, len(p.Items)), PageInfo: &model.PageInfo{HasNextPage: p.NextCursor != ""}}
	for _, u := range p.Items {
		conn.Edges = append(conn.Edges, model.UserEdge{Cursor: user.Cursor(u), Node: userOut(u)})
	}
	if n := len(conn.Edges); n > 0 {
		end := conn.Edges[n-1].Cursor
		conn.PageInfo.EndCursor = &end
	}
	return conn
}

func userResult(u user.User, err error) (*model.User, error) {
	if err != nil {
		return nil, err
	}
	return userOut(u), nil
}

func factorOut(f mfa.FactorInfo) model.MfaFactor {
	return model.MfaFactor{ID: f.ID, Type: model.MfaFactorType(strings.ToUpper(f.Type)), Name: f.Name,
		CreatedAt: f.CreatedAt.UTC(), VerifiedAt: f.VerifiedAt, LastUsedAt: f.LastUsedAt}
}

func apiKeyOut(k apikey.Key) *model.APIKey {
	return &model.APIKey{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, TenantID: k.TenantID,
		CreatedAt: k.CreatedAt.UTC(), ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt}
}

func createdAPIKeyOut(k apikey.Key, secret string, previousExpires *time.Time) *model.CreatedAPIKey {
	return &model.CreatedAPIKey{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Secret: secret, Scopes: k.Scopes,
		TenantID: k.TenantID, CreatedAt: k.CreatedAt.UTC(), PreviousSecretExpiresAt: previousExpires}
}

func moduleOut(m licensing.Module) *model.Module {
	deps := m.DependsOn
	if deps == nil {
		deps = []string{}
	}
	return &model.Module{Code: m.Code, Name: m.Name, Description: m.Description, DependsOn: deps, IsAlwaysOn: m.IsAlwaysOn,
		TerminatedAt: m.TerminatedAt, CreatedAt: m.CreatedAt.UTC(), UpdatedAt: m.UpdatedAt.UTC()}
}

func assignmentOut(a licensing.Assignment) *model.Assignment {
	return &model.Assignment{ID: a.ID, TenantID: a.TenantID, NodeID: a.NodeID, ModuleCode: a.ModuleCode,
		Scope: model.AssignmentScope(strings.ToUpper(string(a.Scope))), Status: model.AssignmentStatus(strings.ToUpper(string(a.Status))),
		EffectiveFrom: a.EffectiveFrom.UTC(), EffectiveTo: a.EffectiveTo, CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC()}
}

func effectiveOut(m licensing.EffectiveModule) model.EffectiveModule {
	out := model.EffectiveModule{Code: m.Code, Status: model.AssignmentStatus(strings.ToUpper(string(m.Status))), Granted: m.Granted,
		Scope: model.AssignmentScope(strings.ToUpper(string(m.Scope)))}
	if m.SourceNodeID != "" {
		out.SourceNodeID = &m.SourceNodeID
	}
	if m.AssignmentID != "" {
		out.AssignmentID = &m.AssignmentID
	}
	return out
}

func accessContextOut(c access.Context) *model.AccessContext {
	out := &model.AccessContext{UserID: c.UserID, TenantID: c.TenantID, Roles: c.Roles, Stale: c.Stale,
		Memberships: make([]model.Membership, 0, len(c.Memberships)), EffectiveModules: make([]model.EffectiveModule, 0, len(c.EffectiveModules))}
	if c.NodeID != "" {
		out.NodeID = &c.NodeID
	}
	if out.Roles == nil {
		out.Roles = []string{}
	}
	for _, m := range c.Memberships {
		out.Memberships = append(out.Memberships, *membershipOut(m))
	}
	for _, m := range c.EffectiveModules {
		out.EffectiveModules = append(out.EffectiveModules, effectiveOut(m))
	}
	return out
}

func deviceOut(d device.Device) *model.Device {
	out := &model.Device{ID: d.ID, UserID: d.UserID, TenantID: d.TenantID, Fingerprint: d.Fingerprint, Name: d.Name,
		Platform: d.Platform, Status: model.DeviceStatus(strings.ToUpper(string(d.Status))), TrustedAt: d.TrustedAt}
	if c := d.Certificate; c != nil {
		out.Certificate = &model.DeviceCertificate{SerialNumber: c.SerialNumber, ExpiresAt: c.ExpiresAt.UTC(), RevokedAt: c.RevokedAt}
	}
	return out
}

// deviceConnection returns every device as one page (a user has few).
func deviceConnection(ds []device.Device) *model.DeviceConnection {
	conn := &model.DeviceConnection{Edges: make([]model.DeviceEdge, 0, len(ds)), PageInfo: &model.PageInfo{}}
	for _, d := range ds {
		conn.Edges = append(conn.Edges, model.DeviceEdge{Cursor: d.ID, Node: deviceOut(d)})
	}
	if n := len(conn.Edges); n > 0 {
		end := conn.Edges[n-1].Cursor
		conn.PageInfo.EndCursor = &end
	}
	return conn
}
