-- Tenant API keys (CONTRACT.md §4, story IDENT-US-007).

-- A key string is "ghk_<lookup id>_<secret>"; prefix ("ghk_<lookup id>") is
-- its non-secret, unique leading part, used for lookup and shown in lists.
-- Only the hex HMAC-SHA256 of the secret is stored. After a rotation the
-- former secret's hash stays in previous_secret_hash, valid until
-- previous_expires_at. scopes is a JSON array of scope strings.
CREATE TABLE api_keys (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    name                 text NOT NULL,
    prefix               text NOT NULL,
    secret_hash          text NOT NULL,
    previous_secret_hash text,
    previous_expires_at  timestamptz,
    scopes               text NOT NULL,
    expires_at           timestamptz,
    created_by           text NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL,
    revoked_at           timestamptz,
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix)
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);
