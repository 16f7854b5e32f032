-- WebAuthn authenticator flags of a credential (WebAuthn Level 3 §6.1):
-- backup_eligible is fixed at registration and an assertion whose flag
-- differs is refused; backup_state (is the credential synced now) follows
-- each assertion. NULL backup_eligible: registered before flags were kept;
-- the first accepted assertion records it.
ALTER TABLE mfa_factors ADD COLUMN backup_eligible boolean;
ALTER TABLE mfa_factors ADD COLUMN backup_state boolean NOT NULL DEFAULT false;
