-- Foundation: tenants, users, memberships, signing keys, outbox/audit events, inbox.

CREATE TABLE tenants (
    id                TEXT PRIMARY KEY,
    slug              TEXT NOT NULL,
    name              TEXT NOT NULL,
    self_registration BOOLEAN NOT NULL DEFAULT false,
    mfa_required      BOOLEAN NOT NULL DEFAULT false,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    CONSTRAINT tenants_slug_key UNIQUE (slug)
);

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    email            TEXT NOT NULL,
    first_name       TEXT NOT NULL DEFAULT '',
    last_name        TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL,
    password_hash    text,
    keycloak_user_id text,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    deactivated_at   TIMESTAMP
);
-- Erased users keep an empty email, so uniqueness applies to real addresses only.
CREATE UNIQUE INDEX users_tenant_email_key ON users (tenant_id, email) WHERE email <> '';
CREATE INDEX users_email_idx ON users (email) WHERE email <> '';

CREATE TABLE memberships (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    node_id    TEXT NOT NULL DEFAULT '', -- '' means tenant-wide
    roles      TEXT NOT NULL,           -- JSON array of role names
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT memberships_user_tenant_node_key UNIQUE (user_id, tenant_id, node_id)
);
CREATE INDEX memberships_tenant_idx ON memberships (tenant_id);

CREATE TABLE signing_keys (
    kid                 TEXT PRIMARY KEY,
    purpose             TEXT NOT NULL,   -- jwt | device_ca
    algorithm           TEXT NOT NULL,   -- RS256
    state               TEXT NOT NULL,   -- next | active | retired
    public_key          BLOB NOT NULL,  -- DER SubjectPublicKeyInfo
    private_key_wrapped BLOB NOT NULL,  -- AES-256-GCM under the master key
    created_at          TIMESTAMP NOT NULL,
    activated_at        TIMESTAMP,
    retired_at          TIMESTAMP,
    publish_until       TIMESTAMP      -- a retired key leaves JWKS after this
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (purpose) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (purpose) WHERE state = 'next';

-- The outbox doubles as the audit log: rows are kept after publication.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    tenant_id    TEXT NOT NULL DEFAULT '',
    time         TIMESTAMP NOT NULL,
    data         TEXT NOT NULL,
    traceparent  TEXT NOT NULL DEFAULT '',
    published_at TIMESTAMP,
    CONSTRAINT events_id_key UNIQUE (id)
);
CREATE INDEX events_unpublished_idx ON events (seq) WHERE published_at IS NULL;
CREATE INDEX events_type_idx ON events (type, seq);
CREATE INDEX events_subject_idx ON events (subject, seq);
CREATE INDEX events_tenant_idx ON events (tenant_id, seq);

-- Consumers record each event id they processed, so redelivery is harmless.
CREATE TABLE inbox (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
