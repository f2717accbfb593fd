// Package auth checks who sent a webhook delivery: the providers' schemes
// (shared tokens, HMAC signatures of the body, Meta's X-Hub-Signature-256,
// Evolution API's JWT), each with several secrets at once for rotation and
// secrets limited to a channel. Provider packages build their verifiers
// from these; the ingress runs them.
package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/wahook/wahook/pkg/provider"
)

// Authentication errors: ErrNoCredentials answers 401, ErrBadCredentials
// (and ErrStale, which wraps it) 403.
var (
	ErrNoCredentials  = errors.New("no credentials")
	ErrBadCredentials = errors.New("credentials not accepted")
	// ErrStale reports a signed delivery whose timestamp is further from
	// now than the accepted skew: a replay, or a clock far off.
	ErrStale = fmt.Errorf("%w: timestamp outside the accepted skew", ErrBadCredentials)
)

// Verifier checks who sent a delivery. Token schemes decide from the request
// alone, before the body is read; signature schemes need the body.
type Verifier interface {
	// NeedsBody reports whether Verify reads body.
	NeedsBody() bool
	// Verify returns nil, ErrNoCredentials or ErrBadCredentials.
	Verify(r *http.Request, body []byte) error
}

// ChannelVerifier is a Verifier whose secrets may be limited to a channel.
type ChannelVerifier interface {
	Verifier
	// VerifyGrant is Verify that also tells which channels the presented
	// credentials may post for.
	VerifyGrant(r *http.Request, body []byte) (Grant, error)
}

// Grant is what accepted credentials allow: every channel, or the channels
// of the channel-scoped secrets they matched.
type Grant struct {
	all      bool
	channels []string
}

// AllChannels is the grant of a plain secret.
var AllChannels = Grant{all: true}

// Allows reports whether the grant covers channel.
func (g Grant) Allows(channel string) bool {
	if g.all {
		return true
	}
	for _, c := range g.channels {
		if c == channel {
			return true
		}
	}
	return false
}

func (g Grant) union(o Grant) Grant {
	if g.all || o.all {
		return AllChannels
	}
	return Grant{channels: append(append([]string(nil), g.channels...), o.channels...)}
}

// Refused returns the first channel of items (after the pin) the grant does
// not cover. A channel-scoped grant covers no item without a channel: its
// sender may post for its channel only, so nothing else of it is stored.
func (g Grant) Refused(items []provider.Item, pin string) (string, bool) {
	if g.all {
		return "", false
	}
	for i := range items {
		ch := items[i].Channel
		if ch == "" {
			ch = pin
		}
		if !g.Allows(ch) {
			return ch, true
		}
	}
	return "", false
}

// Authorize runs v and returns the grant of the credentials it accepted.
func Authorize(v Verifier, r *http.Request, body []byte) (Grant, error) {
	if cv, ok := v.(ChannelVerifier); ok {
		return cv.VerifyGrant(r, body)
	}
	if err := v.Verify(r, body); err != nil {
		return Grant{}, err
	}
	return AllChannels, nil
}

// Header names of the schemes.
const (
	HeaderToken         = "X-Wahook-Token"
	HeaderWAHAHmac      = "X-Webhook-Hmac"
	HeaderWAHATimestamp = "X-Webhook-Timestamp"
	HeaderWawpSigning   = "X-Wawp-Signature"
)

// maxSecretChannel bounds the channel part of a channel:secret entry.
const maxSecretChannel = 128

// Secret is one configured secret: valid for every channel when Channel is
// empty, else for that channel only.
type Secret struct {
	Channel string
	Value   string
}

