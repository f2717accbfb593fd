package whapi

import "github.com/wahook/wahook/pkg/auth"

// AuthScheme is Whapi's: a shared secret in the webhook's headers or URL.
func (*Provider) AuthScheme() auth.Scheme {
	return auth.Tokens("auth-whapi-tokens",
		"accepted Whapi secrets, comma-separated, each secret or channel:secret (Authorization: Bearer, X-Wahook-Token or ?token=)")
}
