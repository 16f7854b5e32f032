package persistence

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
)

func TestTranslatePostgresCodes(t *testing.T) {
	for code, want := range map[string]core.Kind{
		"23505": core.KindConflict,    // unique_violation
		"23503": core.KindNotFound,    // foreign_key_violation
		"23514": core.KindInvalid,     // check_violation
		"22021": core.KindInvalid,     // character_not_in_repertoire: a NUL byte in text
		"22001": core.KindInvalid,     // string_data_right_truncation
		"22P02": core.KindInvalid,     // invalid_text_representation
		"22P05": core.KindInvalid,     // untranslatable_character
		"22003": core.KindInvalid,     // numeric_value_out_of_range
		"22012": core.KindInternal,    // division_by_zero: our bug
		"22008": core.KindInternal,    // datetime_field_overflow: a computed time
		"40001": core.KindConflict,    // serialization_failure
		"08006": core.KindUnavailable, // connection_failure
		"57P01": core.KindUnavailable, // admin_shutdown
		"53300": core.KindUnavailable, // too_many_connections
		"42P01": core.KindInternal,    // undefined_table: our bug, not the caller's
	} {
		err := translate(&pgconn.PgError{Code: code})
		require.True(t, core.IsKind(err, want), "%s → %v", code, err)
	}
}
