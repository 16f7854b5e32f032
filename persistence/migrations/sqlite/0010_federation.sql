-- Federated login through a tenant's OpenID Providers (CONTRACT.md §5
-- configureOidcProvider) and the links of users to their IdP accounts.

-- One OpenID Provider of a tenant; slug is the {provider} path segment.
-- client_secret is sealed by the master key (keys.MasterKey.Wrap with the
-- provider id as associated data); the plaintext is never stored. scopes,
-- allowed_email_domains and return_urls are JSON arrays of strings.
CREATE TABLE oidc_providers (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants (id),
    slug                  TEXT NOT NULL,
    issuer                TEXT NOT NULL,
    client_id             TEXT NOT NULL,
    client_secret         BLOB NOT NULL,
    scopes                TEXT NOT NULL DEFAULT '[]',
    allowed_email_domains TEXT NOT NULL DEFAULT '[]',
    return_urls           TEXT NOT NULL DEFAULT '[]',
    created_at            TIMESTAMP NOT NULL,
    updated_at            TIMESTAMP NOT NULL,
    CONSTRAINT oidc_providers_tenant_slug_key UNIQUE (tenant_id, slug)
);

-- A user's account at an IdP: (issuer, subject) is unique across all
-- tenants. Erasing a user deletes its rows, so no IdP subject survives.
CREATE TABLE external_identities (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    provider_id TEXT NOT NULL REFERENCES oidc_providers (id),
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    CONSTRAINT external_identities_issuer_subject_key UNIQUE (issuer, subject)
);
CREATE INDEX external_identities_user_idx ON external_identities (user_id);
