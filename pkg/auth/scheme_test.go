package auth

import (
	"flag"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, s Scheme, args ...string) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	s.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
}

// TestSchemes: a scheme gives no verifier until one of its settings is
// set, the verifier of the settings given otherwise, and errors that name
// the setting but never the secret.
func TestSchemes(t *testing.T) {
	evo := func() Scheme { return AnyOf(JWT("jwt", ""), Tokens("tokens", "")) }
	s := evo()
	parse(t, s, "-jwt", " , ")
	if v, err := s.Verifier(); v != nil || err != nil {
		t.Errorf("blank settings: %v, %v; want no verifier", v, err)
	}
	s = evo()
	parse(t, s, "-tokens", "t1")
	if v, err := s.Verifier(); err != nil {
		t.Fatal(err)
	} else if _, ok := v.(*TokenVerifier); !ok {
		t.Errorf("one setting: %T, want *TokenVerifier alone", v)
	}
	s = evo()
	parse(t, s, "-tokens", "t1", "-jwt", "k1")
	v, err := s.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := v.(AnyVerifier); !ok || len(a) != 2 {
		t.Fatalf("two settings: %#v, want both", v)
	}
	r := httptest.NewRequest("POST", "/?token=t1", nil)
	if err := v.Verify(r, nil); err != nil {
		t.Errorf("token of the second scheme: %v", err)
	}
	s = evo()
	parse(t, s, "-tokens", "chan:")
	if _, err := s.Verifier(); err == nil || !strings.Contains(err.Error(), "-tokens") || strings.Contains(err.Error(), "chan") {
		t.Errorf("bad secret: %v; want an error naming -tokens and not the entry", err)
	}
}

func TestHMACSchemeSkew(t *testing.T) {
	s := HMAC("keys", "", "skew", "")
	parse(t, s, "-keys", "k", "-skew", "90s")
	v, err := s.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := v.(*HMACVerifier); !ok || h.MaxSkew != 90*time.Second {
		t.Errorf("verifier %#v, want an HMACVerifier with 90s of skew", v)
	}
}

func TestHandshakeScheme(t *testing.T) {
	s := WithHandshake(HubSignature("secrets", ""), "verify", "")
	parse(t, s, "-secrets", "s1")
	h, ok := s.(Handshaker)
	if !ok {
		t.Fatal("not a Handshaker")
	}
	if tok, err := h.VerifyTokens(); tok != nil || err != nil {
		t.Errorf("no verify tokens set: %v, %v", tok, err)
	}
	s = WithHandshake(HubSignature("secrets", ""), "verify", "")
	parse(t, s, "-verify", "v1,v2")
	tok, err := s.(Handshaker).VerifyTokens()
	if err != nil || !tok.Accepts("v2") || tok.Accepts("v3") {
		t.Errorf("verify tokens %v, %v", tok, err)
	}
	if v, err := s.Verifier(); v != nil || err != nil {
		t.Errorf("no secrets set: %v, %v", v, err)
	}
}
