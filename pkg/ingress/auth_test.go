package ingress

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"testing"
)

func TestTokenVerifier(t *testing.T) {
	v, err := NewTokenVerifier([]string{"old-secret", " new-secret "})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		url    string
		header map[string]string
		want   error
	}{
		{"bearer", "/", map[string]string{"Authorization": "Bearer new-secret"}, nil},
		{"bearer lower case", "/", map[string]string{"Authorization": "bearer old-secret"}, nil},
		{"raw authorization", "/", map[string]string{"Authorization": "old-secret"}, nil},
		{"header", "/", map[string]string{HeaderToken: "old-secret"}, nil},
		{"query", "/?token=new-secret", nil, nil},
		{"query escaped", "/?token=new%2Dsecret", nil, nil},
		{"wrong", "/", map[string]string{"Authorization": "Bearer nope"}, ErrBadCredentials},
		{"wrong query", "/?token=old", nil, ErrBadCredentials},
		{"prefix of a secret", "/?token=new-secre", nil, ErrBadCredentials},
		{"one right among wrong", "/?token=nope", map[string]string{HeaderToken: "new-secret"}, nil},
		{"none", "/", nil, ErrNoCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", tt.url, nil)
			for k, val := range tt.header {
				r.Header.Set(k, val)
			}
			if err := v.Verify(r, nil); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify = %v; want %v", err, tt.want)
			}
		})
	}
	if _, err := NewTokenVerifier([]string{" ", ""}); err == nil {
		t.Error("NewTokenVerifier with no tokens = nil error")
	}
}

func sign(key string, body []byte) string {
	m := hmac.New(sha512.New, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func TestHMACVerifier(t *testing.T) {
	v, err := NewHMACVerifier([]string{"k1", "k2"})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"event":"message","session":"default"}`)
	tests := []struct {
		name   string
		header map[string]string
		want   error
	}{
		{"waha hmac key 1", map[string]string{HeaderWAHAHmac: sign("k1", body), "X-Webhook-Hmac-Algorithm": "sha512"}, nil},
		{"waha hmac key 2 upper hex", map[string]string{HeaderWAHAHmac: upper(sign("k2", body))}, nil},
		{"wrong key", map[string]string{HeaderWAHAHmac: sign("k3", body)}, ErrBadCredentials},
		{"other body", map[string]string{HeaderWAHAHmac: sign("k1", []byte("{}"))}, ErrBadCredentials},
		{"not hex", map[string]string{HeaderWAHAHmac: "zz"}, ErrBadCredentials},
		{"other algorithm", map[string]string{HeaderWAHAHmac: sign("k1", body), "X-Webhook-Hmac-Algorithm": "sha256"}, ErrBadCredentials},
		{"wawp signature", map[string]string{HeaderWawpSigning: "k2"}, nil},
		{"wawp wrong", map[string]string{HeaderWawpSigning: "k"}, ErrBadCredentials},
		{"none", nil, ErrNoCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			for k, val := range tt.header {
				r.Header.Set(k, val)
			}
			if err := v.Verify(r, body); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify = %v; want %v", err, tt.want)
			}
		})
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 32
		}
	}
	return string(b)
}
