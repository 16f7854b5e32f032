package keys_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/persistence"
)

func TestDeviceCA(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			a, b := sharedDBs(t, dialect)
			master := newMaster(t)
			clock := core.NewFixedClock(t0)
			s1 := initService(t, a, master, clock)
			s2 := newService(t, persistence.NewKeyStore(b), master, clock, keys.Config{})
			jwksBefore, _ := s1.JWKS()

			signer, cert, err := s1.DeviceCA(ctx)
			require.NoError(t, err)
			require.True(t, cert.IsCA)
			require.Equal(t, keys.DeviceCASubject, cert.Subject.CommonName)
			require.NotZero(t, cert.KeyUsage&x509.KeyUsageCRLSign)
			require.NoError(t, cert.CheckSignatureFrom(cert))
			require.True(t, cert.PublicKey.(*rsa.PublicKey).Equal(signer.Public()))

			// Another instance loads the same key and rebuilds identical bytes.
			_, cert2, err := s2.DeviceCA(ctx)
			require.NoError(t, err)
			require.Equal(t, cert.Raw, cert2.Raw)

			stored, err := persistence.NewKeyStore(a).ListKeys(ctx, keys.PurposeDeviceCA)
			require.NoError(t, err)
			require.Len(t, stored, 1)
			require.Equal(t, keys.StateActive, stored[0].State)
			require.NotContains(t, string(stored[0].PrivateKeyWrapped), "PRIVATE")

			// The jwt keyring is untouched.
			require.NoError(t, s1.Refresh(ctx))
			jwksAfter, _ := s1.JWKS()
			require.Equal(t, jwksBefore, jwksAfter)
			require.Len(t, listKeys(t, a)[keys.StateActive], 1)

			// A wrong master key cannot unwrap it.
			s3 := newService(t, persistence.NewKeyStore(b), newMaster(t), clock, keys.Config{})
			_, _, err = s3.DeviceCA(ctx)
			require.Equal(t, core.CodeInternal, core.CodeOf(err))
		})
	}
}
