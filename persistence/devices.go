package persistence

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/device"
)

// DeviceStore is the device repository (device.Store). InTx and AddEvents
// come from the embedded DB, so a device change and its event commit
// together.
type DeviceStore struct {
	*DB
}

var _ device.Store = (*DeviceStore)(nil)

// NewDeviceStore returns the device repository on db.
func NewDeviceStore(db *DB) *DeviceStore { return &DeviceStore{DB: db} }

const deviceSelect = `SELECT d.id, d.user_id, d.tenant_id, d.fingerprint, d.name, d.platform, d.public_key, d.status,
       d.trusted_at, d.trusted_by, d.created_at, d.updated_at, d.revoked_at, c.serial, c.not_after, c.revoked_at
  FROM devices d LEFT JOIN device_certificates c ON c.serial = d.certificate_serial`

// InsertDevice adds d. Errors: KindConflict for a duplicate id or (user,
// fingerprint); IDENT_NOT_FOUND for an unknown user or tenant;
// IDENT_UNAVAILABLE.
func (s *DeviceStore) InsertDevice(ctx context.Context, d device.Device) error {
	_, err := s.bound(ctx).ExecContext(ctx,
		`INSERT INTO devices (id, user_id, tenant_id, fingerprint, name, platform, public_key, status,
		                      trusted_at, trusted_by, created_at, updated_at, revoked_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.UserID, d.TenantID, d.Fingerprint, d.Name, d.Platform, d.PublicKey, string(d.Status),
		utcPtr(d.TrustedAt), d.TrustedBy, d.CreatedAt.UTC(), d.UpdatedAt.UTC(), utcPtr(d.RevokedAt))
	return translate(err)
}

// DeviceByID returns the device with its current certificate, or
// IDENT_NOT_FOUND (also for a malformed id).
func (s *DeviceStore) DeviceByID(ctx context.Context, id string) (device.Device, error) {
	if !core.ValidID(id) {
		return device.Device{}, core.NotFound("device")
	}
	ds, err := s.query(ctx, deviceSelect+` WHERE d.id = ?`, id)
	if err != nil {
		return device.Device{}, err
	}
	if len(ds) == 0 {
		return device.Device{}, core.NotFound("device")
	}
	return ds[0], nil
}

// ListDevices returns the devices matching q, oldest first (none when an id
// filter is malformed).
func (s *DeviceStore) ListDevices(ctx context.Context, q device.ListQuery) ([]device.Device, error) {
	var (
		conds []string
		args  []any
	)
	if q.UserID != "" {
		if !core.ValidID(q.UserID) {
			return nil, nil
		}
		conds, args = append(conds, "d.user_id = ?"), append(args, q.UserID)
	}
	if q.TenantID != "" {
		if !core.ValidID(q.TenantID) {
			return nil, nil
		}
		conds, args = append(conds, "d.tenant_id = ?"), append(args, q.TenantID)
	}
	if q.Status != "" {
		conds, args = append(conds, "d.status = ?"), append(args, string(q.Status))
	}
	query := deviceSelect
	if len(conds) > 0 {
		query += ` WHERE ` + strings.Join(conds, " AND ")
	}
	return s.query(ctx, query+` ORDER BY d.created_at, d.id`, args...)
}

// TrustDevice moves an untrusted device to trusted and reports whether it did.
func (s *DeviceStore) TrustDevice(ctx context.Context, id string, now time.Time, by string) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	res, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE devices SET status = ?, trusted_at = ?, trusted_by = ?, updated_at = ? WHERE id = ? AND status = ?`,
		string(device.StatusTrusted), now.UTC(), by, now.UTC(), id, string(device.StatusUntrusted))
	return apiKeyAffected(res, err)
}

