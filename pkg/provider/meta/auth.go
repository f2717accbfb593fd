package meta

import "github.com/wahook/wahook/pkg/auth"

// AuthScheme is Meta's X-Hub-Signature-256 with the app secret, and the
// verify tokens of its webhook check (GET).
func (*Provider) AuthScheme() auth.Scheme {
	return auth.WithHandshake(
		auth.HubSignature("auth-meta-app-secrets",
			"Meta app secrets for X-Hub-Signature-256 (HMAC-SHA256 of the body), comma-separated, each secret or phone_number_id:secret"),
		"meta-verify-tokens",
		"verify tokens Meta's webhook check (GET ?hub.verify_token=) may present, comma-separated; without them the check is refused")
}
