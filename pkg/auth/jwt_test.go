package auth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wahook/wahook/pkg/auth"
)

func TestJWTVerifier(t *testing.T) {
	now := time.Date(2025, 6, 10, 14, 0, 0, 0, time.UTC)
	v, err := auth.NewJWTVerifier([]string{"old-key", "new-key", "evo-sales:scoped-key"})
	if err != nil {
		t.Fatal(err)
	}
	v.Now = func() time.Time { return now }
	iat := now.Unix() - 5
	claims := func(over map[string]any) jwt.MapClaims {
		c := jwt.MapClaims{"iat": iat, "exp": iat + 600, "app": "evolution", "action": "webhook"}
		for k, x := range over {
			if x == nil {
				delete(c, k)
			} else {
				c[k] = x
			}
		}
		return c
	}
	sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	none := sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil))
	good := sign(jwt.SigningMethodHS256, []byte("new-key"), claims(nil))
	// A token whose header says HS512 or RS256: refused even with the key.
	hs512 := sign(jwt.SigningMethodHS512, []byte("new-key"), claims(nil))
	rs256 := sign(jwt.SigningMethodRS256, rsaKey, claims(nil))
	parts := strings.Split(good, ".")
	for _, tc := range []struct {
		name    string
		auth    string
		want    error
		channel string // a channel the grant covers
		notFor  string // one it does not
	}{
		{"good", "Bearer " + good, nil, "any", ""},
		{"rotated, old key", "Bearer " + sign(jwt.SigningMethodHS256, []byte("old-key"), claims(nil)), nil, "any", ""},
		{"channel-scoped key", "Bearer " + sign(jwt.SigningMethodHS256, []byte("scoped-key"), claims(nil)), nil, "evo-sales", "other"},
		{"lower-case bearer", "bearer " + good, nil, "any", ""},
		{"within the leeway", "Bearer " + sign(jwt.SigningMethodHS256, []byte("new-key"), claims(map[string]any{"exp": now.Unix() - 10})), nil, "any", ""},
		{"expired", "Bearer " + sign(jwt.SigningMethodHS256, []byte("new-key"), claims(map[string]any{"exp": now.Unix() - 120})), auth.ErrBadCredentials, "", ""},
		{"no exp", "Bearer " + sign(jwt.SigningMethodHS256, []byte("new-key"), claims(map[string]any{"exp": nil})), auth.ErrBadCredentials, "", ""},
		{"issued in the future", "Bearer " + sign(jwt.SigningMethodHS256, []byte("new-key"), claims(map[string]any{"iat": now.Unix() + 3600, "exp": now.Unix() + 4200})), auth.ErrBadCredentials, "", ""},
		{"wrong app", "Bearer " + sign(jwt.SigningMethodHS256, []byte("new-key"), claims(map[string]any{"app": "other"})), auth.ErrBadCredentials, "", ""},
		{"wrong action", "Bearer " + sign(jwt.SigningMethodHS256, []byte("new-key"), claims(map[string]any{"action": "login"})), auth.ErrBadCredentials, "", ""},
		{"no app", "Bearer " + sign(jwt.SigningMethodHS256, []byte("new-key"), claims(map[string]any{"app": nil})), auth.ErrBadCredentials, "", ""},
		{"wrong key", "Bearer " + sign(jwt.SigningMethodHS256, []byte("not-a-key"), claims(nil)), auth.ErrBadCredentials, "", ""},
		{"alg none", "Bearer " + none, auth.ErrBadCredentials, "", ""},
		{"HS512", "Bearer " + hs512, auth.ErrBadCredentials, "", ""},
		{"RS256", "Bearer " + rs256, auth.ErrBadCredentials, "", ""},
		{"tampered payload", "Bearer " + parts[0] + "." + strings.TrimRight(parts[1], "A") + "x." + parts[2], auth.ErrBadCredentials, "", ""},
		{"malformed", "Bearer a.b.c", auth.ErrBadCredentials, "", ""},
		{"too long", "Bearer " + strings.Repeat("a", 5000) + ".b.c", auth.ErrBadCredentials, "", ""},
		{"not a jwt", "Bearer static-token", auth.ErrNoCredentials, "", ""},
		{"basic", "Basic dXNlcjpwYXNz", auth.ErrNoCredentials, "", ""},
		{"none", "", auth.ErrNoCredentials, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/webhooks/evolution", nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			g, err := v.VerifyGrant(r, nil)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("VerifyGrant = %v; want %v", err, tc.want)
			}
			if tc.channel != "" && !g.Allows(tc.channel) {
				t.Errorf("grant does not cover %s", tc.channel)
			}
			if tc.notFor != "" && g.Allows(tc.notFor) {
				t.Errorf("grant covers %s", tc.notFor)
			}
		})
	}
	if _, err := auth.NewJWTVerifier(nil); err == nil {
		t.Error("NewJWTVerifier(nil) accepted no keys")
	}
	if _, err := auth.NewJWTVerifier([]string{"ch:"}); err == nil || strings.Contains(err.Error(), "ch:") {
		t.Errorf("NewJWTVerifier with an empty key = %v; want an error that quotes nothing", err)
	}
}

// TestJWTVerifierEvolutionRetries: Evolution signs one token per event and
// reuses it for every retry. EvolutionAPI/evolution-api
// src/api/integrations/event/webhook/webhook.controller.ts (2.3.x): emit
// calls generateJwtToken (iat, exp = iat+600) once, puts the header on the
// axios instance, and retryWebhookRequest posts with that same instance up
// to WEBHOOK.RETRY.MAX_ATTEMPTS (10) times, waiting 5 s doubling to at most
// 300 s (jitter aside), and stops at a 401 or 403. So the attempts after
// 600 s (and the leeway) are refused.
func TestJWTVerifierEvolutionRetries(t *testing.T) {
	iat := time.Date(2025, 6, 10, 14, 0, 0, 0, time.UTC)
	v, err := auth.NewJWTVerifier([]string{"jwt-key"})
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iat": iat.Unix(), "exp": iat.Unix() + 600, "app": "evolution", "action": "webhook",
	}).SignedString([]byte("jwt-key"))
	if err != nil {
		t.Fatal(err)
	}
	// Seconds after the first attempt at which each attempt is sent.
	at, wait := []int64{0}, int64(5)
	for len(at) < 10 {
		at = append(at, at[len(at)-1]+wait)
		wait = min(wait*2, 300)
	}
	var refused []int64
	for _, s := range at {
		v.Now = func() time.Time { return iat.Add(time.Duration(s) * time.Second) }
		r := httptest.NewRequest("POST", "/v1/webhooks/evolution", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		if _, err := v.VerifyGrant(r, nil); err != nil {
			if !errors.Is(err, auth.ErrBadCredentials) {
				t.Fatalf("attempt at %d s: %v", s, err)
			}
			refused = append(refused, s)
		}
	}
	if want := []int64{915, 1215}; !slices.Equal(refused, want) {
		t.Errorf("attempts refused at %v s; want %v (schedule %v)", refused, want, at)
	}
}