// MarkDeviceBound moves a trusted or offline_bound device to offline_bound.
func (s *DeviceStore) MarkDeviceBound(ctx context.Context, id string, now time.Time) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	res, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE devices SET status = ?, updated_at = ? WHERE id = ? AND status IN (?, ?)`,
		string(device.StatusOfflineBound), now.UTC(), id, string(device.StatusTrusted), string(device.StatusOfflineBound))
	return apiKeyAffected(res, err)
}

// RevokeDevice moves a device that is not revoked to revoked.
func (s *DeviceStore) RevokeDevice(ctx context.Context, id string, now time.Time) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	res, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE devices SET status = ?, revoked_at = ?, updated_at = ? WHERE id = ? AND status <> ?`,
		string(device.StatusRevoked), now.UTC(), now.UTC(), id, string(device.StatusRevoked))
	return apiKeyAffected(res, err)
}

// InsertCertificate adds c and makes it the device's current certificate.
// Errors: KindConflict for a duplicate serial; IDENT_NOT_FOUND for an
// unknown device; IDENT_UNAVAILABLE.
func (s *DeviceStore) InsertCertificate(ctx context.Context, c device.IssuedCertificate) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		_, err := s.bound(ctx).ExecContext(ctx,
			`INSERT INTO device_certificates (serial, device_id, certificate, not_before, not_after, revoked_at)
			 VALUES (?, ?, ?, ?, ?, ?)`,
			c.Serial, c.DeviceID, c.DER, c.NotBefore.UTC(), c.NotAfter.UTC(), utcPtr(c.RevokedAt))
		if err != nil {
			return translate(err)
		}
		_, err = s.bound(ctx).ExecContext(ctx, `UPDATE devices SET certificate_serial = ? WHERE id = ?`, c.Serial, c.DeviceID)
		return translate(err)
	})
}

// RevokeDeviceCertificates stamps revoked_at = now on the device's
// unrevoked certificates.
func (s *DeviceStore) RevokeDeviceCertificates(ctx context.Context, deviceID string, now time.Time) error {
	if !core.ValidID(deviceID) {
		return nil
	}
	_, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE device_certificates SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL`, now.UTC(), deviceID)
	return translate(err)
}

// RevokedCertificates returns every revoked certificate, in revocation order.
func (s *DeviceStore) RevokedCertificates(ctx context.Context) ([]device.RevokedCertificate, error) {
	rows, err := s.bound(ctx).QueryContext(ctx,
		`SELECT serial, revoked_at FROM device_certificates WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial`)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []device.RevokedCertificate
	for rows.Next() {
		var r device.RevokedCertificate
		if err := rows.Scan(&r.Serial, &r.RevokedAt); err != nil {
			return nil, translate(err)
		}
		r.RevokedAt = r.RevokedAt.UTC()
		out = append(out, r)
	}
	return out, translate(rows.Err())
}

// CertificateDER returns the DER of the certificate with serial, or
// IDENT_NOT_FOUND.
func (s *DeviceStore) CertificateDER(ctx context.Context, serial string) ([]byte, error) {
	var der []byte
	err := s.bound(ctx).QueryRowContext(ctx, `SELECT certificate FROM device_certificates WHERE serial = ?`, serial).Scan(&der)
	if err == sql.ErrNoRows {
		return nil, core.NotFound("certificate")
	}
	return der, translate(err)
}

func (s *DeviceStore) query(ctx context.Context, query string, args ...any) ([]device.Device, error) {
	rows, err := s.bound(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []device.Device
	for rows.Next() {
		var (
			d                         device.Device
			status                    string
			trusted, revoked, cRevoke sql.NullTime
			serial                    sql.NullString
			notAfter                  sql.NullTime
		)
		if err := rows.Scan(&d.ID, &d.UserID, &d.TenantID, &d.Fingerprint, &d.Name, &d.Platform, &d.PublicKey, &status,
			&trusted, &d.TrustedBy, &d.CreatedAt, &d.UpdatedAt, &revoked, &serial, &notAfter, &cRevoke); err != nil {
			return nil, translate(err)
		}
		d.Status = device.Status(status)
		d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
		d.TrustedAt, d.RevokedAt = apiKeyTime(trusted), apiKeyTime(revoked)
		if serial.Valid {
			d.Certificate = &device.Certificate{SerialNumber: serial.String, ExpiresAt: notAfter.Time.UTC(), RevokedAt: apiKeyTime(cRevoke)}
		}
		out = append(out, d)
	}
	return out, translate(rows.Err())
}
