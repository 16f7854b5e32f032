package user

import (
	"context"
	"encoding/base64"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Page sizes for List (CONTRACT.md §5: `first: Int = 50`).
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// ListFilter selects users for List.
type ListFilter struct {
	// TenantID is the tenant to list; empty means the caller's tenant.
	TenantID string
	// Status filters exactly when not empty.
	Status Status
	// After is the NextCursor of the previous page (or the Cursor of the
	// last user seen); empty starts at the beginning.
	After string
	// Limit is the page size: 0 means DefaultLimit, otherwise 1..MaxLimit.
	Limit int
}

// Page is one page of users, in creation order (ids are UUIDv7).
type Page struct {
	Items []User
	// NextCursor is empty on the last page.
	NextCursor string
}

// Cursor returns the opaque pagination cursor that resumes a listing right
// after u (for Relay edges).
func Cursor(u User) string { return base64.RawURLEncoding.EncodeToString([]byte(u.ID)) }

// decodeCursor returns the user id inside cursor.
func decodeCursor(cursor string) (string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || !core.ValidID(string(raw)) {
		return "", false
	}
	return string(raw), true
}

// Get returns user id.
//
// Authorization: the user themself, a TENANT_ADMIN of the user's tenant or a
// SUPER_ADMIN. Errors: IDENT_UNAUTHENTICATED; IDENT_NOT_FOUND for a malformed
// or unknown id and for an ordinary caller asking for someone else's record;
// IDENT_CROSS_TENANT for a TENANT_ADMIN of another tenant; IDENT_UNAVAILABLE.
func (s *Service) Get(ctx context.Context, id string) (User, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return User{}, err
	}
	u, err := s.lookup(ctx, id)
	if err != nil {
		return User{}, err
	}
	if isSelf(acc, u.ID) {
		return public(u), nil
	}
	if err := mayAdminister(acc, u); err != nil {
		return User{}, err
	}
	return public(u), nil
}

// Me returns the caller's own user record (GraphQL `me`).
// Errors: IDENT_UNAUTHENTICATED; IDENT_NOT_FOUND when the caller is not a
// user (service account, API key) or the user no longer exists;
// IDENT_UNAVAILABLE.
func (s *Service) Me(ctx context.Context) (User, error) {
	p, err := core.RequirePrincipal(ctx)
	if err != nil {
		return User{}, err
	}
	if p.Type != core.PrincipalUser {
		return User{}, core.NotFound("user")
	}
	u, err := s.lookup(ctx, p.ID)
	if err != nil {
		return User{}, err
	}
	return public(u), nil
}

// List returns a page of the users of f.TenantID ordered by id (creation
// order), keyset-paginated.
//
// Authorization: TENANT_ADMIN of the tenant or SUPER_ADMIN (any tenant).
// Errors: IDENT_UNAUTHENTICATED; IDENT_CROSS_TENANT / IDENT_FORBIDDEN;
// IDENT_VALIDATION naming tenantId, status, after or limit; IDENT_UNAVAILABLE.
func (s *Service) List(ctx context.Context, f ListFilter) (Page, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return Page{}, err
	}
	if f.TenantID == "" {
		f.TenantID = acc.Principal.TenantID
	}
	if err := acc.CanAdminister(f.TenantID); err != nil {
		return Page{}, err
	}
	q := ListQuery{TenantID: f.TenantID, Status: f.Status, Limit: f.Limit}
	fields := map[string]string{}
	if !core.ValidID(f.TenantID) {
		fields["tenantId"] = "must be a UUID"
	}
	if f.Status != "" && !f.Status.Valid() {
		fields["status"] = "must be one of pending_verification, active, suspended, deactivated"
	}
	if f.After != "" {
		id, ok := decodeCursor(f.After)
		if !ok {
			fields["after"] = "not a cursor returned by this listing"
		}
		q.AfterID = id
	}
	switch {
	case f.Limit == 0:
		q.Limit = DefaultLimit
	case f.Limit < 1 || f.Limit > MaxLimit:
		fields["limit"] = "must be 1 to 200"
	}
	if len(fields) > 0 {
		return Page{}, core.Invalid("invalid user listing", fields)
	}
	// One extra row tells whether another page follows.
	q.Limit++
	users, err := s.store.ListUsers(ctx, q)
	if err != nil {
		return Page{}, err
	}
	page := Page{Items: make([]User, 0, min(len(users), q.Limit-1))}
	for i, u := range users {
		if i == q.Limit-1 {
			page.NextCursor = Cursor(page.Items[i-1])
			break
		}
		page.Items = append(page.Items, public(u))
	}
	return page, nil
}
