package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func signSHA256(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// TestHubSignatureVerifier: Meta's X-Hub-Signature-256
// (https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads).
func TestHubSignatureVerifier(t *testing.T) {
	v, err := NewHubSignatureVerifier([]string{"old-app-secret", " new-app-secret "})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"object":"whatsapp_business_account","entry":[]}`)
	good := "sha256=" + signSHA256("new-app-secret", body)
	for _, tt := range []struct {
		name, header string
		want         error
	}{
		{"good", good, nil},
		{"rotated", "sha256=" + signSHA256("old-app-secret", body), nil},
		{"upper-case hex", "sha256=" + strings.ToUpper(signSHA256("old-app-secret", body)), nil},
		{"missing", "", ErrNoCredentials},
		{"wrong secret", "sha256=" + signSHA256("other", body), ErrBadCredentials},
		{"other body", "sha256=" + signSHA256("new-app-secret", []byte("{}")), ErrBadCredentials},
		{"no algorithm", signSHA256("new-app-secret", body), ErrBadCredentials},
		{"sha1", "sha1=" + signSHA256("new-app-secret", body)[:40], ErrBadCredentials},
		{"sha1 name, sha256 value", "sha1=" + signSHA256("new-app-secret", body), ErrBadCredentials},
		{"upper-case algorithm", "SHA256=" + signSHA256("new-app-secret", body), ErrBadCredentials},
		{"not hex", "sha256=zz" + signSHA256("new-app-secret", body)[2:], ErrBadCredentials},
		{"short", "sha256=" + signSHA256("new-app-secret", body)[:62], ErrBadCredentials},
		{"long", good + "00", ErrBadCredentials},
		{"the secret itself", "sha256=new-app-secret", ErrBadCredentials},
		{"empty digest", "sha256=", ErrBadCredentials},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/webhooks/meta", nil)
			if tt.header != "" {
				r.Header.Set(HeaderHubSignature256, tt.header)
			}
			g, err := v.VerifyGrant(r, body)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("VerifyGrant = %v; want %v", err, tt.want)
			}
			if err == nil && !g.Allows("any") {
				t.Errorf("a plain secret's grant does not allow every channel")
			}
		})
	}
	if _, err := NewHubSignatureVerifier([]string{" ", ""}); err == nil {
		t.Error("NewHubSignatureVerifier with no secrets = nil error")
	}
	if _, err := NewHubSignatureVerifier([]string{"chan:"}); err == nil {
		t.Error("NewHubSignatureVerifier with an empty scoped secret = nil error")
	}
}

func TestHubSignatureVerifierScoped(t *testing.T) {
	v, err := NewHubSignatureVerifier([]string{"111:secret-a", "222:secret-b"})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{}`)
	for _, tt := range []struct {
		name, url, key string
		want           []string
		err            error
	}{
		{"scoped", "/", "secret-a", []string{"111"}, nil},
		{"scoped other", "/", "secret-b", []string{"222"}, nil},
		{"pinned", "/?channel=222", "secret-b", []string{"222"}, nil},
		{"pinned to another channel", "/?channel=111", "secret-b", nil, ErrBadCredentials},
		{"unknown", "/", "secret-c", nil, ErrBadCredentials},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", tt.url, nil)
			r.Header.Set(HeaderHubSignature256, "sha256="+signSHA256(tt.key, body))
			g, err := v.VerifyGrant(r, body)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("VerifyGrant = %v; want %v", err, tt.err)
			}
			for _, ch := range []string{"111", "222"} {
				want := false
				for _, w := range tt.want {
					want = want || w == ch
				}
				if g.Allows(ch) != want {
					t.Errorf("grant allows %s = %v, want %v", ch, g.Allows(ch), want)
				}
			}
		})
	}
}

func TestVerifyTokens(t *testing.T) {
	v, err := NewVerifyTokens([]string{"first", " second ", ""})
	if err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]bool{"first": true, "second": true, "secon": false, "": false, "first:x": false} {
		if got := v.Accepts(token); got != want {
			t.Errorf("Accepts(%q) = %v, want %v", token, got, want)
		}
	}
	if (*VerifyTokens)(nil).Accepts("first") {
		t.Error("nil VerifyTokens accept a token")
	}
	if _, err := NewVerifyTokens([]string{" "}); err == nil {
		t.Error("NewVerifyTokens with no tokens = nil error")
	}
}
