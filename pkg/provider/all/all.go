// Package all lists the providers wahook serves, so that the ingress and
// the consumers of one build always agree on them.
package all

import (
	"fmt"
	"sort"
	"strings"

	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/evolution"
	"github.com/wahook/wahook/pkg/provider/meta"
	"github.com/wahook/wahook/pkg/provider/waha"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/pkg/provider/zapi"
)

// Providers returns every provider, in path-name order.
func Providers() []provider.Provider {
	return []provider.Provider{evolution.New(), meta.New(), waha.New(), whapi.New(), zapi.New()}
}

// Select returns the providers with the given path names, in path-name
// order; no name, or "all", selects every provider. An unknown name is an
// error that lists the known ones.
func Select(names []string) ([]provider.Provider, error) {
	every := Providers()
	if len(names) == 0 || len(names) == 1 && names[0] == "all" {
		return every, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []provider.Provider
	for _, p := range every {
		if want[p.Name()] {
			out = append(out, p)
			delete(want, p.Name())
		}
	}
	if len(want) > 0 {
		var known, unknown []string
		for _, p := range every {
			known = append(known, p.Name())
		}
		for n := range want {
			unknown = append(unknown, n)
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown providers %s; known: %s", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return out, nil
}
