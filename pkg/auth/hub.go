package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// HeaderHubSignature256 is Meta's body signature header.
const HeaderHubSignature256 = "X-Hub-Signature-256"

// HubSignatureVerifier checks Meta's X-Hub-Signature-256:
// "sha256=" and the hex HMAC-SHA256 of the raw body keyed with the app
// secret. Several secrets may be valid at once so that they can be
// rotated; each may be limited to a channel (ParseSecret), a Meta phone
// number id.
type HubSignatureVerifier struct {
	// plain are the secrets valid for every channel; scoped the
	// channel-scoped ones by channel.
	plain  [][]byte
	scoped map[string][][]byte
}

// NewHubSignatureVerifier returns a verifier accepting signatures made
// with any of secrets.
func NewHubSignatureVerifier(secrets []string) (*HubSignatureVerifier, error) {
	// newSecrets checks the entries; HMAC needs the secrets themselves.
	if _, err := newSecrets("app secret", secrets); err != nil {
		return nil, fmt.Errorf("hub signature verifier: %w", err)
	}
	v := &HubSignatureVerifier{scoped: map[string][][]byte{}}
	for _, e := range secrets {
		if strings.TrimSpace(e) == "" {
			continue
		}
		sec, _ := ParseSecret(e) // checked by newSecrets
		if sec.Channel == "" {
			v.plain = append(v.plain, []byte(sec.Value))
			continue
		}
		v.scoped[sec.Channel] = append(v.scoped[sec.Channel], []byte(sec.Value))
	}
	return v, nil
}

// NeedsBody implements Verifier.
func (*HubSignatureVerifier) NeedsBody() bool { return true }

// Verify implements Verifier.
func (v *HubSignatureVerifier) Verify(r *http.Request, body []byte) error {
	_, err := v.VerifyGrant(r, body)
	return err
}

// VerifyGrant implements ChannelVerifier. One delivery may hold several
// phone numbers' changes: a channel-scoped secret grants its channel, and
// the handler refuses the delivery unless every item is of a granted one.
// With ?channel= only that channel's scoped secrets are tried, else every
// scoped secret: one HMAC of the body per secret.
func (v *HubSignatureVerifier) VerifyGrant(r *http.Request, body []byte) (Grant, error) {
	sig := r.Header.Get(HeaderHubSignature256)
	if sig == "" {
		return Grant{}, ErrNoCredentials
	}
	alg, digest, ok := strings.Cut(strings.TrimSpace(sig), "=")
	if !ok || alg != "sha256" {
		return Grant{}, ErrBadCredentials
	}
	want, err := hex.DecodeString(digest)
	if err != nil || len(want) != sha256.Size {
		return Grant{}, ErrBadCredentials
	}
	var g Grant
	for _, k := range v.plain {
		if signedSHA256(k, body, want) {
			g.all = true
		}
	}
	if !g.all {
		try := func(ch string, keys [][]byte) {
			for _, k := range keys {
				if signedSHA256(k, body, want) {
					g.channels = append(g.channels, ch)
					return
				}
			}
		}
		if pin := r.URL.Query().Get("channel"); pin != "" {
			try(pin, v.scoped[pin])
		} else {
			for ch, keys := range v.scoped {
				try(ch, keys)
			}
		}
	}
	if !g.all && len(g.channels) == 0 {
		return Grant{}, ErrBadCredentials
	}
	return g, nil
}

// signedSHA256 reports, in constant time, whether sig is the HMAC-SHA256
// of body with key.
func signedSHA256(key, body, sig []byte) bool {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return hmac.Equal(m.Sum(nil), sig)
}

// VerifyTokens are the accepted verify tokens of a provider's webhook URL
// check (Meta's hub.verify_token), several at once so that they can be
// rotated. Tokens are taken verbatim (no channel:secret form: the check
// names no channel) and compared in constant time over SHA-256 digests.
type VerifyTokens struct{ digests [][sha256.Size]byte }

// NewVerifyTokens returns the verify tokens of list; empty entries are
// passed over, and at least one is required.
func NewVerifyTokens(list []string) (*VerifyTokens, error) {
	var v VerifyTokens
	for _, t := range list {
		if t = strings.TrimSpace(t); t != "" {
			v.digests = append(v.digests, sha256.Sum256([]byte(t)))
		}
	}
	if len(v.digests) == 0 {
		return nil, errors.New("verify tokens: none given")
	}
	return &v, nil
}

// accepts compares t with every token, all of them, in constant time.
func (v *VerifyTokens) Accepts(t string) bool {
	if v == nil {
		return false
	}
	d := sha256.Sum256([]byte(t))
	ok := 0
	for i := range v.digests {
		ok |= subtle.ConstantTimeCompare(d[:], v.digests[i][:])
	}
	return ok == 1
}