// ParseSecret reads one entry of a secrets list: "secret" is valid for
// every channel, "channel:secret" for that channel only. The first ':'
// separates, so a channel cannot contain one; an entry starting with ':' is
// a plain secret, which is how a secret containing ':' is written
// (":se:cret" is the plain secret "se:cret"). White space around the entry
// is ignored.
func ParseSecret(entry string) (Secret, error) {
	entry = strings.TrimSpace(entry)
	ch, v, scoped := strings.Cut(entry, ":")
	if !scoped {
		ch, v = "", entry
	}
	// Errors never quote the entry: it is a secret.
	switch {
	case v == "":
		return Secret{}, errors.New("empty secret")
	case len(ch) > maxSecretChannel:
		return Secret{}, fmt.Errorf("channel longer than %d bytes", maxSecretChannel)
	case strings.IndexFunc(ch, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return Secret{}, errors.New("channel with white space or control characters")
	}
	return Secret{Channel: ch, Value: v}, nil
}

// secrets holds accepted secrets as SHA-256 digests so that comparisons take
// the same time whatever the length of what is presented, each with the
// channel it is limited to ("" for every channel).
type secrets struct {
	digests  [][sha256.Size]byte
	channels []string
}

func newSecrets(kind string, list []string) (secrets, error) {
	var s secrets
	for i, entry := range list {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		sec, err := ParseSecret(entry)
		if err != nil {
			return secrets{}, fmt.Errorf("%s %d: %w", kind, i+1, err)
		}
		s.digests = append(s.digests, sha256.Sum256([]byte(sec.Value)))
		s.channels = append(s.channels, sec.Channel)
	}
	if len(s.digests) == 0 {
		return secrets{}, fmt.Errorf("%s: none given", kind)
	}
	return s, nil
}

// grant compares v with every secret, all of them, in constant time, and
// returns what the matching ones allow.
func (s secrets) grant(v string) (Grant, bool) {
	d := sha256.Sum256([]byte(v))
	var g Grant
	ok := false
	for i := range s.digests {
		if subtle.ConstantTimeCompare(d[:], s.digests[i][:]) == 1 {
			ok = true
			if s.channels[i] == "" {
				g.all = true
			} else {
				g.channels = append(g.channels, s.channels[i])
			}
		}
	}
	return g, ok
}

// TokenVerifier accepts a shared secret sent as "Authorization: Bearer <t>",
// an X-Wahook-Token header or a "token" query parameter (for providers such as
// Z-API that can only be given a URL). Several tokens may be valid at once so
// that they can be rotated; each may be limited to a channel (ParseSecret).
type TokenVerifier struct{ tokens secrets }

// NewTokenVerifier returns a verifier accepting any of tokens.
func NewTokenVerifier(tokens []string) (*TokenVerifier, error) {
	s, err := newSecrets("token", tokens)
	if err != nil {
		return nil, fmt.Errorf("token verifier: %w", err)
	}
	return &TokenVerifier{tokens: s}, nil
}

// NeedsBody implements Verifier.
func (*TokenVerifier) NeedsBody() bool { return false }

// Verify implements Verifier.
func (v *TokenVerifier) Verify(r *http.Request, body []byte) error {
	_, err := v.VerifyGrant(r, body)
	return err
}

// VerifyGrant implements ChannelVerifier.
func (v *TokenVerifier) VerifyGrant(r *http.Request, _ []byte) (Grant, error) {
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
		return Grant{}, ErrNoCredentials
	}
	var g Grant
	matched := false
	for _, t := range presented {
		if tg, ok := v.tokens.grant(t); ok {
			g, matched = g.union(tg), true
		}
	}
	if !matched {
		return Grant{}, ErrBadCredentials
	}
	return g, nil
}

// WawpVerifier checks Wawp's X-Wawp-Signature, which carries the configured
// secret itself (Wawp signs nothing). Its secrets are its own: a WAHA HMAC
// key is never accepted here, since a logged Wawp request would expose it.
type WawpVerifier struct{ tokens secrets }

// NewWawpVerifier returns a verifier accepting any of tokens.
func NewWawpVerifier(tokens []string) (*WawpVerifier, error) {
	s, err := newSecrets("wawp token", tokens)
	if err != nil {
		return nil, fmt.Errorf("wawp verifier: %w", err)
	}
	return &WawpVerifier{tokens: s}, nil
}

// NeedsBody implements Verifier.
func (*WawpVerifier) NeedsBody() bool { return false }

// Verify implements Verifier.
func (v *WawpVerifier) Verify(r *http.Request, body []byte) error {
	_, err := v.VerifyGrant(r, body)
	return err
}

// VerifyGrant implements ChannelVerifier.
func (v *WawpVerifier) VerifyGrant(r *http.Request, _ []byte) (Grant, error) {
	sig := r.Header.Get(HeaderWawpSigning)
	if sig == "" {
		return Grant{}, ErrNoCredentials
	}
	g, ok := v.tokens.grant(sig)
	if !ok {
		return Grant{}, ErrBadCredentials
	}
	return g, nil
}

// HMACVerifier checks WAHA's X-Webhook-Hmac, the hex HMAC-SHA512 of the raw
// body. Several keys may be valid at once so that they can be rotated; each
// may be limited to a channel (ParseSecret).
type HMACVerifier struct {
	// plain are the keys valid for every channel; scoped the channel-scoped
	// ones by channel, so that a delivery costs an HMAC of its body per
	// plain key and per key of its own channel only, however many
	// channels have keys.
	plain  [][]byte
	scoped map[string][][]byte
	// MaxSkew, when positive, also refuses (ErrStale) a delivery whose
	// X-Webhook-Timestamp, or the signed body's top-level "timestamp",
	// is further than this from now, before or after: a captured delivery
	// replayed later. Both may be seconds or milliseconds (told by
	// magnitude, as for event times); WAHA sends milliseconds. It must
	// exceed the time WAHA keeps retrying one delivery.
	MaxSkew time.Duration
	// Now is MaxSkew's clock; time.Now when nil.
	Now func() time.Time
}

