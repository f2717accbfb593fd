package auth

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/provider"
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
		// A key is never accepted verbatim: one logged Wawp request would
		// give away the WAHA signing key.
		{"key as wawp signature", map[string]string{HeaderWawpSigning: "k2"}, ErrNoCredentials},
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

func TestWawpVerifier(t *testing.T) {
	hm, _ := NewHMACVerifier([]string{"waha-key"})
	wp, err := NewWawpVerifier([]string{"wawp-1", "CH-A:wawp-a"})
	if err != nil {
		t.Fatal(err)
	}
	v := AnyVerifier{hm, wp}
	if !v.NeedsBody() {
		t.Error("WAHA HMAC with Wawp: NeedsBody = false")
	}
	body := []byte(`{"event":"message","session":"CH-A"}`)
	for _, tt := range []struct {
		name   string
		header map[string]string
		want   error
		all    bool
	}{
		{"wawp token", map[string]string{HeaderWawpSigning: "wawp-1"}, nil, true},
		{"wawp channel token", map[string]string{HeaderWawpSigning: "wawp-a"}, nil, false},
		{"waha key as wawp signature", map[string]string{HeaderWawpSigning: "waha-key"}, ErrBadCredentials, false},
		{"waha hmac", map[string]string{HeaderWAHAHmac: sign("waha-key", body)}, nil, true},
		{"wawp token as hmac key", map[string]string{HeaderWAHAHmac: sign("wawp-1", body)}, ErrBadCredentials, false},
		{"none", nil, ErrNoCredentials, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			for k, val := range tt.header {
				r.Header.Set(k, val)
			}
			g, err := v.VerifyGrant(r, body)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("VerifyGrant = %v; want %v", err, tt.want)
			}
			if err == nil && (g.Allows("CH-B") != tt.all || !g.Allows("CH-A")) {
				t.Errorf("grant %+v: every channel = %v, want %v", g, g.Allows("CH-B"), tt.all)
			}
		})
	}
	if _, err := NewWawpVerifier([]string{" "}); err == nil {
		t.Error("NewWawpVerifier with no tokens = nil error")
	}
}

func TestParseSecret(t *testing.T) {
	for _, tt := range []struct {
		give string
		want Secret
	}{
		{"plain", Secret{Value: "plain"}},
		{" CH-1:s3cret ", Secret{Channel: "CH-1", Value: "s3cret"}},
		{"CH-1:se:cret", Secret{Channel: "CH-1", Value: "se:cret"}},
		{":se:cret", Secret{Value: "se:cret"}},
		{"3EB0C0FFEE@instance:tok", Secret{Channel: "3EB0C0FFEE@instance", Value: "tok"}},
	} {
		got, err := ParseSecret(tt.give)
		if err != nil || got != tt.want {
			t.Errorf("ParseSecret(%q) = %+v, %v; want %+v", tt.give, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", ":", "CH-1:", "a b:secret", strings.Repeat("c", 129) + ":secret"} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) = nil error", bad)
		} else if strings.Contains(err.Error(), "secret") && strings.Contains(bad, "secret") && strings.Contains(err.Error(), bad) {
			t.Errorf("ParseSecret(%q) error quotes the entry: %v", bad, err)
		}
	}
	if _, err := NewTokenVerifier([]string{"ok", "CH 1:bad"}); err == nil || strings.Contains(err.Error(), "bad") {
		t.Errorf("NewTokenVerifier with a bad entry = %v; want an error naming its position only", err)
	}
}

