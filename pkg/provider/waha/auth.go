package waha

import "github.com/wahook/wahook/pkg/auth"

// AuthScheme is WAHA's HMAC of the body, or Wawp's signature header: both
// post to WAHA's route with their own secrets.
func (*Provider) AuthScheme() auth.Scheme {
	return auth.AnyOf(
		auth.HMAC("auth-waha-hmac-keys", "WAHA HMAC-SHA512 keys for X-Webhook-Hmac, comma-separated, each key or channel:key",
			"auth-waha-max-skew", "refuse WAHA deliveries whose X-Webhook-Timestamp (and signed body timestamp) is further than this from now (0: off)"),
		auth.Wawp("auth-wawp-tokens", "Wawp X-Wawp-Signature secrets, comma-separated, each secret or channel:secret"),
	)
}
