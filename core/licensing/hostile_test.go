package licensing_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
)

// TestHostileInputNeverReachesStorage: NUL bytes (refused by Postgres,
// stored by SQLite), invalid UTF-8, control characters and malformed ids or
// codes are refused in core with the field named — IDENT_VALIDATION, or
// IDENT_NOT_FOUND for a path id or code that cannot exist — on both
// databases, and nothing is written.
func TestHostileInputNeverReachesStorage(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		e.module(t, "lab.core")
		a := e.assign(t, e.facility, "lab.core", licensing.ScopeExact)
		events := countEvents(t, e)
		assign := func(node, module string) error {
			_, err := e.svc.CreateAssignment(e.root(), licensing.CreateAssignmentInput{TenantID: e.tenantA, NodeID: node,
				ModuleCode: module, Scope: licensing.ScopeExact, Status: licensing.StatusActive})
			return err
		}
		for name, tc := range map[string]struct {
			call        func() error
			code, field string
		}{
			"module name with NUL": {func() error {
				_, err := e.svc.CreateModule(e.root(), licensing.CreateModuleInput{Code: "lab.x", Name: "La\x00b"})
				return err
			}, core.CodeValidation, "name"},
			"module name with a line break": {func() error {
				_, err := e.svc.CreateModule(e.root(), licensing.CreateModuleInput{Code: "lab.x", Name: "La\r\nb"})
				return err
			}, core.CodeValidation, "name"},
			"module description with NUL": {func() error {
				_, err := e.svc.CreateModule(e.root(), licensing.CreateModuleInput{Code: "lab.x", Name: "Lab", Description: "a\x00b"})
				return err
			}, core.CodeValidation, "description"},
			"module description with invalid UTF-8": {func() error {
				_, err := e.svc.CreateModule(e.root(), licensing.CreateModuleInput{Code: "lab.x", Name: "Lab", Description: "a\xffb"})
				return err
			}, core.CodeValidation, "description"},
			"updated name with NUL": {func() error {
				_, err := e.svc.UpdateModule(e.root(), "lab.core", licensing.UpdateModuleInput{Name: ptr("La\x00b")})
				return err
			}, core.CodeValidation, "name"},
			"updated description with BEL": {func() error {
				_, err := e.svc.UpdateModule(e.root(), "lab.core", licensing.UpdateModuleInput{Description: ptr("a\ab")})
				return err
			}, core.CodeValidation, "description"},
			"terminate a code with NUL": {func() error {
				_, err := e.svc.DeleteModule(e.root(), "lab.core\x00")
				return err
			}, core.CodeNotFound, ""},
			"terminate a code with invalid UTF-8": {func() error {
				_, err := e.svc.DeleteModule(e.root(), "lab.\xff")
				return err
			}, core.CodeNotFound, ""},
			"assignment at a node id with NUL": {func() error { return assign(e.facility+"\x00", "lab.core") }, core.CodeValidation, "nodeId"},
			"assignment at an empty node id":   {func() error { return assign("", "lab.core") }, core.CodeValidation, "nodeId"},
			"assignment at a 2000-char node":   {func() error { return assign(strings.Repeat("0", 2000), "lab.core") }, core.CodeValidation, "nodeId"},
			"assignment of a code with NUL":    {func() error { return assign(e.facility, "lab.core\x00") }, core.CodeValidation, "moduleCode"},
			"assignment of a malformed code":   {func() error { return assign(e.facility, "Lab Core") }, core.CodeValidation, "moduleCode"},
			"status reason with NUL": {func() error {
				_, err := e.svc.ChangeAssignmentStatus(e.root(), a.ID, licensing.StatusSuspended, "un\x00paid")
				return err
			}, core.CodeValidation, "reason"},
			"status reason with invalid UTF-8": {func() error {
				_, err := e.svc.ChangeAssignmentStatus(e.root(), a.ID, licensing.StatusSuspended, "un\xffpaid")
				return err
			}, core.CodeValidation, "reason"},
			"status of an id with NUL": {func() error {
				_, err := e.svc.ChangeAssignmentStatus(e.root(), a.ID+"\x00", licensing.StatusSuspended, "")
				return err
			}, core.CodeNotFound, ""},
			"history of an id with NUL": {func() error {
				_, err := e.svc.History(e.root(), "\x00")
				return err
			}, core.CodeNotFound, ""},
			"assignments at a node id with NUL": {func() error {
				_, err := e.svc.ListAssignments(e.root(), e.tenantA, "\x00")
				return err
			}, core.CodeValidation, "nodeId"},
		} {
			t.Run(name, func(t *testing.T) {
				err := tc.call()
				requireCode(t, tc.code, err)
				if tc.field != "" {
					require.Equal(t, []string{tc.field}, slices.Sorted(maps.Keys(core.AsError(err).Fields)), "error: %v", err)
				}
			})
		}
		require.Equal(t, events, countEvents(t, e), "nothing was written")

		// Multi-line free text stays allowed where it is free text.
		_, err := e.svc.ChangeAssignmentStatus(e.root(), a.ID, licensing.StatusSuspended, "unpaid:\n\tinvoice 7")
		require.NoError(t, err)
		_, err = e.svc.UpdateModule(e.root(), "lab.core", licensing.UpdateModuleInput{Description: ptr("line one\r\nline two")})
		require.NoError(t, err)
	})
}

func countEvents(t *testing.T, e *env) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.Bun().QueryRowContext(context.Background(), `SELECT count(*) FROM events`).Scan(&n))
	return n
}

// TestModuleStoredBeforeTextChecksStaysEditable: a module whose name or
// description holds control characters from before they were refused can
// still be edited; only the fields sent are checked.
func TestModuleStoredBeforeTextChecksStaysEditable(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		e.module(t, "lab.core")
		_, err := e.db.Bun().ExecContext(context.Background(),
			`UPDATE license_modules SET name = ?, description = ? WHERE code = ?`, "Lab\tcore", "Lab\vpanel", "lab.core")
		require.NoError(t, err)

		m, err := e.svc.UpdateModule(e.root(), "lab.core", licensing.UpdateModuleInput{IsAlwaysOn: ptr(true)})
		require.NoError(t, err)
		require.True(t, m.IsAlwaysOn)
		require.Equal(t, "Lab\tcore", m.Name)

		m, err = e.svc.UpdateModule(e.root(), "lab.core", licensing.UpdateModuleInput{Name: ptr("Lab core")})
		require.NoError(t, err, "fixing the name leaves the old description alone")
		require.Equal(t, "Lab core", m.Name)

		_, err = e.svc.UpdateModule(e.root(), "lab.core", licensing.UpdateModuleInput{Description: ptr("still\vbad")})
		require.Equal(t, core.CodeValidation, core.CodeOf(err), "a sent field is checked")
	})
}
