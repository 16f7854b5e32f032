package keys

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// DeviceCASubject is the common name of the device CA certificate.
const DeviceCASubject = "Ghasi Identity Device CA"

// DeviceCAValidity is the device CA certificate's lifetime from the key's
// creation.
const DeviceCAValidity = 20 * 365 * 24 * time.Hour

// deviceCA is the unwrapped device CA key and its certificate.
type deviceCA struct {
	kid  string
	priv crypto.Signer
	cert *x509.Certificate
}

// DeviceCA returns the device CA's signer and self-signed certificate. On
// first use it creates the CA key (RSA-2048, purpose device_ca, state
// active, private part wrapped under the master key with aad = kid, like the
// jwt keys); instances racing on an empty table converge on the winner's key
// through the one-active-per-purpose index. The certificate is not stored: it
// is rebuilt deterministically from the key (serial and validity derive from
// the kid and the key's creation time, and RSA PKCS#1 v1.5 signatures are
// deterministic), so every instance serves the same bytes. The result is
// cached for the life of the Service. Errors: the store's (IDENT_UNAVAILABLE)
// or internal ones (a key the master key cannot unwrap).
func (s *Service) DeviceCA(ctx context.Context) (crypto.Signer, *x509.Certificate, error) {
	s.caMu.Lock()
	defer s.caMu.Unlock()
	if s.ca != nil {
		return s.ca.priv, s.ca.cert, nil
	}
	const attempts = 3
	for i := 1; ; i++ {
		ca, err := s.loadDeviceCA(ctx)
		if err == nil {
			s.ca = ca
			return ca.priv, ca.cert, nil
		}
		if !core.IsKind(err, core.KindConflict) || i == attempts {
			return nil, nil, err
		}
	}
}

func (s *Service) loadDeviceCA(ctx context.Context) (*deviceCA, error) {
	rows, err := s.store.ListKeys(ctx, PurposeDeviceCA)
	if err != nil {
		return nil, err
	}
	active, _ := current(rows)
	if active == nil {
		k, err := newKey(s.wrapper, PurposeDeviceCA, StateActive, s.now())
		if err != nil {
			return nil, core.Internal(err)
		}
		if err := s.store.InsertKey(ctx, k); err != nil {
			return nil, err // KindConflict when another instance won: retried
		}
		active = &k
	}
	pub, err := parsePublic(*active)
	if err != nil {
		return nil, core.Internal(err)
	}
	priv, err := unwrapPrivate(s.wrapper, *active, pub)
	if err != nil {
		return nil, core.Internal(err)
	}
	cert, err := deviceCACertificate(*active, priv)
	if err != nil {
		return nil, core.Internal(err)
	}
	return &deviceCA{kid: active.KID, priv: priv, cert: cert}, nil
}

// deviceCACertificate builds the CA certificate of k deterministically.
func deviceCACertificate(k StoredKey, priv crypto.Signer) (*x509.Certificate, error) {
	sum := sha256.Sum256([]byte(k.KID))
	serial := new(big.Int).SetBytes(sum[:16])
	if serial.Sign() == 0 {
		return nil, errors.New("keys: zero CA serial")
	}
	created := k.CreatedAt.UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: DeviceCASubject, Organization: []string{"Ghasi eHealth"}},
		NotBefore:             created,
		NotAfter:              created.Add(DeviceCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
