-- Foundation: tenants, users, memberships, signing keys, outbox/audit events, inbox.

CREATE TABLE tenants (
    id                uuid PRIMARY KEY,
    slug              text NOT NULL,
    name              text NOT NULL,
    self_registration boolean NOT NULL DEFAULT false,
    mfa_required      boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CONSTRAINT tenants_slug_key UNIQUE (slug)
);

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    email            text NOT NULL,
    first_name       text NOT NULL DEFAULT '',
    last_name        text NOT NULL DEFAULT '',
    status           text NOT NULL,
    password_hash    text,
    keycloak_user_id text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    deactivated_at   timestamptz
);
-- Erased users keep an empty email, so uniqueness applies to real addresses only.
CREATE UNIQUE INDEX users_tenant_email_key ON users (tenant_id, email) WHERE email <> '';
CREATE INDEX users_email_idx ON users (email) WHERE email <> '';

CREATE TABLE memberships (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id),
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    node_id    text NOT NULL DEFAULT '', -- '' means tenant-wide
    roles      text NOT NULL,           -- JSON array of role names
    created_at timestamptz NOT NULL,
    CONSTRAINT memberships_user_tenant_node_key UNIQUE (user_id, tenant_id, node_id)
);
CREATE INDEX memberships_tenant_idx ON memberships (tenant_id);

CREATE TABLE signing_keys (
    kid                 text PRIMARY KEY,
    purpose             text NOT NULL,   -- jwt | device_ca
    algorithm           text NOT NULL,   -- RS256
    state               text NOT NULL,   -- next | active | retired
    public_key          bytea NOT NULL,  -- DER SubjectPublicKeyInfo
    private_key_wrapped bytea NOT NULL,  -- AES-256-GCM under the master key
    created_at          timestamptz NOT NULL,
    activated_at        timestamptz,
    retired_at          timestamptz,
    publish_until       timestamptz      -- a retired key leaves JWKS after this
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (purpose) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (purpose) WHERE state = 'next';

-- The outbox doubles as the audit log: rows are kept after publication.
CREATE TABLE events (
    seq          bigserial PRIMARY KEY,
    id           uuid NOT NULL,
    type         text NOT NULL,
    subject      text NOT NULL,
    tenant_id    text NOT NULL DEFAULT '',
    time         timestamptz NOT NULL,
    data         jsonb NOT NULL,
    traceparent  text NOT NULL DEFAULT '',
    published_at timestamptz,
    CONSTRAINT events_id_key UNIQUE (id)
);
CREATE INDEX events_unpublished_idx ON events (seq) WHERE published_at IS NULL;
CREATE INDEX events_type_idx ON events (type, seq);
CREATE INDEX events_subject_idx ON events (subject, seq);
CREATE INDEX events_tenant_idx ON events (tenant_id, seq);

-- Consumers record each event id they processed, so redelivery is harmless.
CREATE TABLE inbox (
    consumer     text NOT NULL,
    event_id     text NOT NULL,
    processed_at timestamptz NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
