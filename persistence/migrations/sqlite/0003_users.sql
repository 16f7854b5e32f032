-- User lifecycle: email-verification tokens and the user listing index.

-- Only the HMAC-SHA256 of a token is stored (hex); the token travels in the
-- identity.user.registered.v1 verification link. A token is redeemed by one
-- conditional UPDATE of used_at.
CREATE TABLE verification_tokens (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT verification_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX verification_tokens_user_idx ON verification_tokens (user_id);

-- Keyset pagination of a tenant's users by id (UUIDv7 = creation order).
CREATE INDEX users_tenant_id_idx ON users (tenant_id, id);
