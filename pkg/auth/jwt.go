package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTVerifier checks the "Authorization: Bearer <JWT>" Evolution API sends
// when an instance's webhook headers hold a jwt_key: an HS256 token signed
// with that key, claims {iat, exp: iat+600, app: "evolution", action:
// "webhook"}. The signature (HS256 only), exp (with Leeway), app and action
// must hold. Several keys may be valid at once so that they can be rotated;
// each may be limited to a channel (ParseSecret).
//
// A bearer value that is not a JWT at all is not this verifier's
// credential (ErrNoCredentials), so that an AnyVerifier can hand it to a
// static token verifier next.
type JWTVerifier struct {
	keys     [][]byte
	channels []string
	// Leeway is the clock skew accepted on exp, iat and nbf; 30 s when zero.
	Leeway time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Evolution's claims.
const (
	jwtApp    = "evolution"
	jwtAction = "webhook"
	// maxJWTBytes bounds what is parsed: Evolution's tokens are about 200 bytes.
	maxJWTBytes = 4096
)

// NewJWTVerifier returns a verifier accepting tokens signed with any of keys.
func NewJWTVerifier(keys []string) (*JWTVerifier, error) {
	if _, err := newSecrets("jwt key", keys); err != nil {
		return nil, fmt.Errorf("jwt verifier: %w", err)
	}
	v := &JWTVerifier{}
	for _, k := range keys {
		if strings.TrimSpace(k) == "" {
			continue
		}
		sec, _ := ParseSecret(k) // checked by newSecrets
		v.keys = append(v.keys, []byte(sec.Value))
		v.channels = append(v.channels, sec.Channel)
	}
	return v, nil
}

// NeedsBody implements Verifier.
func (*JWTVerifier) NeedsBody() bool { return false }

// Verify implements Verifier.
func (v *JWTVerifier) Verify(r *http.Request, body []byte) error {
	_, err := v.VerifyGrant(r, body)
	return err
}

// evolutionClaims are the claims Evolution signs.
type evolutionClaims struct {
	App    string `json:"app"`
	Action string `json:"action"`
	jwt.RegisteredClaims
}

// VerifyGrant implements ChannelVerifier.
func (v *JWTVerifier) VerifyGrant(r *http.Request, _ []byte) (Grant, error) {
	a := r.Header.Get("Authorization")
	tok, ok := cutPrefixFold(a, "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || strings.Count(tok, ".") != 2 {
		return Grant{}, ErrNoCredentials
	}
	if len(tok) > maxJWTBytes {
		return Grant{}, ErrBadCredentials
	}
	leeway := v.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	)
	// Every key is tried, so that the time taken does not tell which matched.
	var g Grant
	matched := false
	for i, key := range v.keys {
		var claims evolutionClaims
		_, err := parser.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return key, nil })
		if errors.Is(err, jwt.ErrTokenMalformed) {
			return Grant{}, ErrBadCredentials
		}
		if err != nil || claims.App != jwtApp || claims.Action != jwtAction {
			continue
		}
		matched = true
		if v.channels[i] == "" {
			g.all = true
		} else {
			g.channels = append(g.channels, v.channels[i])
		}
	}
	if !matched {
		return Grant{}, ErrBadCredentials
	}
	return g, nil
}
