package graph

import (
	"encoding/json"
	"strings"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/core/keys"
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
