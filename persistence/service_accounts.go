package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
)

// ServiceAccountStore is the service-account repository
// (serviceaccount.Store). Statements go through bound(ctx): the token
// endpoint reads an account per grant, so Postgres keeps it prepared.
type ServiceAccountStore struct {
	*DB
}

var _ serviceaccount.Store = (*ServiceAccountStore)(nil)

// NewServiceAccountStore returns the service-account repository on db.
func NewServiceAccountStore(db *DB) *ServiceAccountStore { return &ServiceAccountStore{DB: db} }

const serviceAccountColumns = `id, tenant_id, name, client_id, secret_hash, previous_secret_hash, previous_expires_at, scopes, created_by, created_at, disabled_at`

// TenantExists reports whether tenantID is a stored tenant. Errors: IDENT_UNAVAILABLE.
func (s *ServiceAccountStore) TenantExists(ctx context.Context, tenantID string) (bool, error) {
	if !core.ValidID(tenantID) {
		return false, nil
	}
	var n int
	err := s.bound(ctx).QueryRowContext(ctx, `SELECT count(*) FROM tenants WHERE id = ?`, tenantID).Scan(&n)
	return n > 0, translate(err)
}

// InsertServiceAccount adds a. Errors: KindConflict for a duplicate id or
// client id; IDENT_NOT_FOUND for an unknown tenant; IDENT_UNAVAILABLE.
func (s *ServiceAccountStore) InsertServiceAccount(ctx context.Context, a serviceaccount.Account) error {
	scopes, err := json.Marshal(saScopes(a.Scopes))
	if err != nil {
		return core.Internal(err)
	}
	_, err = s.bound(ctx).ExecContext(ctx,
		`INSERT INTO service_accounts (`+serviceAccountColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.TenantID, a.Name, a.ClientID, a.SecretHash, nullString(a.PreviousSecretHash), utcPtr(a.PreviousExpiresAt),
		string(scopes), a.CreatedBy, a.CreatedAt.UTC(), utcPtr(a.DisabledAt))
	return translate(err)
}

// ServiceAccountByID returns the account, or IDENT_NOT_FOUND (also for a
// malformed id). Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *ServiceAccountStore) ServiceAccountByID(ctx context.Context, id string) (serviceaccount.Account, error) {
	if !core.ValidID(id) {
		return serviceaccount.Account{}, core.NotFound("service account")
	}
	return s.oneServiceAccount(ctx, `SELECT `+serviceAccountColumns+` FROM service_accounts WHERE id = ?`, id)
}

// ServiceAccountByClientID returns the account with clientID, or IDENT_NOT_FOUND.
func (s *ServiceAccountStore) ServiceAccountByClientID(ctx context.Context, clientID string) (serviceaccount.Account, error) {
	return s.oneServiceAccount(ctx, `SELECT `+serviceAccountColumns+` FROM service_accounts WHERE client_id = ?`, clientID)
}

func (s *ServiceAccountStore) oneServiceAccount(ctx context.Context, query string, arg string) (serviceaccount.Account, error) {
	a, err := scanServiceAccount(s.bound(ctx).QueryRowContext(ctx, query, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return serviceaccount.Account{}, core.NotFound("service account")
	}
	return a, err
}

// ListServiceAccounts returns the accounts of tenantID ("" = every
// tenant), oldest first. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *ServiceAccountStore) ListServiceAccounts(ctx context.Context, tenantID string) ([]serviceaccount.Account, error) {
	query, args := `SELECT `+serviceAccountColumns+` FROM service_accounts ORDER BY id`, []any{}
	if tenantID != "" {
		if !core.ValidID(tenantID) {
			return []serviceaccount.Account{}, nil
		}
		query, args = `SELECT `+serviceAccountColumns+` FROM service_accounts WHERE tenant_id = ? ORDER BY id`, []any{tenantID}
	}
	rows, err := s.bound(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := []serviceaccount.Account{}
	for rows.Next() {
		a, err := scanServiceAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, translate(rows.Err())
}

// RotateServiceAccountSecret swaps the secret hash of id if it still is
// expectHash (one conditional UPDATE) and reports whether it did.
func (s *ServiceAccountStore) RotateServiceAccountSecret(ctx context.Context, id, expectHash, newHash string, previousHash *string, previousExpiresAt *time.Time) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	var prev any
	if previousHash != nil {
		prev = *previousHash
	}
	res, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE service_accounts SET secret_hash = ?, previous_secret_hash = ?, previous_expires_at = ?
		 WHERE id = ? AND secret_hash = ? AND disabled_at IS NULL`,
		newHash, prev, utcPtr(previousExpiresAt), id, expectHash)
	return serviceAccountAffected(res, err)
}

// DisableServiceAccount sets disabled_at unless it is set and reports whether it changed the row.
func (s *ServiceAccountStore) DisableServiceAccount(ctx context.Context, id string, at time.Time) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	res, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE service_accounts SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL`, at.UTC(), id)
	return serviceAccountAffected(res, err)
}

func serviceAccountAffected(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, translate(err)
	}
	return n > 0, nil
}

type serviceAccountRow interface{ Scan(dest ...any) error }

func saScopes(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// scanServiceAccount reads one row; sql.ErrNoRows passes through untranslated.
func scanServiceAccount(row serviceAccountRow) (serviceaccount.Account, error) {
	var (
		a                 serviceaccount.Account
		prevHash          sql.NullString
		prevExp, disabled sql.NullTime
		scopes            string
	)
	err := row.Scan(&a.ID, &a.TenantID, &a.Name, &a.ClientID, &a.SecretHash, &prevHash, &prevExp, &scopes,
		&a.CreatedBy, &a.CreatedAt, &disabled)
	if errors.Is(err, sql.ErrNoRows) {
		return a, err
	}
	if err != nil {
		return a, translate(err)
	}
	if err := json.Unmarshal([]byte(scopes), &a.Scopes); err != nil {
		return a, core.Internal(err)
	}
	a.PreviousSecretHash = prevHash.String
	a.CreatedAt = a.CreatedAt.UTC()
	if prevExp.Valid {
		t := prevExp.Time.UTC()
		a.PreviousExpiresAt = &t
	}
	if disabled.Valid {
		t := disabled.Time.UTC()
		a.DisabledAt = &t
	}
	return a, nil
}
