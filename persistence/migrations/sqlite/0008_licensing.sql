-- Licensing: module catalogue, assignments at hierarchy nodes and their
-- append-only status history (CONTRACT.md §4, stories IDENT-US-013/014).

-- code is globally unique and immutable; depends_on is a JSON array of
-- module codes. DELETE terminates a module (terminated_at) and keeps it.
CREATE TABLE license_modules (
    code          TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    depends_on    TEXT NOT NULL DEFAULT '[]',
    is_always_on  BOOLEAN NOT NULL DEFAULT false,
    terminated_at TIMESTAMP,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);

INSERT INTO license_modules (code, name, description, depends_on, is_always_on, created_at, updated_at) VALUES
    ('platform.iam', 'Identity & access', '', '[]', true, '2025-01-01 00:00:00+00:00', '2025-01-01 00:00:00+00:00'),
    ('platform.audit', 'Audit', '', '[]', true, '2025-01-01 00:00:00+00:00', '2025-01-01 00:00:00+00:00'),
    ('ehr.core', 'EHR core', '', '[]', true, '2025-01-01 00:00:00+00:00', '2025-01-01 00:00:00+00:00');

-- node_id is a hierarchy node of tenant_id (checked by the service through
-- the hierarchy port, which may be the remote tenant service).
CREATE TABLE license_assignments (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    node_id        TEXT NOT NULL,
    module_code    TEXT NOT NULL REFERENCES license_modules (code),
    scope          TEXT NOT NULL CHECK (scope IN ('exact', 'inherit_down')),
    status         TEXT NOT NULL CHECK (status IN ('trial', 'active', 'suspended', 'terminated')),
    effective_from TIMESTAMP NOT NULL,
    effective_to   TIMESTAMP,
    created_by     TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL
);
CREATE INDEX license_assignments_node_idx ON license_assignments (tenant_id, node_id);

-- Append-only: rows are inserted, never updated or deleted. from_status is
-- '' for the creation.
CREATE TABLE license_assignment_history (
    id            TEXT PRIMARY KEY,
    assignment_id TEXT NOT NULL REFERENCES license_assignments (id),
    from_status   TEXT NOT NULL,
    to_status     TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    actor_id      TEXT NOT NULL DEFAULT '',
    at            TIMESTAMP NOT NULL
);
CREATE INDEX license_assignment_history_assignment_idx ON license_assignment_history (assignment_id, at);
