package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDeviceBindingEndToEnd drives IDENT-US-005/006 through the running
// service: register, admin trust, offline binding certificate verified
// against /devices/ca.pem, logout-all revoking the device, and the CRL.
func TestDeviceBindingEndToEnd(t *testing.T) {
	s := startService(t, baseEnv(t))
	w := newWorld(t, s)
	nurse := s.createUserREST(t, w.tokA, map[string]any{"email": "nurse@clinic-a.example.org", "firstName": "N", "lastName": "Urse"})
	s.verifyEmail(t, nurse.ID, goodPassword)
	tok := s.tokenFor(t, "nurse@clinic-a.example.org")

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))

	var dev struct {
		ID, Status string
	}
	s.call(t, http.MethodPost, "/api/v1/me/devices", tok, map[string]any{"fingerprint": "fp-1", "publicKey": pubPEM, "name": "Tablet", "platform": "android"}).
		decode(t, http.StatusCreated, &dev)
	require.Equal(t, "untrusted", dev.Status)
	require.Equal(t, http.StatusUnprocessableEntity, s.call(t, http.MethodPost, "/api/v1/me/devices/"+dev.ID+"/bind-offline", tok, nil).Status)
	require.Equal(t, http.StatusForbidden, s.call(t, http.MethodPost, "/api/v1/devices/"+dev.ID+"/trust", w.tokB, nil).Status, "another tenant's admin")
	s.call(t, http.MethodPost, "/api/v1/devices/"+dev.ID+"/trust", w.tokA, nil).decode(t, http.StatusOK, &dev)
	require.Equal(t, "trusted", dev.Status)

	var binding struct {
		Certificate, SerialNumber string
		ExpiresAt                 time.Time
	}
	s.call(t, http.MethodPost, "/api/v1/me/devices/"+dev.ID+"/bind-offline", tok, nil).decode(t, http.StatusOK, &binding)
	block, _ := pem.Decode([]byte(binding.Certificate))
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	require.True(t, cert.NotAfter.Sub(time.Now()) <= 30*24*time.Hour)
	require.Equal(t, spki, cert.RawSubjectPublicKeyInfo, "the certificate binds the registered key")

	res, err := http.Get(s.baseURL + "/devices/ca.pem")
	require.NoError(t, err)
	caPEM, _ := io.ReadAll(res.Body)
	res.Body.Close()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	require.NoError(t, err)

	// GraphQL: the tenant's admin lists it; another tenant's admin may not revoke it.
	var listed struct {
		Devices struct {
			Edges []struct {
				Node struct {
					ID, Status  string
					Certificate struct{ SerialNumber string }
				}
			}
		}
	}
	s.graphql(t, w.tokA, `query($u: ID) { devices(userId: $u) { edges { node { id status certificate { serialNumber } } } } }`,
		map[string]any{"u": nurse.ID}).decode(t, &listed)
	require.Len(t, listed.Devices.Edges, 1)
	require.Equal(t, "OFFLINE_BOUND", listed.Devices.Edges[0].Node.Status)
	require.Equal(t, binding.SerialNumber, listed.Devices.Edges[0].Node.Certificate.SerialNumber)
	require.Equal(t, "IDENT_CROSS_TENANT", s.graphql(t, w.tokB, `mutation($id: ID!) { revokeDevice(id: $id) { id } }`, map[string]any{"id": dev.ID}).code())

	// logout-all revokes every device of the user; the CRL lists the serial.
	require.Equal(t, http.StatusNoContent, s.call(t, http.MethodPost, "/api/v1/auth/logout-all", tok, nil).Status)
	res, err = http.Get(s.baseURL + "/devices/crl")
	require.NoError(t, err)
	der, _ := io.ReadAll(res.Body)
	res.Body.Close()
	crl, err := x509.ParseRevocationList(der)
	require.NoError(t, err)
	caBlock, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	require.NoError(t, err)
	require.NoError(t, crl.CheckSignatureFrom(ca))
	revoked := false
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			revoked = true
		}
	}
	require.True(t, revoked, "the binding certificate is on the CRL after logout-all")
}
