package ingress

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
)

// Authentication errors: ErrNoCredentials answers 401, ErrBadCredentials 403.
var (
	ErrNoCredentials  = errors.New("no credentials")
	ErrBadCredentials = errors.New("credentials not accepted")
)

// Verifier checks who sent a delivery. Token schemes decide from the request
// alone, before the body is read; signature schemes need the body.
type Verifier interface {
	// NeedsBody reports whether Verify reads body.
	NeedsBody() bool
	// Verify returns nil, ErrNoCredentials or ErrBadCredentials.
	Verify(r *http.Request, body []byte) error
}

// Header names of the schemes.
const (
	HeaderToken       = "X-Wahook-Token"
	HeaderWAHAHmac    = "X-Webhook-Hmac"
	HeaderWawpSigning = "X-Wawp-Signature"
)

// secrets holds accepted secrets as SHA-256 digests so that comparisons take
// the same time whatever the length of what is presented.
type secrets [][sha256.Size]byte

func newSecrets(list []string) secrets {
	var s secrets
	for _, v := range list {
		if v = strings.TrimSpace(v); v != "" {
			s = append(s, sha256.Sum256([]byte(v)))
		}
	}
	return s
}

// match compares v with every secret, all of them, in constant time.
func (s secrets) match(v string) bool {
	d := sha256.Sum256([]byte(v))
	ok := 0
	for i := range s {
		ok |= subtle.ConstantTimeCompare(d[:], s[i][:])
	}
	return ok == 1
}

// TokenVerifier accepts a shared secret sent as "Authorization: Bearer <t>",
// an X-Wahook-Token header or a "token" query parameter (for providers such as
// Z-API that can only be given a URL). Several tokens may be valid at once so
// that they can be rotated.
type TokenVerifier struct{ tokens secrets }

// NewTokenVerifier returns a verifier accepting any of tokens.
func NewTokenVerifier(tokens []string) (*TokenVerifier, error) {
	s := newSecrets(tokens)
	if len(s) == 0 {
		return nil, errors.New("token verifier: no tokens")
	}
	return &TokenVerifier{tokens: s}, nil
}

// NeedsBody implements Verifier.
func (*TokenVerifier) NeedsBody() bool { return false }

// Verify implements Verifier.
func (v *TokenVerifier) Verify(r *http.Request, _ []byte) error {
	var presented []string
	if a := r.Header.Get("Authorization"); a != "" {
		if t, ok := cutPrefixFold(a, "Bearer "); ok {
			presented = append(presented, strings.TrimSpace(t))
		} else {
			presented = append(presented, strings.TrimSpace(a))
		}
	}
	if t := r.Header.Get(HeaderToken); t != "" {
		presented = append(presented, t)
	}
	if t := r.URL.Query().Get("token"); t != "" {
		presented = append(presented, t)
	}
	if len(presented) == 0 {
		return ErrNoCredentials
	}
	for _, t := range presented {
		if v.tokens.match(t) {
			return nil
		}
	}
	return ErrBadCredentials
}

// HMACVerifier checks WAHA's X-Webhook-Hmac, the hex HMAC-SHA512 of the raw
// body, and Wawp's X-Wawp-Signature, which carries the configured secret
// itself. Several keys may be valid at once so that they can be rotated.
type HMACVerifier struct {
	keys [][]byte
	raw  secrets
}

// NewHMACVerifier returns a verifier accepting signatures made with any of keys.
func NewHMACVerifier(keys []string) (*HMACVerifier, error) {
	v := &HMACVerifier{raw: newSecrets(keys)}
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" {
			v.keys = append(v.keys, []byte(k))
		}
	}
	if len(v.keys) == 0 {
		return nil, errors.New("hmac verifier: no keys")
	}
	return v, nil
}

// NeedsBody implements Verifier.
func (*HMACVerifier) NeedsBody() bool { return true }

// Verify implements Verifier.
func (v *HMACVerifier) Verify(r *http.Request, body []byte) error {
	sig := r.Header.Get(HeaderWAHAHmac)
	wawp := r.Header.Get(HeaderWawpSigning)
	if sig == "" && wawp == "" {
		return ErrNoCredentials
	}
	if sig != "" {
		if alg := r.Header.Get("X-Webhook-Hmac-Algorithm"); alg != "" && !strings.EqualFold(alg, "sha512") {
			return ErrBadCredentials
		}
		want, err := hex.DecodeString(strings.TrimSpace(sig))
		if err == nil && len(want) == sha512.Size {
			ok := 0
			for _, k := range v.keys {
				m := hmac.New(sha512.New, k)
				m.Write(body)
				ok |= subtle.ConstantTimeCompare(m.Sum(nil), want)
			}
			if ok == 1 {
				return nil
			}
		}
	}
	if wawp != "" && v.raw.match(wawp) {
		return nil
	}
	return ErrBadCredentials
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}
