package keys

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"time"
)

var errNoActiveKey = errors.New("keys: the keyring has no active key")

// published is a key that verifiers may use: next, active, or retired until
// publishUntil.
type published struct {
	pub          *rsa.PublicKey
	state        State
	publishUntil time.Time // zero unless retired
}

// keyring is an immutable snapshot of the jwt keys, swapped atomically on
// reload, so the hot paths (JWKS, PublicKey, Signer) take no lock.
type keyring struct {
	rows     []StoredKey // last good rows, to rebuild when a retired key lapses while the store is down
	pubs     map[string]published
	signer   *Signer
	activeAt time.Time // when the signing key became active
	doc      []byte
	etag     string
	// lapse is the earliest publishUntil among published retired keys (zero
	// if none): from then on the document is stale and must be rebuilt.
	lapse time.Time
}

type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

type jwksJSON struct {
	Keys []jwkJSON `json:"keys"`
}

// buildKeyring turns stored rows into a snapshot at now. prev (may be nil)
// lends already parsed keys, so a periodic reload neither re-parses public
// keys nor unwraps the private key again. A broken active key fails the
// build (the caller keeps the previous snapshot); a broken next or retired
// key is left out with a warning, so one bad row cannot freeze the keyring.
func buildKeyring(rows []StoredKey, prev *keyring, w Wrapper, now time.Time, log *slog.Logger) (*keyring, error) {
	ordered := slices.Clone(rows)
	// JWKS order: active, next, then retired keys newest first.
	slices.SortStableFunc(ordered, func(a, b StoredKey) int {
		if ra, rb := jwksRank(a.State), jwksRank(b.State); ra != rb {
			return ra - rb
		}
		return b.CreatedAt.Compare(a.CreatedAt)
	})

	r := &keyring{rows: rows, pubs: make(map[string]published, len(rows))}
	doc := jwksJSON{Keys: make([]jwkJSON, 0, len(rows))}
	for _, k := range ordered {
		e := published{state: k.State}
		switch k.State {
		case StateActive, StateNext:
		case StateRetired:
			if k.PublishUntil == nil || !now.Before(*k.PublishUntil) {
				continue
			}
			e.publishUntil = *k.PublishUntil
		default:
			log.Warn("signing key in unknown state left out of the keyring", "kid", k.KID, "state", string(k.State))
			continue
		}
		if p, ok := prev.lookup(k.KID); ok {
			e.pub = p.pub
		} else {
			pub, err := parsePublic(k)
			if err != nil {
				if k.State == StateActive {
					return nil, err
				}
				log.Warn("unreadable signing key left out of the keyring", "kid", k.KID, "error", err)
				continue
			}
			e.pub = pub
		}
		if k.State == StateActive {
			if prev != nil && prev.signer != nil && prev.signer.kid == k.KID {
				r.signer = prev.signer
			} else {
				priv, err := unwrapPrivate(w, k, e.pub)
				if err != nil {
					return nil, err
				}
				r.signer = &Signer{kid: k.KID, priv: priv}
			}
			// A row without activated_at (not written by this code) counts
			// from its creation, which can only overstate its age.
			r.activeAt = k.CreatedAt
			if k.ActivatedAt != nil {
				r.activeAt = *k.ActivatedAt
			}
		}
		if !e.publishUntil.IsZero() && (r.lapse.IsZero() || e.publishUntil.Before(r.lapse)) {
			r.lapse = e.publishUntil
		}
		r.pubs[k.KID] = e
		n, ex := jwkNE(e.pub)
		doc.Keys = append(doc.Keys, jwkJSON{Kty: "RSA", Kid: k.KID, Use: "sig", Alg: AlgRS256, N: n, E: ex})
	}
	if r.signer == nil {
		return nil, errNoActiveKey
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	r.doc = b
	r.etag = `"` + hex.EncodeToString(sum[:16]) + `"`
	return r, nil
}

func jwksRank(s State) int {
	switch s {
	case StateActive:
		return 0
	case StateNext:
		return 1
	default:
		return 2
	}
}

func (r *keyring) lookup(kid string) (published, bool) {
	if r == nil {
		return published{}, false
	}
	p, ok := r.pubs[kid]
	return p, ok
}

// stale reports whether a retired key in the document has lapsed at now.
func (r *keyring) stale(now time.Time) bool {
	return !r.lapse.IsZero() && !now.Before(r.lapse)
}
