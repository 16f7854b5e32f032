package persistence

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/ghasi-ehealth/identity-service/core"
)

// translate maps driver errors onto core error kinds by error code, never by
// message text. Errors that are already core errors pass through unchanged.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var ce *core.Error
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return core.Wrap(err, core.KindNotFound, core.CodeNotFound, "not found")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return core.Unavailable(err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return translatePostgres(pgErr)
	}
	var sqlErr *sqlite.Error
	if errors.As(err, &sqlErr) {
		return translateSQLite(sqlErr)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) {
		return core.Unavailable(err)
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return core.Unavailable(err)
	}
	return core.Internal(err)
}

// Postgres SQLSTATE codes (Appendix A of the PostgreSQL manual).
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
	pgCheckViolation      = "23514"
	pgNotNullViolation    = "23502"
	pgSerialization       = "40001"
	pgDeadlock            = "40P01"
	// Class 22 codes that mean the caller's value does not fit the column.
	pgCharacterNotInRepertoire  = "22021"
	pgUntranslatableCharacter   = "22P05"
	pgStringTooLong             = "22001"
	pgNumericOutOfRange         = "22003"
	pgInvalidTextRepresentation = "22P02"
)

func translatePostgres(e *pgconn.PgError) error {
	switch e.Code {
	case pgUniqueViolation:
		return &core.Error{Kind: core.KindConflict, Code: core.CodeConflict, Msg: "already exists", Err: uniqueViolation{constraint: e.ConstraintName, cause: e}}
	case pgForeignKeyViolation:
		return core.Wrap(e, core.KindNotFound, core.CodeNotFound, "a referenced resource does not exist")
	case pgCheckViolation, pgNotNullViolation:
		return core.Wrap(e, core.KindInvalid, core.CodeValidation, "invalid value")
	case pgSerialization, pgDeadlock:
		return core.Wrap(e, core.KindConflict, core.CodeConflict, "concurrent update; retry")
	}
	// Class 08 is connection exceptions, 57P is operator intervention (shutdown).
	if len(e.Code) >= 2 && (e.Code[:2] == "08" || e.Code[:3] == "57P" || e.Code[:2] == "53") {
		return core.Unavailable(e)
	}
	// A value the column cannot hold (a NUL byte or invalid UTF-8 in text, a
	// string over its length, a number out of range, text that is no valid
	// UUID): the caller's input, not a server fault. Core validates first;
	// this keeps a missed case off 500. The rest of class 22 (division by
	// zero, datetime overflow of a computed time, …) stays a server fault.
	switch e.Code {
	case pgCharacterNotInRepertoire, pgUntranslatableCharacter, pgStringTooLong, pgNumericOutOfRange, pgInvalidTextRepresentation:
		return core.Wrap(e, core.KindInvalid, core.CodeValidation, "invalid value")
	}
	return core.Internal(e)
}

func translateSQLite(e *sqlite.Error) error {
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return &core.Error{Kind: core.KindConflict, Code: core.CodeConflict, Msg: "already exists", Err: uniqueViolation{cause: e}}
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return core.Wrap(e, core.KindNotFound, core.CodeNotFound, "a referenced resource does not exist")
	case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL:
		return core.Wrap(e, core.KindInvalid, core.CodeValidation, "invalid value")
	}
	switch e.Code() & 0xff { // primary result code
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN:
		return core.Unavailable(e)
	}
	return core.Internal(e)
}

// uniqueViolation marks a conflict raised by a unique constraint, so a
// repository can re-code it (e.g. IDENT_EMAIL_DUPLICATE) with errors.As.
type uniqueViolation struct {
	constraint string // Postgres only
	cause      error
}

func (u uniqueViolation) Error() string { return "unique violation: " + u.cause.Error() }
func (u uniqueViolation) Unwrap() error { return u.cause }

// IsUniqueViolation reports whether err came from a unique constraint.
func IsUniqueViolation(err error) bool {
	var u uniqueViolation
	return errors.As(err, &u)
}
