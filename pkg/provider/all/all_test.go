package all

import (
	"flag"
	"slices"
	"strings"
	"testing"

	"github.com/wahook/wahook/pkg/auth"
	"github.com/wahook/wahook/pkg/provider"
)

func names(t *testing.T, sel []string) []string {
	t.Helper()
	ps, err := Select(sel)
	if err != nil {
		t.Fatalf("Select(%q): %v", sel, err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.Name())
	}
	return out
}

// TestSelect: every provider by default or "all", the named ones in
// path-name order, and an unknown name refused with the known ones.
func TestSelect(t *testing.T) {
	var every []string
	for _, p := range Providers() {
		every = append(every, p.Name())
	}
	if !slices.IsSorted(every) || len(every) < 2 {
		t.Fatalf("Providers() = %v; want several, in path-name order", every)
	}
	if got := names(t, nil); !slices.Equal(got, every) {
		t.Errorf("Select(nil) = %v; want %v", got, every)
	}
	if got := names(t, []string{"all"}); !slices.Equal(got, every) {
		t.Errorf("Select(all) = %v; want %v", got, every)
	}
	two := []string{every[len(every)-1], every[0]}
	if got := names(t, two); !slices.Equal(got, []string{every[0], every[len(every)-1]}) {
		t.Errorf("Select(%v) = %v; want them in path-name order", two, got)
	}
	_, err := Select([]string{every[0], "nope", "all"})
	if err == nil || !strings.Contains(err.Error(), "all, nope") || !strings.Contains(err.Error(), every[0]) {
		t.Errorf("Select with unknown names = %v; want them named, and the known ones", err)
	}
}

// TestEveryProviderOwnsItsAuth: adding a provider to Providers is all the
// ingress needs: each brings its auth scheme, with the tokens of its URL
// check when it makes one, and no two share a setting's name.
func TestEveryProviderOwnsItsAuth(t *testing.T) {
	fs := flag.NewFlagSet("ingress", flag.ContinueOnError)
	for _, p := range Providers() {
		ap, ok := p.(auth.Provider)
		if !ok {
			t.Errorf("%s has no auth scheme", p.Name())
			continue
		}
		s := ap.AuthScheme()
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: %v", p.Name(), r)
				}
			}()
			s.RegisterFlags(fs)
		}()
		_, challenges := p.(provider.Challenger)
		if _, handshakes := s.(auth.Handshaker); challenges && !handshakes {
			t.Errorf("%s checks its URL but its scheme has no verify tokens", p.Name())
		}
	}
}
