-- Tenant API keys (CONTRACT.md §4, story IDENT-US-007).

-- A key string is "ghk_<lookup id>_<secret>"; prefix ("ghk_<lookup id>") is
-- its non-secret, unique leading part, used for lookup and shown in lists.
-- Only the hex HMAC-SHA256 of the secret is stored. After a rotation the
-- former secret's hash stays in previous_secret_hash, valid until
-- previous_expires_at. scopes is a JSON array of scope strings.
CREATE TABLE api_keys (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    name                 TEXT NOT NULL,
    prefix               TEXT NOT NULL,
    secret_hash          TEXT NOT NULL,
    previous_secret_hash TEXT,
    previous_expires_at  TIMESTAMP,
    scopes               TEXT NOT NULL,
    expires_at           TIMESTAMP,
    created_by           TEXT NOT NULL DEFAULT '',
    created_at           TIMESTAMP NOT NULL,
    revoked_at           TIMESTAMP,
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix)
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);
