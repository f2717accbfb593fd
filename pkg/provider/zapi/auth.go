package zapi

import "github.com/wahook/wahook/pkg/auth"

// AuthScheme is Z-API's: it can only be given a URL, so a shared secret in
// its query (or a header a proxy adds).
func (*Provider) AuthScheme() auth.Scheme {
	return auth.Tokens("auth-zapi-tokens",
		"accepted Z-API secrets, comma-separated, each secret or channel:secret (?token= or X-Wahook-Token)")
}
