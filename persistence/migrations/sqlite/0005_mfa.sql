-- Second factors: TOTP and WebAuthn credentials, recovery codes, login
-- challenges and WebAuthn registration ceremonies.

-- One row per factor. TOTP: secret_wrapped (AES-GCM under the master key,
-- aad = factor id) and last_used_step (a code is accepted once: the step
-- only moves forward by a conditional UPDATE). WebAuthn: the credential.
-- verified_at is NULL while a TOTP enrolment awaits its first code.
CREATE TABLE mfa_factors (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id),
    type             text NOT NULL,              -- totp | webauthn
    name             text NOT NULL DEFAULT '',
    secret_wrapped   BLOB,                      -- totp
    last_used_step   INTEGER NOT NULL DEFAULT 0,  -- totp
    credential_id    BLOB,                      -- webauthn, raw id
    public_key       BLOB,                      -- webauthn, COSE key
    sign_count       INTEGER NOT NULL DEFAULT 0,  -- webauthn
    aaguid           BLOB,                      -- webauthn
    transports       text NOT NULL DEFAULT '',   -- webauthn, JSON array
    attestation_type text NOT NULL DEFAULT '',   -- webauthn
    created_at       TIMESTAMP NOT NULL,
    verified_at      TIMESTAMP,
    last_used_at     TIMESTAMP
);
CREATE INDEX mfa_factors_user_idx ON mfa_factors (user_id);
CREATE UNIQUE INDEX mfa_factors_credential_key ON mfa_factors (credential_id) WHERE credential_id IS NOT NULL;

-- Recovery codes: only their HMAC-SHA256 (hex) is stored; used once.
CREATE TABLE mfa_recovery_codes (
    hash       text PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP
);
CREATE INDEX mfa_recovery_codes_user_idx ON mfa_recovery_codes (user_id);

-- Login challenges (IDENT_MFA_REQUIRED → /auth/mfa/verify): single use,
-- 5 minutes, burned after the third failure. webauthn_state is the
-- server-side ceremony data of the assertion offered with the challenge.
CREATE TABLE mfa_challenges (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    context_node_id text NOT NULL DEFAULT '',
    ip              text NOT NULL DEFAULT '',
    user_agent      text NOT NULL DEFAULT '',
    webauthn_state  BLOB,
    failures        integer NOT NULL DEFAULT 0,
    created_at      TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    consumed_at     TIMESTAMP
);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);

-- WebAuthn registration ceremonies: the options' session data, single use.
CREATE TABLE webauthn_ceremonies (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    state      BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP
);
CREATE INDEX webauthn_ceremonies_user_idx ON webauthn_ceremonies (user_id);
