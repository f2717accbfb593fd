package evolution

import "github.com/wahook/wahook/pkg/auth"

// AuthScheme is Evolution API's: a JWT signed with the instance's jwt_key
// when the bearer value is one, else a static token.
func (*Provider) AuthScheme() auth.Scheme {
	return auth.AnyOf(
		auth.JWT("auth-evolution-jwt-keys",
			"Evolution API jwt_key values, comma-separated, each key or channel:key: HS256 Authorization: Bearer <jwt> with app evolution, action webhook"),
		auth.Tokens("auth-evolution-tokens",
			"accepted Evolution API secrets, comma-separated, each secret or channel:secret (Authorization: Bearer, X-Wahook-Token or ?token=)"),
	)
}
