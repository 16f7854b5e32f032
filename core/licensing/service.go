package licensing

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
)

// Limits on module text fields (bytes).
const (
	MaxNameLen        = 200
	MaxDescriptionLen = 2000
	MaxReasonLen      = 1000
)

// codePattern: at least two dot-separated segments, each a lower-case letter
// followed by lower-case letters, digits or '_' (e.g. "ehr.core",
// "lab.results_v2"); at most 100 bytes.
var codePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

// ValidCode reports whether code is a well-formed module code.
func ValidCode(code string) bool { return len(code) <= 100 && codePattern.MatchString(code) }

// codeRule is why a code is not ValidCode, for fields.code and moduleCode.
var codeRule = "must match " + codePattern.String() + " (at most 100 bytes)"

// Service is the module catalogue and the assignments of modules at
// hierarchy nodes. Every write needs SUPER_ADMIN and commits its history
// rows and events in the same transaction as the change.
type Service struct {
	store     Store
	authz     *core.Authorizer
	hierarchy tenancy.Hierarchy
	clock     core.Clock

	// OnChange, when set (before the service is used), is called after a
	// committed change with the tenant whose effective licenses may have
	// changed; "" means every tenant (a catalogue change). The resolver's
	// cache invalidation hangs here.
	OnChange func(tenantID string)
}

// NewService returns the licensing service; clock nil means
// core.SystemClock. A missing store, authorizer or hierarchy panics.
func NewService(store Store, authz *core.Authorizer, hierarchy tenancy.Hierarchy, clock core.Clock) *Service {
	if store == nil || authz == nil || hierarchy == nil {
		panic("licensing.NewService: store, authorizer and hierarchy are required")
	}
	if clock == nil {
		clock = core.SystemClock{}
	}
	return &Service{store: store, authz: authz, hierarchy: hierarchy, clock: clock}
}

func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

func (s *Service) changed(tenantID string) {
	if s.OnChange != nil {
		s.OnChange(tenantID)
	}
}

// CreateModuleInput defines a catalogue module.
type CreateModuleInput struct {
	Code        string
	Name        string
	Description string
	DependsOn   []string
	IsAlwaysOn  bool
}

// UpdateModuleInput changes the non-nil fields of a module. Code may be
// sent but must equal the module's code.
type UpdateModuleInput struct {
	Code        *string
	Name        *string
	Description *string
	DependsOn   *[]string
	IsAlwaysOn  *bool
}

// ListModules returns the catalogue (terminated modules included) ordered
// by code.
//
// Authorization: any authenticated principal.
// Errors: IDENT_UNAUTHENTICATED; IDENT_UNAVAILABLE.
func (s *Service) ListModules(ctx context.Context) ([]Module, error) {
	if _, err := core.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	return s.store.ListModules(ctx)
}

// CreateModule adds a module and emits identity.license.module.created.v1.
//
// Authorization: SUPER_ADMIN.
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN; IDENT_VALIDATION with
// fields code (see ValidCode), name (no control characters), description
// (no control characters but tab and line breaks; both valid UTF-8) or
// dependsOn (unknown module, duplicate, self); IDENT_CONFLICT for a taken code;
// IDENT_UNAVAILABLE.
func (s *Service) CreateModule(ctx context.Context, in CreateModuleInput) (Module, error) {
	if _, err := s.authz.RequireSuperAdmin(ctx); err != nil {
		return Module{}, err
	}
	now := s.now()
	m := Module{Code: strings.TrimSpace(in.Code), Name: strings.TrimSpace(in.Name), Description: strings.TrimSpace(in.Description),
		DependsOn: normalizeDeps(in.DependsOn), IsAlwaysOn: in.IsAlwaysOn, CreatedAt: now, UpdatedAt: now}
	fields := checkText(m, true, true)
	if !ValidCode(m.Code) {
		fields["code"] = codeRule
	}
	if len(fields) > 0 {
		return Module{}, core.Invalid("invalid module", fields)
	}
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		all, err := s.store.ListModules(ctx)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(all, func(x Module) bool { return x.Code == m.Code }) {
			return core.E(core.KindConflict, core.CodeConflict, "a module with this code already exists")
		}
		if err := checkDeps(append(all, m), m); err != nil {
			return err
		}
		if err := s.store.InsertModule(ctx, m); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, moduleEvent(now, EventModuleCreated, m))
	})
	if err != nil {
		return Module{}, err
	}
	s.changed("")
	return m, nil
}

