package device

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// URI SAN prefixes of a binding certificate.
const (
	URNDevice = "urn:ghasi:device:"
	URNUser   = "urn:ghasi:user:"
	URNTenant = "urn:ghasi:tenant:"
)

// BindOffline issues a binding certificate over the device's registered key,
// signed by the device CA, valid for the configured lifetime (≤ 30 days),
// with SAN URIs urn:ghasi:device:{id}, urn:ghasi:user:{id} and
// urn:ghasi:tenant:{id}. The device becomes offline_bound; any previous
// certificate of the device is revoked. identity.device.bound_for_offline.v1
// is emitted in the same transaction and identity.device.bind.total counted.
// Authorization: the device's owner only (anyone else gets IDENT_NOT_FOUND).
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN for a non-user principal;
// IDENT_NOT_FOUND; IDENT_DEVICE_NOT_TRUSTED for an untrusted or revoked
// device; IDENT_UNAVAILABLE.
func (s *Service) BindOffline(ctx context.Context, id string) (Binding, error) {
	p, err := userPrincipal(ctx)
	if err != nil {
		return Binding{}, err
	}
	d, err := s.store.DeviceByID(ctx, id)
	if err != nil {
		return Binding{}, err
	}
	if d.UserID != p.ID {
		return Binding{}, core.NotFound("device")
	}
	if d.Status != StatusTrusted && d.Status != StatusOfflineBound {
		return Binding{}, errNotTrusted(d.Status)
	}
	now := s.now()
	c, err := s.issue(ctx, d, now)
	if err != nil {
		return Binding{}, err
	}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		ok, err := s.store.MarkDeviceBound(ctx, d.ID, now)
		if err != nil {
			return err
		}
		if !ok {
			cur, err := s.store.DeviceByID(ctx, d.ID)
			if err != nil {
				return err
			}
			return errNotTrusted(cur.Status)
		}
		if err := s.store.RevokeDeviceCertificates(ctx, d.ID, now); err != nil {
			return err
		}
		if err := s.store.InsertCertificate(ctx, c); err != nil {
			return err
		}
		evt := core.NewEvent(now, EventBoundForOffline, d.ID, d.TenantID, eventData{DeviceID: d.ID, UserID: d.UserID,
			TenantID: d.TenantID, CertificateSerial: c.Serial, ExpiresAt: c.NotAfter.UTC().Format(time.RFC3339)})
		return s.store.AddEvents(ctx, evt)
	})
	if err != nil {
		return Binding{}, err
	}
	s.metrics.DeviceBound(ctx)
	s.logger.InfoContext(ctx, "device bound for offline use", "device_id", d.ID, "tenant_id", d.TenantID, "serial", c.Serial)
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
	return Binding{CertificatePEM: string(pemCert), SerialNumber: c.Serial, ExpiresAt: c.NotAfter}, nil
}

// issue signs a binding certificate for d (outside any transaction).
func (s *Service) issue(ctx context.Context, d Device, now time.Time) (IssuedCertificate, error) {
	pub, err := x509.ParsePKIXPublicKey(d.PublicKey)
	if err != nil {
		return IssuedCertificate{}, core.Internal(err)
	}
	signer, caCert, err := s.ca.DeviceCA(ctx)
	if err != nil {
		return IssuedCertificate{}, err
	}
	serial, err := newSerial()
	if err != nil {
		return IssuedCertificate{}, core.Internal(err)
	}
	notBefore := now.Truncate(time.Second)
	notAfter := notBefore.Add(s.cfg.CertLifetime)
	var uris []*url.URL
	for _, u := range []string{URNDevice + d.ID, URNUser + d.UserID, URNTenant + d.TenantID} {
		parsed, err := url.Parse(u)
		if err != nil {
			return IssuedCertificate{}, core.Internal(err)
		}
		uris = append(uris, parsed)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: d.ID},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  uris,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub, signer)
	if err != nil {
		return IssuedCertificate{}, core.Internal(err)
	}
	return IssuedCertificate{Serial: serial.Text(16), DeviceID: d.ID, DER: der, NotBefore: notBefore, NotAfter: notAfter}, nil
}

// newSerial is a random positive 127-bit serial (RFC 5280 §4.1.2.2: ≤ 20
// octets, unique per CA).
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, err
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// CACertificatePEM returns the device CA certificate as PEM (GET
// /devices/ca.pem), creating the CA on first use. Errors: IDENT_UNAVAILABLE,
// IDENT_INTERNAL.
func (s *Service) CACertificatePEM(ctx context.Context) ([]byte, error) {
	_, cert, err := s.ca.DeviceCA(ctx)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), nil
}

// CRL returns a DER X.509 v2 CRL signed by the device CA listing every
// revoked device certificate with its revocation time (GET /devices/crl).
// ThisUpdate is now, NextUpdate now + CRLValidity, and the CRL number the
// current Unix time in milliseconds (monotonic across instances with sane
// clocks). Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *Service) CRL(ctx context.Context) ([]byte, error) {
	signer, caCert, err := s.ca.DeviceCA(ctx)
	if err != nil {
		return nil, err
	}
	revoked, err := s.store.RevokedCertificates(ctx)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC().Truncate(time.Second)
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, r := range revoked {
		n, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, core.Internal(errBadSerial(r.Serial))
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: r.RevokedAt.UTC()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(now.UnixMilli()),
		ThisUpdate:                now,
		NextUpdate:                now.Add(CRLValidity),
		RevokedCertificateEntries: entries,
	}, caCert, signer)
	if err != nil {
		return nil, core.Internal(err)
	}
	return der, nil
}

type errBadSerial string

func (e errBadSerial) Error() string { return "device: stored serial is not hex: " + string(e) }
