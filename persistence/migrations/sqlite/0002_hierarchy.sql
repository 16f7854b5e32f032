-- Hierarchy nodes of the local tenant directory (province, district, facility, ...).
-- A parent is a node of the same tenant: the composite foreign key on
-- (tenant_id, parent_id) enforces it (a NULL parent_id makes a root).
-- Memberships keep node_id as text ('' = tenant-wide), checked in core.

CREATE TABLE hierarchy_nodes (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    parent_id  TEXT,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT hierarchy_nodes_tenant_id_key UNIQUE (tenant_id, id),
    CONSTRAINT hierarchy_nodes_parent_fkey FOREIGN KEY (tenant_id, parent_id)
        REFERENCES hierarchy_nodes (tenant_id, id),
    CONSTRAINT hierarchy_nodes_not_own_parent CHECK (parent_id IS NULL OR parent_id <> id)
);
CREATE INDEX hierarchy_nodes_parent_idx ON hierarchy_nodes (parent_id);
