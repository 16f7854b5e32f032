-- Retention sweeper (core/retention, persistence/retention.go): each sweep
-- deletes, 1 000 rows per statement, the rows whose life ended before a
-- cutoff. These indexes let it find them without scanning whole tables.
-- sessions.revoked_at is already indexed (sessions_revoked_at_idx, 0004);
-- refresh tokens are found through refresh_tokens_session_idx.

CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX verification_tokens_expires_at_idx ON verification_tokens (expires_at);
CREATE INDEX verification_tokens_used_at_idx ON verification_tokens (used_at) WHERE used_at IS NOT NULL;
CREATE INDEX mfa_challenges_expires_at_idx ON mfa_challenges (expires_at);
CREATE INDEX webauthn_ceremonies_expires_at_idx ON webauthn_ceremonies (expires_at);
CREATE INDEX inbox_processed_at_idx ON inbox (processed_at);
