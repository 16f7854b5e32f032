-- Devices and their offline-binding certificates (CONTRACT.md §4, stories
-- IDENT-US-005/006).

-- status: untrusted → trusted → offline_bound → revoked (any → revoked).
-- public_key is the device's DER SubjectPublicKeyInfo (ECDSA P-256 or
-- RSA ≥ 2048). certificate_serial is the current binding certificate (the
-- latest issued), whether or not it is revoked.
CREATE TABLE devices (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id),
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    fingerprint        text NOT NULL,
    name               text NOT NULL DEFAULT '',
    platform           text NOT NULL DEFAULT '',
    public_key         bytea NOT NULL,
    status             text NOT NULL,
    trusted_at         timestamptz,
    trusted_by         text NOT NULL DEFAULT '',
    certificate_serial text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    revoked_at         timestamptz,
    CONSTRAINT devices_user_fingerprint_key UNIQUE (user_id, fingerprint)
);
CREATE INDEX devices_tenant_idx ON devices (tenant_id, id);

-- Every certificate issued to a device; revoked ones make up the CRL. serial
-- is the lowercase hex of the X.509 serial number; certificate is DER.
CREATE TABLE device_certificates (
    serial      text PRIMARY KEY,
    device_id   uuid NOT NULL REFERENCES devices (id),
    certificate bytea NOT NULL,
    not_before  timestamptz NOT NULL,
    not_after   timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX device_certificates_device_idx ON device_certificates (device_id);
CREATE INDEX device_certificates_revoked_idx ON device_certificates (revoked_at) WHERE revoked_at IS NOT NULL;
