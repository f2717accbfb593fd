package main

import (
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wahook/wahook/pkg/auth"
)

// TestEvolutionVerifiers: WAHOOK_AUTH_EVOLUTION_TOKENS and
// WAHOOK_AUTH_EVOLUTION_JWT_KEYS each configure Evolution, alone or
// together, and either kind of secret authenticates.
func TestEvolutionVerifiers(t *testing.T) {
	t.Setenv("WAHOOK_AUTH_EVOLUTION_TOKENS", "static-1, static-2")
	t.Setenv("WAHOOK_AUTH_EVOLUTION_JWT_KEYS", "jwt-key")
	c, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := verifiers(c)
	if err != nil {
		t.Fatal(err)
	}
	v := vs["evolution"]
	if v == nil {
		t.Fatal("no evolution verifier")
	}
	now := time.Now().Unix()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iat": now, "exp": now + 600, "app": "evolution", "action": "webhook"}).
		SignedString([]byte("jwt-key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		auth, query string
		want        error
	}{
		{"Bearer " + tok, "", nil},
		{"Bearer static-2", "", nil},
		{"", "?token=static-1", nil},
		{"Bearer nope", "", auth.ErrBadCredentials},
		{"", "", auth.ErrNoCredentials},
	} {
		r := httptest.NewRequest("POST", "/v1/webhooks/evolution"+tc.query, nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		if err := v.Verify(r, nil); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("Verify(%q, %q) = %v; want %v", tc.auth, tc.query, err, tc.want)
		}
	}

	t.Setenv("WAHOOK_AUTH_EVOLUTION_TOKENS", "")
	c, _ = parseConfig(nil)
	if vs, err := verifiers(c); err != nil || vs["evolution"] == nil {
		t.Errorf("JWT keys alone: %v, %v", vs, err)
	}
	t.Setenv("WAHOOK_AUTH_EVOLUTION_JWT_KEYS", "")
	c, _ = parseConfig(nil)
	if vs, err := verifiers(c); err != nil || vs["evolution"] != nil {
		t.Errorf("no Evolution secrets gave a verifier: %v, %v", vs, err)
	}
}