// NewHMACVerifier returns a verifier accepting signatures made with any of keys.
func NewHMACVerifier(keys []string) (*HMACVerifier, error) {
	// newSecrets checks the entries; HMAC needs the keys themselves.
	if _, err := newSecrets("hmac key", keys); err != nil {
		return nil, fmt.Errorf("hmac verifier: %w", err)
	}
	v := &HMACVerifier{scoped: map[string][][]byte{}}
	for _, k := range keys {
		if strings.TrimSpace(k) == "" {
			continue
		}
		sec, _ := ParseSecret(k) // checked by newSecrets
		if sec.Channel == "" {
			v.plain = append(v.plain, []byte(sec.Value))
			continue
		}
		v.scoped[sec.Channel] = append(v.scoped[sec.Channel], []byte(sec.Value))
	}
	return v, nil
}

// NeedsBody implements Verifier.
func (*HMACVerifier) NeedsBody() bool { return true }

// Verify implements Verifier.
func (v *HMACVerifier) Verify(r *http.Request, body []byte) error {
	_, err := v.VerifyGrant(r, body)
	return err
}

// VerifyGrant implements ChannelVerifier.
func (v *HMACVerifier) VerifyGrant(r *http.Request, body []byte) (Grant, error) {
	sig := r.Header.Get(HeaderWAHAHmac)
	if sig == "" {
		return Grant{}, ErrNoCredentials
	}
	if alg := r.Header.Get("X-Webhook-Hmac-Algorithm"); alg != "" && !strings.EqualFold(alg, "sha512") {
		return Grant{}, ErrBadCredentials
	}
	want, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil || len(want) != sha512.Size {
		return Grant{}, ErrBadCredentials
	}
	var g Grant
	for _, k := range v.plain {
		if signedWith(k, body, want) {
			g.all = true
		}
	}
	if !g.all && len(v.scoped) > 0 {
		// The delivery's channel: the pin, which the payload must match
		// anyway, else the body's session.
		ch := r.URL.Query().Get("channel")
		if ch == "" {
			if raw, ok := topLevel(body, "session"); ok {
				_ = json.Unmarshal(raw, &ch)
			}
		}
		for _, k := range v.scoped[ch] {
			if signedWith(k, body, want) {
				g.channels = []string{ch}
			}
		}
	}
	if !g.all && len(g.channels) == 0 {
		return Grant{}, ErrBadCredentials
	}
	if v.MaxSkew > 0 {
		if err := v.fresh(r, body); err != nil {
			return Grant{}, err
		}
	}
	return g, nil
}

// signedWith reports, in constant time, whether sig is the HMAC-SHA512 of
// body with key.
func signedWith(key, body, sig []byte) bool {
	m := hmac.New(sha512.New, key)
	m.Write(body)
	return subtle.ConstantTimeCompare(m.Sum(nil), sig) == 1
}

// fresh checks the delivery's timestamps against MaxSkew. The header is
// required; it is not signed, so the body's signed timestamp, when there
// is one, is checked as well.
func (v *HMACVerifier) fresh(r *http.Request, body []byte) error {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	t, ok := parseUnix(r.Header.Get(HeaderWAHATimestamp))
	if !ok {
		return ErrStale
	}
	times := []time.Time{t}
	if raw, ok := topLevel(body, "timestamp"); ok {
		bt, ok := parseUnix(strings.Trim(string(raw), `"`))
		if !ok {
			return ErrStale
		}
		times = append(times, bt)
	}
	n := now()
	for _, t := range times {
		if d := n.Sub(t); d > v.MaxSkew || d < -v.MaxSkew {
			return ErrStale
		}
	}
	return nil
}

// topLevel returns the raw value of a top-level member of a JSON object,
// reading no further than that member (WAHA puts "timestamp" second, before
// the payload).
func topLevel(body []byte, name string) (json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		if k == name {
			return v, true
		}
	}
	return nil, false
}

// parseUnix reads whole seconds or milliseconds since the epoch: values
// from 1e11 on are milliseconds (1e11 seconds is the year 5138).
func parseUnix(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 16 {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	if n >= 1e11 {
		return time.UnixMilli(n), true
	}
	return time.Unix(n, 0), true
}

// AnyVerifier accepts a delivery that one of verifiers accepts: the first
// one that finds its credentials in the request decides (WAHA's HMAC or
// Wawp's signature on the same route).
type AnyVerifier []Verifier

// NeedsBody implements Verifier.
func (a AnyVerifier) NeedsBody() bool {
	for _, v := range a {
		if v.NeedsBody() {
			return true
		}
	}
	return false
}

// Verify implements Verifier.
func (a AnyVerifier) Verify(r *http.Request, body []byte) error {
	_, err := a.VerifyGrant(r, body)
	return err
}

// VerifyGrant implements ChannelVerifier.
func (a AnyVerifier) VerifyGrant(r *http.Request, body []byte) (Grant, error) {
	for _, v := range a {
		g, err := Authorize(v, r, body)
		if !errors.Is(err, ErrNoCredentials) {
			return g, err
		}
	}
	return Grant{}, ErrNoCredentials
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}
