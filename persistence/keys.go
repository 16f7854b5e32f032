package persistence

import (
	"context"
	"time"

	"github.com/ghasi-ehealth/identity-service/core/keys"
)

// KeyStore is the signing keyring table (keys.Store). InTx and AddEvents come
// from the embedded DB, so a rotation and its event commit together.
type KeyStore struct {
	*DB
}

var _ keys.Store = (*KeyStore)(nil)

// NewKeyStore returns the keyring repository on db.
func NewKeyStore(db *DB) *KeyStore { return &KeyStore{DB: db} }

// keyRow is a signing_keys row as bun scans it.
type keyRow struct {
	KID               string     `bun:"kid"`
	Purpose           string     `bun:"purpose"`
	Algorithm         string     `bun:"algorithm"`
	State             string     `bun:"state"`
	PublicKey         []byte     `bun:"public_key"`
	PrivateKeyWrapped []byte     `bun:"private_key_wrapped"`
	CreatedAt         time.Time  `bun:"created_at"`
	ActivatedAt       *time.Time `bun:"activated_at"`
	RetiredAt         *time.Time `bun:"retired_at"`
	PublishUntil      *time.Time `bun:"publish_until"`
}

// ListKeys returns every key of purpose, oldest first. Errors: translated
// driver errors (IDENT_UNAVAILABLE when the database is down).
func (s *KeyStore) ListKeys(ctx context.Context, purpose keys.Purpose) ([]keys.StoredKey, error) {
	var rows []keyRow
	err := s.conn(ctx).NewRaw(
		`SELECT kid, purpose, algorithm, state, public_key, private_key_wrapped,
		        created_at, activated_at, retired_at, publish_until
		   FROM signing_keys WHERE purpose = ? ORDER BY created_at, kid`, string(purpose)).
		Scan(ctx, &rows)
	if err != nil {
		return nil, translate(err)
	}
	out := make([]keys.StoredKey, len(rows))
	for i, r := range rows {
		out[i] = keys.StoredKey{
			KID:               r.KID,
			Purpose:           keys.Purpose(r.Purpose),
			Algorithm:         r.Algorithm,
			State:             keys.State(r.State),
			PublicKey:         r.PublicKey,
			PrivateKeyWrapped: r.PrivateKeyWrapped,
			CreatedAt:         r.CreatedAt.UTC(),
			ActivatedAt:       utcPtr(r.ActivatedAt),
			RetiredAt:         utcPtr(r.RetiredAt),
			PublishUntil:      utcPtr(r.PublishUntil),
		}
	}
	return out, nil
}

// InsertKey adds k. Errors: KindConflict for a duplicate kid or a second
// active/next key of the purpose (partial unique indexes).
func (s *KeyStore) InsertKey(ctx context.Context, k keys.StoredKey) error {
	_, err := s.conn(ctx).ExecContext(ctx,
		`INSERT INTO signing_keys (kid, purpose, algorithm, state, public_key, private_key_wrapped,
		                           created_at, activated_at, retired_at, publish_until)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.KID, string(k.Purpose), k.Algorithm, string(k.State), k.PublicKey, k.PrivateKeyWrapped,
		k.CreatedAt.UTC(), utcPtr(k.ActivatedAt), utcPtr(k.RetiredAt), utcPtr(k.PublishUntil))
	return translate(err)
}

// TransitionKey moves kid from `from` to `to` in one conditional UPDATE and
// reports whether the row was still in `from`. On Postgres a concurrent
// transition of the same row waits for the first to commit and then matches
// nothing; on SQLite writers are serialized. Errors: KindConflict when the
// move would create a second active/next key, translated driver errors.
func (s *KeyStore) TransitionKey(ctx context.Context, kid string, from, to keys.State, at time.Time, publishUntil *time.Time) (bool, error) {
	at = at.UTC()
	var set string
	args := []any{string(to)}
	switch to {
	case keys.StateActive:
		set = "state = ?, activated_at = ?"
		args = append(args, at)
	case keys.StateRetired:
		set = "state = ?, retired_at = ?, publish_until = ?"
		args = append(args, at, utcPtr(publishUntil))
	default:
		set = "state = ?"
	}
	args = append(args, kid, string(from))
	res, err := s.conn(ctx).ExecContext(ctx,
		`UPDATE signing_keys SET `+set+` WHERE kid = ? AND state = ?`, args...)
	if err != nil {
		return false, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, translate(err)
	}
	return n == 1, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
