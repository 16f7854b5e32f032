// Package device registers user devices, lets tenant admins trust them, binds
// trusted devices for offline use with short-lived X.509 certificates signed
// by the device CA, and revokes them (CONTRACT.md §4; stories
// IDENT-US-005/006).
//
// State machine: untrusted → trusted → offline_bound → revoked, and any
// state → revoked. Binding an untrusted or revoked device fails with
// IDENT_DEVICE_NOT_TRUSTED (422); any other transition that is not allowed
// fails with IDENT_STATE_CONFLICT (409). Re-binding an offline_bound device
// issues a new certificate and revokes the previous one. Revoked
// certificates are listed in the CRL signed by the device CA.
package device

import (
	"context"
	"crypto"
	"crypto/x509"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Status is where a device is in its life.
type Status string

// Device statuses (CONTRACT.md §4, GraphQL DeviceStatus in lower case).
const (
	StatusUntrusted    Status = "untrusted"
	StatusTrusted      Status = "trusted"
	StatusOfflineBound Status = "offline_bound"
	StatusRevoked      Status = "revoked"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusUntrusted, StatusTrusted, StatusOfflineBound, StatusRevoked:
		return true
	}
	return false
}

// Event types of the device lifecycle (CONTRACT.md §8).
const (
	EventRegistered      = "identity.device.registered.v1"
	EventTrusted         = "identity.device.trusted.v1"
	EventBoundForOffline = "identity.device.bound_for_offline.v1"
	EventRevoked         = "identity.device.revoked.v1"
)

// Limits.
const (
	// MaxCertLifetime is the longest binding certificate life (INV-05).
	MaxCertLifetime = 30 * 24 * time.Hour
	// MaxFingerprintLen, MaxNameLen and MaxPlatformLen bound the text fields (bytes).
	MaxFingerprintLen = 256
	MaxNameLen        = 200
	MaxPlatformLen    = 100
	// MinRSABits is the smallest accepted RSA device key.
	MinRSABits = 2048
	// CRLValidity is how far NextUpdate lies after ThisUpdate in a CRL.
	CRLValidity = 24 * time.Hour
)

// Certificate is the public view of a device's current binding certificate.
type Certificate struct {
	SerialNumber string
	ExpiresAt    time.Time
	RevokedAt    *time.Time
}

// Device is a registered device. PublicKey is its DER SubjectPublicKeyInfo.
type Device struct {
	ID          string
	UserID      string
	TenantID    string
	Fingerprint string
	Name        string
	Platform    string
	PublicKey   []byte
	Status      Status
	TrustedAt   *time.Time
	TrustedBy   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	RevokedAt   *time.Time
	// Certificate is the latest certificate issued to the device, if any.
	Certificate *Certificate
}

// IssuedCertificate is a device_certificates row.
type IssuedCertificate struct {
	// Serial is the lowercase hex of the X.509 serial number.
	Serial    string
	DeviceID  string
	DER       []byte
	NotBefore time.Time
	NotAfter  time.Time
	RevokedAt *time.Time
}

// RevokedCertificate is one CRL entry.
type RevokedCertificate struct {
	Serial    string
	RevokedAt time.Time
}

// ListQuery filters ListDevices; empty fields do not filter.
type ListQuery struct {
	UserID   string
	TenantID string
	Status   Status
}

// Store is what the device service needs from persistence. Writes join the
// transaction carried by ctx, so a change and its events commit together.
type Store interface {
	core.Transactor
	core.EventSink

	// InsertDevice adds d. Errors: KindConflict for a duplicate id or a
	// duplicate (user, fingerprint); IDENT_NOT_FOUND for an unknown user or
	// tenant; IDENT_UNAVAILABLE.
	InsertDevice(ctx context.Context, d Device) error
	// DeviceByID returns the device with its current certificate;
	// IDENT_NOT_FOUND when there is none (also for a malformed id).
	DeviceByID(ctx context.Context, id string) (Device, error)
	// ListDevices returns the matching devices, oldest first.
	ListDevices(ctx context.Context, q ListQuery) ([]Device, error)
	// TrustDevice moves an untrusted device to trusted (trusted_at = now,
	// trusted_by = by) and reports whether the row was still untrusted.
	TrustDevice(ctx context.Context, id string, now time.Time, by string) (bool, error)
	// MarkDeviceBound moves a trusted or offline_bound device to
	// offline_bound and reports whether it was in one of those states.
	MarkDeviceBound(ctx context.Context, id string, now time.Time) (bool, error)
	// RevokeDevice moves a device that is not revoked to revoked
	// (revoked_at = now) and reports whether it changed the row.
	RevokeDevice(ctx context.Context, id string, now time.Time) (bool, error)
	// InsertCertificate adds c and makes it the device's current certificate.
	InsertCertificate(ctx context.Context, c IssuedCertificate) error
	// RevokeDeviceCertificates stamps revoked_at = now on every unrevoked
	// certificate of the device.
	RevokeDeviceCertificates(ctx context.Context, deviceID string, now time.Time) error
	// RevokedCertificates returns every revoked certificate (the CRL).
	RevokedCertificates(ctx context.Context) ([]RevokedCertificate, error)
}

// CA is the device certificate authority: *keys.Service implements it.
type CA interface {
	DeviceCA(ctx context.Context) (crypto.Signer, *x509.Certificate, error)
}

// Config tunes the service; zero fields take the defaults.
type Config struct {
	// CertLifetime is the binding certificate's life: at most (and by
	// default) MaxCertLifetime.
	CertLifetime time.Duration
}

// RegisterInput is what Register needs. PublicKeyPEM is a PEM "PUBLIC KEY"
// block (SubjectPublicKeyInfo).
type RegisterInput struct {
	Fingerprint  string
	PublicKeyPEM string
	Name         string
	Platform     string
}

// Binding is the result of BindOffline.
type Binding struct {
	// CertificatePEM is the PEM "CERTIFICATE" block.
	CertificatePEM string
	SerialNumber   string
	ExpiresAt      time.Time
}

// eventData is the data of every device event; certificate fields only on
// bound_for_offline.
type eventData struct {
	DeviceID          string `json:"deviceId"`
	UserID            string `json:"userId"`
	TenantID          string `json:"tenantId"`
	CertificateSerial string `json:"certificateSerial,omitempty"`
	ExpiresAt         string `json:"expiresAt,omitempty"`
}

func deviceEvent(now time.Time, typ string, d Device) core.Event {
	return core.NewEvent(now, typ, d.ID, d.TenantID, eventData{DeviceID: d.ID, UserID: d.UserID, TenantID: d.TenantID})
}
