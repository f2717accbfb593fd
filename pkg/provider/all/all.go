// Package all lists the providers wahook serves, so that the ingress and
// the consumers of one build always agree on them.
package all

import (
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/evolution"
	"github.com/wahook/wahook/pkg/provider/waha"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/pkg/provider/zapi"
)

// Providers returns every provider, in path-name order.
func Providers() []provider.Provider {
	return []provider.Provider{evolution.New(), waha.New(), whapi.New(), zapi.New()}
}
