-- Devices and their offline-binding certificates (CONTRACT.md §4, stories
-- IDENT-US-005/006).

-- status: untrusted → trusted → offline_bound → revoked (any → revoked).
-- public_key is the device's DER SubjectPublicKeyInfo (ECDSA P-256 or
-- RSA ≥ 2048). certificate_serial is the current binding certificate (the
-- latest issued), whether or not it is revoked.
CREATE TABLE devices (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (id),
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    fingerprint        TEXT NOT NULL,
    name               TEXT NOT NULL DEFAULT '',
    platform           TEXT NOT NULL DEFAULT '',
    public_key         BLOB NOT NULL,
    status             TEXT NOT NULL,
    trusted_at         TIMESTAMP,
    trusted_by         TEXT NOT NULL DEFAULT '',
    certificate_serial TEXT,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    revoked_at         TIMESTAMP,
    CONSTRAINT devices_user_fingerprint_key UNIQUE (user_id, fingerprint)
);
CREATE INDEX devices_tenant_idx ON devices (tenant_id, id);

-- Every certificate issued to a device; revoked ones make up the CRL. serial
-- is the lowercase hex of the X.509 serial number; certificate is DER.
CREATE TABLE device_certificates (
    serial      TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL REFERENCES devices (id),
    certificate BLOB NOT NULL,
    not_before  TIMESTAMP NOT NULL,
    not_after   TIMESTAMP NOT NULL,
    revoked_at  TIMESTAMP
);
CREATE INDEX device_certificates_device_idx ON device_certificates (device_id);
CREATE INDEX device_certificates_revoked_idx ON device_certificates (revoked_at) WHERE revoked_at IS NOT NULL;