// UpdateModule changes the non-nil fields of module code and emits
// identity.license.module.updated.v1. The dependency graph of the whole
// catalogue must stay acyclic.
//
// Authorization: SUPER_ADMIN.
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN; IDENT_NOT_FOUND;
// IDENT_LIC_CODE_IMMUTABLE (in.Code differs); IDENT_LIC_ALWAYS_ON_IMMUTABLE
// (isAlwaysOn false on an always-on module); IDENT_VALIDATION with fields
// name, description or dependsOn (unknown module, self or a cycle: a 422
// with code IDENT_VALIDATION and fields.dependsOn); IDENT_UNAVAILABLE.
func (s *Service) UpdateModule(ctx context.Context, code string, in UpdateModuleInput) (Module, error) {
	if _, err := s.authz.RequireSuperAdmin(ctx); err != nil {
		return Module{}, err
	}
	if in.Code != nil && *in.Code != code {
		return Module{}, core.E(core.KindUnprocessable, core.CodeLicCodeImmutable, "a module code cannot be changed")
	}
	now := s.now()
	var m Module
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		all, err := s.store.ListModules(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(all, func(x Module) bool { return x.Code == code })
		if i < 0 {
			return core.NotFound("module")
		}
		m = all[i]
		if in.IsAlwaysOn != nil && m.IsAlwaysOn && !*in.IsAlwaysOn {
			return core.E(core.KindUnprocessable, core.CodeLicAlwaysOnImmutable, "an always-on module stays always-on")
		}
		if in.Name != nil {
			m.Name = strings.TrimSpace(*in.Name)
		}
		if in.Description != nil {
			m.Description = strings.TrimSpace(*in.Description)
		}
		if in.DependsOn != nil {
			m.DependsOn = normalizeDeps(*in.DependsOn)
		}
		if in.IsAlwaysOn != nil {
			m.IsAlwaysOn = *in.IsAlwaysOn
		}
		m.UpdatedAt = now
		if fields := checkText(m, in.Name != nil, in.Description != nil); len(fields) > 0 {
			return core.Invalid("invalid module", fields)
		}
		all[i] = m
		if err := checkDeps(all, m); err != nil {
			return err
		}
		if err := s.store.UpdateModule(ctx, m); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, moduleEvent(now, EventModuleUpdated, m))
	})
	if err != nil {
		return Module{}, err
	}
	s.changed("")
	return m, nil
}

// DeleteModule terminates module code: it stays in the catalogue for
// history (TerminatedAt set) and takes no new assignments; its existing
// assignments are untouched. Terminating a terminated module is idempotent
// and emits nothing; otherwise identity.license.module.updated.v1 is emitted.
//
// Authorization: SUPER_ADMIN.
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN; IDENT_NOT_FOUND (also for
// a malformed code); IDENT_LIC_ALWAYS_ON_IMMUTABLE; IDENT_UNAVAILABLE.
func (s *Service) DeleteModule(ctx context.Context, code string) (Module, error) {
	if _, err := s.authz.RequireSuperAdmin(ctx); err != nil {
		return Module{}, err
	}
	if !ValidCode(code) {
		return Module{}, core.NotFound("module")
	}
	now := s.now()
	var m Module
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if m, err = s.store.ModuleByCode(ctx, code); err != nil {
			return err
		}
		if m.IsAlwaysOn {
			return core.E(core.KindUnprocessable, core.CodeLicAlwaysOnImmutable, "an always-on module cannot be terminated")
		}
		ok, err := s.store.TerminateModule(ctx, code, now)
		if err != nil || !ok {
			return err
		}
		m.TerminatedAt, m.UpdatedAt = &now, now
		return s.store.AddEvents(ctx, moduleEvent(now, EventModuleUpdated, m))
	})
	if err != nil {
		return Module{}, err
	}
	s.changed("")
	return m, nil
}

func normalizeDeps(in []string) []string {
	out := []string{}
	for _, d := range in {
		d = strings.TrimSpace(d)
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// checkText checks m's name and description. The characters are checked
// only where the caller sent the field (sentName, sentDescription): a module
// stored before control characters were refused stays editable.
func checkText(m Module, sentName, sentDescription bool) map[string]string {
	fields := map[string]string{}
	if m.Name == "" || len(m.Name) > MaxNameLen {
		fields["name"] = "required, at most 200 bytes"
	} else if why := core.TextProblem(m.Name, false); sentName && why != "" {
		fields["name"] = why
	}
	if len(m.Description) > MaxDescriptionLen {
		fields["description"] = "at most 2000 bytes"
	} else if why := core.TextProblem(m.Description, true); sentDescription && why != "" {
		fields["description"] = why
	}
	return fields
}

// checkDeps validates m.DependsOn against the catalogue all (which holds m
// as it will be stored): every dependency exists, none is m itself, and the
// graph reachable from m has no cycle. Failures are 422 IDENT_VALIDATION
// with fields.dependsOn.
func checkDeps(all []Module, m Module) error {
	byCode := make(map[string]Module, len(all))
	for _, x := range all {
		byCode[x.Code] = x
	}
	bad := func(reason string) error {
		return &core.Error{Kind: core.KindUnprocessable, Code: core.CodeValidation, Msg: "dependsOn: " + reason,
			Fields: map[string]string{"dependsOn": reason}}
	}
	for _, d := range m.DependsOn {
		if d == m.Code {
			return bad("a module cannot depend on itself")
		}
		if _, ok := byCode[d]; !ok {
			return bad("unknown module " + d)
		}
	}
	// Depth-first search for a path from m back to m.
	state := map[string]int{} // 1 on the stack, 2 done
	var visit func(code string) bool
	visit = func(code string) bool {
		switch state[code] {
		case 1:
			return true
		case 2:
			return false
		}
		state[code] = 1
		for _, d := range byCode[code].DependsOn {
			if visit(d) {
				return true
			}
		}
		state[code] = 2
		return false
	}
	if visit(m.Code) {
		return bad("dependencies form a cycle")
	}
	return nil
}
