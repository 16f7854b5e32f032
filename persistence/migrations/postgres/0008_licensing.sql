-- Licensing: module catalogue, assignments at hierarchy nodes and their
-- append-only status history (CONTRACT.md §4, stories IDENT-US-013/014).

-- code is globally unique and immutable; depends_on is a JSON array of
-- module codes. DELETE terminates a module (terminated_at) and keeps it.
CREATE TABLE license_modules (
    code          text PRIMARY KEY,
    name          text NOT NULL,
    description   text NOT NULL DEFAULT '',
    depends_on    text NOT NULL DEFAULT '[]',
    is_always_on  boolean NOT NULL DEFAULT false,
    terminated_at timestamptz,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

INSERT INTO license_modules (code, name, description, depends_on, is_always_on, created_at, updated_at) VALUES
    ('platform.iam', 'Identity & access', '', '[]', true, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z'),
    ('platform.audit', 'Audit', '', '[]', true, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z'),
    ('ehr.core', 'EHR core', '', '[]', true, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z');

-- node_id is a hierarchy node of tenant_id (checked by the service through
-- the hierarchy port, which may be the remote tenant service).
CREATE TABLE license_assignments (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    node_id        text NOT NULL,
    module_code    text NOT NULL REFERENCES license_modules (code),
    scope          text NOT NULL CHECK (scope IN ('exact', 'inherit_down')),
    status         text NOT NULL CHECK (status IN ('trial', 'active', 'suspended', 'terminated')),
    effective_from timestamptz NOT NULL,
    effective_to   timestamptz,
    created_by     text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX license_assignments_node_idx ON license_assignments (tenant_id, node_id);

-- Append-only: rows are inserted, never updated or deleted. from_status is
-- '' for the creation.
CREATE TABLE license_assignment_history (
    id            uuid PRIMARY KEY,
    assignment_id uuid NOT NULL REFERENCES license_assignments (id),
    from_status   text NOT NULL,
    to_status     text NOT NULL,
    reason        text NOT NULL DEFAULT '',
    actor_id      text NOT NULL DEFAULT '',
    at            timestamptz NOT NULL
);
CREATE INDEX license_assignment_history_assignment_idx ON license_assignment_history (assignment_id, at);
