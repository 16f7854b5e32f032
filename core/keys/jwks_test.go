package keys_test

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestJWKSDocument(t *testing.T) {
	svc := initService(t, dbtest.SQLite(t), newMaster(t), core.NewFixedClock(t0))
	doc, etag := svc.JWKS()

	// Exactly the contract's members, in the contract's order.
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(doc, &raw))
	require.Len(t, raw.Keys, 2)
	for _, k := range raw.Keys {
		var m map[string]string
		require.NoError(t, json.Unmarshal(k, &m))
		require.Len(t, m, 6)
		require.Equal(t, "RSA", m["kty"])
		require.Equal(t, "sig", m["use"])
		require.Equal(t, "RS256", m["alg"])
		require.Equal(t, "AQAB", m["e"])
		n, err := base64.RawURLEncoding.DecodeString(m["n"])
		require.NoError(t, err)
		require.Len(t, n, 256, "RSA-2048 modulus")
		require.Regexp(t, `^\{"kty":"RSA","kid":"[A-Za-z0-9_-]{43}","use":"sig","alg":"RS256","n":"[A-Za-z0-9_-]+","e":"AQAB"\}$`, string(k))
	}

	// An independent JOSE library reads the set, and agrees that every kid
	// is the RFC 7638 thumbprint of its key.
	set, err := jwk.Parse(doc)
	require.NoError(t, err)
	require.Equal(t, 2, set.Len())
	for i := range set.Len() {
		k, ok := set.Key(i)
		require.True(t, ok)
		kid, ok := k.KeyID()
		require.True(t, ok)
		tp, err := k.Thumbprint(crypto.SHA256)
		require.NoError(t, err)
		require.Equal(t, base64.RawURLEncoding.EncodeToString(tp), kid)
		pub, ok := svc.PublicKey(kid)
		require.True(t, ok)
		require.Equal(t, kid, keys.Thumbprint(pub))
	}

	require.Regexp(t, `^"[0-9a-f]{32}"$`, etag)
	doc2, etag2 := svc.JWKS()
	require.Equal(t, etag, etag2)
	require.Same(t, &doc[0], &doc2[0], "served from the pre-serialized snapshot")
}

func TestJWKSAllocatesNothing(t *testing.T) {
	svc := initService(t, dbtest.SQLite(t), newMaster(t), nil)
	allocs := testing.AllocsPerRun(1000, func() {
		doc, etag := svc.JWKS()
		if len(doc) == 0 || etag == "" {
			t.Fatal("empty JWKS")
		}
	})
	require.Zero(t, allocs)
}

func TestRetiredKeyLeavesJWKSAfterPublishWindow(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open dbtest.Opener) {
		ctx := context.Background()
		clock := core.NewFixedClock(t0)
		svc := initService(t, open(t), newMaster(t), clock)
		old, err := svc.Signer()
		require.NoError(t, err)
		_, err = svc.Rotate(ctx)
		require.NoError(t, err)
		doc, _ := svc.JWKS()
		require.Len(t, jwksKids(t, doc), 3)

		clock.Advance(keys.DefaultRetiredPublishFor - time.Second)
		require.NoError(t, svc.Refresh(ctx))
		doc, _ = svc.JWKS()
		require.Contains(t, jwksKids(t, doc), old.KID(), "still inside the 7 days")
		_, ok := svc.PublicKey(old.KID())
		require.True(t, ok)

		clock.Advance(time.Second)
		_, ok = svc.PublicKey(old.KID())
		require.False(t, ok, "verification stops at publish_until even before a refresh")
		require.NoError(t, svc.Refresh(ctx))
		doc, _ = svc.JWKS()
		require.NotContains(t, jwksKids(t, doc), old.KID())
		require.Len(t, jwksKids(t, doc), 2)
	})
}

func TestServesLastGoodKeyringWhileDatabaseIsDown(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open dbtest.Opener) {
		ctx := context.Background()
		db := open(t)
		clock := core.NewFixedClock(t0)
		svc := initService(t, db, newMaster(t), clock)
		old, err := svc.Signer()
		require.NoError(t, err)
		_, err = svc.Rotate(ctx)
		require.NoError(t, err)
		doc, etag := svc.JWKS()
		signer, err := svc.Signer()
		require.NoError(t, err)

		require.NoError(t, db.Close())
		require.Error(t, svc.Refresh(ctx))
		gotDoc, gotTag := svc.JWKS()
		require.Equal(t, doc, gotDoc)
		require.Equal(t, etag, gotTag)
		same, err := svc.Signer()
		require.NoError(t, err)
		require.Equal(t, signer.KID(), same.KID())
		_, err = same.SignRS256([]byte("still signing"))
		require.NoError(t, err)
		_, ok := svc.PublicKey(old.KID())
		require.True(t, ok)

		// Rotation needs the database; the keyring is untouched by the failure.
		_, err = svc.Rotate(ctx)
		require.Error(t, err)
		gotDoc, _ = svc.JWKS()
		require.Equal(t, doc, gotDoc)

		// The retired key still leaves JWKS on time while the store is down.
		clock.Advance(keys.DefaultRetiredPublishFor)
		require.Error(t, svc.Refresh(ctx))
		gotDoc, gotTag = svc.JWKS()
		require.NotContains(t, jwksKids(t, gotDoc), old.KID())
		require.Len(t, jwksKids(t, gotDoc), 2)
		require.NotEqual(t, etag, gotTag)
	})
}

func BenchmarkJWKS(b *testing.B) {
	svc := initService(b, dbtest.SQLite(b), newMaster(b), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			doc, etag := svc.JWKS()
			if len(doc) == 0 || etag == "" {
				b.Fatal("empty JWKS")
			}
		}
	})
}
