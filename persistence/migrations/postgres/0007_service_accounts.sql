-- Service accounts: OAuth 2.0 clients of the client_credentials grant
-- (POST /oauth2/token). client_id is globally unique ("sa_" + 20 base62
-- characters). Secrets are 256 random bits stored only as hex HMAC-SHA256
-- under a key derived from the master key. After a rotation the previous
-- secret stays valid until previous_expires_at (the overlap window).
CREATE TABLE service_accounts (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    name                 text NOT NULL,
    client_id            text NOT NULL,
    secret_hash          text NOT NULL,
    previous_secret_hash text,
    previous_expires_at  timestamptz,
    scopes               text NOT NULL,          -- JSON array, sorted
    created_by           text NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL,
    disabled_at          timestamptz,
    CONSTRAINT service_accounts_client_id_key UNIQUE (client_id)
);
CREATE INDEX service_accounts_tenant_idx ON service_accounts (tenant_id, id);
