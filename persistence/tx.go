package persistence

import (
	"context"
	"database/sql"

	"github.com/uptrace/bun"
)

type txKey struct{}

// txState is the transaction bound to a context by InTx.
type txState struct {
	tx bun.Tx
}

// InTx runs fn in one transaction and commits when fn returns nil. The
// transaction travels in the context handed to fn: repositories called with
// that context use it, so every write fn makes (and every event it adds to
// the outbox) commits or rolls back together. A nested InTx joins the outer
// transaction. The returned error is fn's, or a translated driver error.
func (db *DB) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if _, ok := ctx.Value(txKey{}).(*txState); ok {
		return fn(ctx)
	}
	err := db.bun.RunInTx(ctx, &sql.TxOptions{}, func(ctx context.Context, tx bun.Tx) error {
		return fn(context.WithValue(ctx, txKey{}, &txState{tx: tx}))
	})
	if err != nil {
		return translate(err)
	}
	for _, hook := range db.afterCommit {
		hook()
	}
	return nil
}

// conn returns the transaction bound to ctx, or the pool outside one.
func (db *DB) conn(ctx context.Context) bun.IDB {
	if st, ok := ctx.Value(txKey{}).(*txState); ok {
		return st.tx
	}
	return db.bun
}

// inTx reports whether ctx carries a transaction.
func inTx(ctx context.Context) bool {
	_, ok := ctx.Value(txKey{}).(*txState)
	return ok
}
