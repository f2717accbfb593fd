package state

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
)

// keyToken is what the KV API accepts between dots.
var keyToken = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+$`)

func TestToken(t *testing.T) {
	long := strings.Repeat("x", maxPlainPart+1)
	sum := sha256.Sum256([]byte(long))
	for give, want := range map[string]string{
		"MANTIS-M72HC":                 "MANTIS-M72HC",
		"4915112345678@s.whatsapp.net": "4915112345678_40s_2Ewhatsapp_2Enet",
		"a.b c*>@lid:1/x":              "a_2Eb_20c_2A_3E_40lid_3A1_2Fx",
		"a_b c*>@lid:1/x":              "a_5Fb_20c_2A_3E_40lid_3A1_2Fx",
		"":                             "=",
		"=":                            "_3D",
		"café":                         "caf_C3_A9",
		long[1:]:                       long[1:],
		long:                           "=" + hex.EncodeToString(sum[:]),
	} {
		if got := Token(give); got != want {
			t.Errorf("Token(%q) = %q, want %q", give, got, want)
		}
	}
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"", "=", "_", ".", "a.b c*>@lid:1/x", "a_b c*>@lid:1/x", "\x00\xff", strings.Repeat("é", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := Token(s)
		if !keyToken.MatchString(tok) {
			t.Fatalf("Token(%q) = %q, not a valid key token", s, tok)
		}
		if key := EntryKey(s, s, s); strings.Count(key, ".") != 2 {
			t.Fatalf("EntryKey(%q, ...) = %q, want three tokens", s, key)
		}
		if len(s) > maxPlainPart {
			if len(tok) != 1+2*sha256.Size || tok[0] != '=' {
				t.Fatalf("Token(%q) = %q, want the hash of a long part", s, tok)
			}
			return
		}
		if back, ok := Untoken(tok); !ok || back != s {
			t.Fatalf("Token(%q) = %q, which decodes to %q (%t)", s, tok, back, ok)
		}
	})
}
