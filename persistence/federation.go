package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/federation"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// FederationStore is the repository of federated login (federation.Store):
// tenants' OpenID Providers, the links of users to their IdP accounts
// (external identities) and the users a federated login finds or
// provisions. InTx and AddEvents come from the embedded DB, so a change and
// its event commit together. Its own statements are driver-bound (bound),
// since they sit on the login path; the user methods delegate to UserStore
// and ExchangeStore.
//
// Empty lists (Scopes, AllowedEmailDomains, ReturnURLs) and an empty
// ClientSecret are stored as such and read back as empty, non-nil values,
// whether they were written as nil or empty.
type FederationStore struct {
	*DB
}

var _ federation.Store = (*FederationStore)(nil)

// NewFederationStore returns the federation repository on db.
func NewFederationStore(db *DB) *FederationStore { return &FederationStore{DB: db} }

const providerColumns = `id, tenant_id, slug, issuer, client_id, client_secret, scopes, allowed_email_domains, return_urls, created_at, updated_at`

const externalIdentityColumns = `id, user_id, tenant_id, provider_id, issuer, subject, created_at`

// UpsertProvider stores p keyed by (TenantID, Slug) in one
// INSERT … ON CONFLICT (tenant_id, slug) DO UPDATE … RETURNING: a new row
// takes p.ID and p.CreatedAt; an existing one keeps its ID and CreatedAt and
// takes every other field of p. It returns the stored provider.
// Errors: IDENT_NOT_FOUND when the tenant does not exist (also for a
// tenant id that is not a UUID); IDENT_VALIDATION when p.ID is not a UUID;
// KindConflict when p.ID is taken by another provider; IDENT_UNAVAILABLE,
// IDENT_INTERNAL.
func (s *FederationStore) UpsertProvider(ctx context.Context, p federation.Provider) (federation.Provider, error) {
	if !core.ValidID(p.TenantID) {
		return federation.Provider{}, core.NotFound("tenant")
	}
	if !core.ValidID(p.ID) {
		return federation.Provider{}, core.InvalidField("id", "must be a UUID")
	}
	scopes, domains, urls, err := providerLists(p)
	if err != nil {
		return federation.Provider{}, err
	}
	secret := p.ClientSecret
	if secret == nil {
		secret = []byte{}
	}
	rows, err := s.bound(ctx).QueryContext(ctx,
		`INSERT INTO oidc_providers (`+providerColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (tenant_id, slug) DO UPDATE SET
		        issuer = excluded.issuer, client_id = excluded.client_id, client_secret = excluded.client_secret,
		        scopes = excluded.scopes, allowed_email_domains = excluded.allowed_email_domains,
		        return_urls = excluded.return_urls, updated_at = excluded.updated_at
		 RETURNING `+providerColumns,
		p.ID, p.TenantID, p.Slug, p.Issuer, p.ClientID, secret, scopes, domains, urls,
		p.CreatedAt.UTC(), p.UpdatedAt.UTC())
	if err != nil {
		return federation.Provider{}, providerWriteError(err)
	}
	out, err := oneProvider(rows)
	if err != nil {
		return federation.Provider{}, providerWriteError(err)
	}
	return out, nil
}

// ProviderBySlug returns the provider slug of tenantID, or IDENT_NOT_FOUND
// (also for a tenantID that is not a UUID). Errors: IDENT_UNAVAILABLE,
// IDENT_INTERNAL.
func (s *FederationStore) ProviderBySlug(ctx context.Context, tenantID, slug string) (federation.Provider, error) {
	if !core.ValidID(tenantID) || slug == "" {
		return federation.Provider{}, core.NotFound("OIDC provider")
	}
	rows, err := s.bound(ctx).QueryContext(ctx,
		`SELECT `+providerColumns+` FROM oidc_providers WHERE tenant_id = ? AND slug = ?`, tenantID, slug)
	if err != nil {
		return federation.Provider{}, translate(err)
	}
	return oneProvider(rows)
}

// ProviderByID returns the provider, or IDENT_NOT_FOUND (also for an id
// that is not a UUID). Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *FederationStore) ProviderByID(ctx context.Context, id string) (federation.Provider, error) {
	if !core.ValidID(id) {
		return federation.Provider{}, core.NotFound("OIDC provider")
	}
	rows, err := s.bound(ctx).QueryContext(ctx,
		`SELECT `+providerColumns+` FROM oidc_providers WHERE id = ?`, id)
	if err != nil {
		return federation.Provider{}, translate(err)
	}
	return oneProvider(rows)
}

// ExternalIdentity returns the link of (issuer, subject), or
// IDENT_NOT_FOUND. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *FederationStore) ExternalIdentity(ctx context.Context, issuer, subject string) (federation.ExternalIdentity, error) {
	var e federation.ExternalIdentity
	if issuer == "" || subject == "" {
		return e, core.NotFound("external identity")
	}
	err := s.bound(ctx).QueryRowContext(ctx,
		`SELECT `+externalIdentityColumns+` FROM external_identities WHERE issuer = ? AND subject = ?`, issuer, subject).
		Scan(&e.ID, &e.UserID, &e.TenantID, &e.ProviderID, &e.Issuer, &e.Subject, &e.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return federation.ExternalIdentity{}, core.NotFound("external identity")
	}
	if err != nil {
		return federation.ExternalIdentity{}, translate(err)
	}
	e.CreatedAt = e.CreatedAt.UTC()
	return e, nil
}

// InsertExternalIdentity adds e. Errors: IDENT_CONFLICT (KindConflict) when
// (issuer, subject) is linked already — the unique constraint
// external_identities_issuer_subject_key decides, so of two racing inserts
// one fails — or e.ID is taken; IDENT_NOT_FOUND for an unknown user, tenant
// or provider; IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *FederationStore) InsertExternalIdentity(ctx context.Context, e federation.ExternalIdentity) error {
	_, err := s.bound(ctx).ExecContext(ctx,
		`INSERT INTO external_identities (`+externalIdentityColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.UserID, e.TenantID, e.ProviderID, e.Issuer, e.Subject, e.CreatedAt.UTC())
	if err = translate(err); IsUniqueViolation(err) {
		return core.Wrap(err, core.KindConflict, core.CodeConflict, "this external identity is linked already")
	}
	return err
}

// UserByID returns the user, or IDENT_NOT_FOUND (also for a malformed id).
// Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *FederationStore) UserByID(ctx context.Context, id string) (user.User, error) {
	return NewUserStore(s.DB).UserByID(ctx, id)
}

// UserByEmailInTenant returns the user of tenantID with email (already
// normalized), or IDENT_NOT_FOUND (also for an empty email or a tenantID
// that is not a UUID). Note the argument order: tenant first, unlike
// ExchangeStore.UserByEmailInTenant. Errors: IDENT_UNAVAILABLE,
// IDENT_INTERNAL.
func (s *FederationStore) UserByEmailInTenant(ctx context.Context, tenantID, email string) (user.User, error) {
	return NewExchangeStore(s.DB).UserByEmailInTenant(ctx, email, tenantID)
}

// InsertUser adds u (a JIT-provisioned user, normally without password)
// through UserStore.InsertUser. Errors: IDENT_EMAIL_DUPLICATE (KindConflict)
// when the email is taken in the tenant; IDENT_NOT_FOUND for an unknown
// tenant; IDENT_UNAVAILABLE.
func (s *FederationStore) InsertUser(ctx context.Context, u user.User) error {
	return NewUserStore(s.DB).InsertUser(ctx, u)
}

// providerLists encodes p's lists as JSON arrays (nil as []).
func providerLists(p federation.Provider) (scopes, domains, urls string, err error) {
	enc := func(list []string) (string, error) {
		b, err := json.Marshal(nonNil(list))
		if err != nil {
			return "", core.Internal(err)
		}
		return string(b), nil
	}
	if scopes, err = enc(p.Scopes); err != nil {
		return "", "", "", err
	}
	if domains, err = enc(p.AllowedEmailDomains); err != nil {
		return "", "", "", err
	}
	if urls, err = enc(p.ReturnURLs); err != nil {
		return "", "", "", err
	}
	return scopes, domains, urls, nil
}

// providerWriteError re-codes a foreign-key failure of an upsert as the
// unknown tenant (the only reference of oidc_providers).
func providerWriteError(err error) error {
	err = translate(err)
	if core.KindOf(err) == core.KindNotFound {
		return core.NotFound("tenant")
	}
	return err
}

// oneProvider scans the first row of rows (and closes them), or returns
// IDENT_NOT_FOUND when there is none.
func oneProvider(rows *sql.Rows) (federation.Provider, error) {
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return federation.Provider{}, translate(err)
		}
		return federation.Provider{}, core.NotFound("OIDC provider")
	}
	var (
		p                     federation.Provider
		scopes, domains, urls string
	)
	if err := rows.Scan(&p.ID, &p.TenantID, &p.Slug, &p.Issuer, &p.ClientID, &p.ClientSecret,
		&scopes, &domains, &urls, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return federation.Provider{}, translate(err)
	}
	for _, f := range []struct {
		text string
		dst  *[]string
	}{{scopes, &p.Scopes}, {domains, &p.AllowedEmailDomains}, {urls, &p.ReturnURLs}} {
		if err := json.Unmarshal([]byte(f.text), f.dst); err != nil {
			return federation.Provider{}, core.Internal(err)
		}
		*f.dst = nonNil(*f.dst)
	}
	if p.ClientSecret == nil {
		p.ClientSecret = []byte{}
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	if err := rows.Close(); err != nil {
		return federation.Provider{}, translate(err)
	}
	return p, nil
}
