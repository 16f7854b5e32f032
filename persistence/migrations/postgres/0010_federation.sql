-- Federated login through a tenant's OpenID Providers (CONTRACT.md §5
-- configureOidcProvider) and the links of users to their IdP accounts.

-- One OpenID Provider of a tenant; slug is the {provider} path segment.
-- client_secret is sealed by the master key (keys.MasterKey.Wrap with the
-- provider id as associated data); the plaintext is never stored. scopes,
-- allowed_email_domains and return_urls are JSON arrays of strings.
CREATE TABLE oidc_providers (
    id                    uuid PRIMARY KEY,
    tenant_id             uuid NOT NULL REFERENCES tenants (id),
    slug                  text NOT NULL,
    issuer                text NOT NULL,
    client_id             text NOT NULL,
    client_secret         bytea NOT NULL,
    scopes                text NOT NULL DEFAULT '[]',
    allowed_email_domains text NOT NULL DEFAULT '[]',
    return_urls           text NOT NULL DEFAULT '[]',
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    CONSTRAINT oidc_providers_tenant_slug_key UNIQUE (tenant_id, slug)
);

-- A user's account at an IdP: (issuer, subject) is unique across all
-- tenants. Erasing a user deletes its rows, so no IdP subject survives.
CREATE TABLE external_identities (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    provider_id uuid NOT NULL REFERENCES oidc_providers (id),
    issuer      text NOT NULL,
    subject     text NOT NULL,
    created_at  timestamptz NOT NULL,
    CONSTRAINT external_identities_issuer_subject_key UNIQUE (issuer, subject)
);
CREATE INDEX external_identities_user_idx ON external_identities (user_id);
