-- Sessions (one per login) and their one-use refresh tokens.

-- A session lives SessionTTL (8 h) from created_at at most (expires_at);
-- revoked_at/revoke_reason are set once (logout, logout_all, replay,
-- suspended, erased). Access tokens carry jti = "<session id>.<random>".
CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    amr             text NOT NULL,            -- JSON array, e.g. ["pwd"]
    context_node_id text NOT NULL DEFAULT '', -- '' = none
    ip              text NOT NULL DEFAULT '',
    user_agent      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    last_used_at    timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoke_reason   text
);
-- Revoking every session of a user (logout-all, suspension, erasure).
CREATE INDEX sessions_user_idx ON sessions (user_id);
-- Warming the revocation set: sessions revoked recently.
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Only the hex HMAC-SHA256 of a refresh token is stored. A token is consumed
-- by one conditional UPDATE (used_at IS NULL); a used row stays, so a second
-- presentation is recognised as a replay.
CREATE TABLE refresh_tokens (
    hash       text PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id),
    created_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