func TestChannelGrants(t *testing.T) {
	v, err := NewTokenVerifier([]string{"CH-A:tok-a", "CH-B:tok-b", "CH-C:shared", "CH-D:shared", "tok-all"})
	if err != nil {
		t.Fatal(err)
	}
	grant := func(tok string) Grant {
		r := httptest.NewRequest("POST", "/?token="+tok, nil)
		g, err := v.VerifyGrant(r, nil)
		if err != nil {
			t.Fatalf("VerifyGrant(%s): %v", tok, err)
		}
		return g
	}
	a := grant("tok-a")
	if !a.Allows("CH-A") || a.Allows("CH-B") || a.Allows("") {
		t.Errorf("tok-a grant %+v", a)
	}
	if s := grant("shared"); !s.Allows("CH-C") || !s.Allows("CH-D") || s.Allows("CH-A") {
		t.Errorf("a secret shared by two channels grants %+v", s)
	}
	if all := grant("tok-all"); !all.Allows("anything") {
		t.Errorf("plain secret grant %+v", all)
	}
	items := []provider.Item{{Channel: "CH-A"}, {Channel: ""}}
	if ch, refused := a.Refused(items, "CH-A"); refused {
		t.Errorf("own channel refused (%s)", ch)
	}
	// A scoped sender posts for its channel only: an item of no known
	// channel is refused, not dead-lettered.
	if _, refused := a.Refused(items, ""); !refused {
		t.Errorf("an item without a channel accepted for a channel-scoped secret")
	}
	if ch, refused := a.Refused(items, "CH-B"); !refused || ch != "CH-B" {
		t.Errorf("an item pinned to another channel: refused %v %q", refused, ch)
	}
	if ch, refused := a.Refused([]provider.Item{{Channel: "CH-A"}, {Channel: "CH-B"}}, ""); !refused || ch != "CH-B" {
		t.Errorf("a mixed delivery: refused %v %q", refused, ch)
	}
	// The HMAC keys take the same form. A scoped key is tried only for a
	// delivery of its channel (the pin, else the body's session), so that a
	// forged body costs one HMAC per plain key and per key of one channel.
	h, err := NewHMACVerifier([]string{"CH-A:key-a", "CH-B:key-b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, target, key string
		body              []byte
		want              string // the granted channel, "" for refused
	}{
		{"session", "/", "key-a", []byte(`{"session":"CH-A","event":"message"}`), "CH-A"},
		{"pin", "/?channel=CH-A", "key-a", []byte(`{"event":"message"}`), "CH-A"},
		{"key of another channel", "/", "key-b", []byte(`{"session":"CH-A"}`), ""},
		{"no channel known", "/", "key-a", []byte(`{}`), ""},
	} {
		r := httptest.NewRequest("POST", tc.target, nil)
		r.Header.Set(HeaderWAHAHmac, sign(tc.key, tc.body))
		g, err := h.VerifyGrant(r, tc.body)
		switch {
		case tc.want == "" && !errors.Is(err, ErrBadCredentials):
			t.Errorf("%s: scoped HMAC key grant %+v, %v; want refused", tc.name, g, err)
		case tc.want != "" && (err != nil || !g.Allows(tc.want) || g.Allows("CH-C")):
			t.Errorf("%s: scoped HMAC key grant %+v, %v; want %s only", tc.name, g, err, tc.want)
		}
	}
}

func TestHMACMaxSkew(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	v, err := NewHMACVerifier([]string{"k"})
	if err != nil {
		t.Fatal(err)
	}
	v.MaxSkew, v.Now = 5*time.Minute, func() time.Time { return now }
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	envelope := func(ts string) []byte {
		return []byte(`{"id":"evt_1","timestamp":` + ts + `,"event":"message","session":"default","payload":{"timestamp":1}}`)
	}
	for _, tt := range []struct {
		name   string
		header string
		body   []byte
		want   error
	}{
		{"fresh milliseconds", ms(now.Add(-time.Minute)), envelope(ms(now.Add(-time.Minute))), nil},
		{"fresh seconds", strconv.FormatInt(now.Unix(), 10), []byte(`{"event":"message"}`), nil},
		{"slightly ahead", ms(now.Add(time.Minute)), envelope(ms(now)), nil},
		{"too old", ms(now.Add(-6 * time.Minute)), envelope(ms(now.Add(-6 * time.Minute))), ErrStale},
		{"too new", ms(now.Add(6 * time.Minute)), envelope(ms(now)), ErrStale},
		{"missing", "", envelope(ms(now)), ErrStale},
		{"not a number", "yesterday", envelope(ms(now)), ErrStale},
		{"body timestamp as a string", ms(now), []byte(`{"payload":{"timestamp":1},"timestamp":"` + ms(now) + `"}`), nil},
		{"body timestamp not a time", ms(now), []byte(`{"timestamp":"soon"}`), ErrStale},
		// The header is not signed: a replayed body keeps its old time.
		{"fresh header, old signed body", ms(now), envelope(ms(now.Add(-time.Hour))), ErrStale},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			r.Header.Set(HeaderWAHAHmac, sign("k", tt.body))
			if tt.header != "" {
				r.Header.Set(HeaderWAHATimestamp, tt.header)
			}
			err := v.Verify(r, tt.body)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify = %v; want %v", err, tt.want)
			}
			if tt.want != nil && !errors.Is(err, ErrBadCredentials) {
				t.Errorf("Verify = %v; want it to count as bad credentials (403)", err)
			}
		})
	}
	// Off by default: an old timestamp passes.
	v.MaxSkew = 0
	r := httptest.NewRequest("POST", "/", nil)
	old := envelope(ms(now.Add(-time.Hour)))
	r.Header.Set(HeaderWAHAHmac, sign("k", old))
	if err := v.Verify(r, old); err != nil {
		t.Errorf("without a max skew: Verify = %v", err)
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

// BenchmarkVerify: what authentication costs a delivery, with ten secrets
// of which most are scoped to a channel, and WAHA's HMAC of a 1 KB body
// with and without the timestamp check.
func BenchmarkVerify(b *testing.B) {
	var list []string
	for i := range 9 {
		list = append(list, "CH-"+strconv.Itoa(i)+":secret-"+strconv.Itoa(i))
	}
	tv, _ := NewTokenVerifier(append(list, "plain-secret"))
	b.Run("token", func(b *testing.B) {
		r := httptest.NewRequest("POST", "/?token=secret-5", nil)
		for b.Loop() {
			if _, err := tv.VerifyGrant(r, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	body := []byte(`{"id":"evt_1","timestamp":` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `,"session":"default","event":"message","payload":{"body":"` + strings.Repeat("x", 900) + `"}}`)
	// One key per session: a delivery still costs one HMAC.
	var perSession []string
	for i := range 100 {
		perSession = append(perSession, "CH-"+strconv.Itoa(i)+":k-"+strconv.Itoa(i))
	}
	hv100, _ := NewHMACVerifier(perSession)
	b.Run("hmac/100-channel-keys", func(b *testing.B) {
		r := httptest.NewRequest("POST", "/?channel=CH-7", nil)
		r.Header.Set(HeaderWAHAHmac, sign("forged", body))
		for b.Loop() {
			if _, err := hv100.VerifyGrant(r, body); err == nil {
				b.Fatal("forged signature accepted")
			}
		}
	})
	for _, skew := range []time.Duration{0, time.Hour} {
		hv, _ := NewHMACVerifier([]string{"k1", "default:k2"})
		hv.MaxSkew = skew
		b.Run("hmac/max-skew="+skew.String(), func(b *testing.B) {
			r := httptest.NewRequest("POST", "/", nil)
			r.Header.Set(HeaderWAHAHmac, sign("k2", body))
			r.Header.Set(HeaderWAHATimestamp, strconv.FormatInt(time.Now().UnixMilli(), 10))
			for b.Loop() {
				if _, err := hv.VerifyGrant(r, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
