package meta

import (
	"net/url"

	"github.com/wahook/wahook/pkg/provider"
)

var _ provider.Challenger = (*Provider)(nil)

// Bounds of the verification request's values: the challenge is echoed in
// the answer and the token compared, so neither may be large. Meta sends
// an integer as the challenge.
const (
	maxChallenge   = 64
	maxVerifyToken = 256
)

// Challenge reads Meta's verification request:
// ?hub.mode=subscribe&hub.verify_token=...&hub.challenge=<digits>.
func (*Provider) Challenge(q url.Values) (token, challenge string, err error) {
	if q.Get("hub.mode") != "subscribe" {
		return "", "", provider.Invalid("hub.mode is not subscribe")
	}
	token, challenge = q.Get("hub.verify_token"), q.Get("hub.challenge")
	if token == "" || len(token) > maxVerifyToken {
		return "", "", provider.Invalid("hub.verify_token is empty or longer than %d bytes", maxVerifyToken)
	}
	if challenge == "" || len(challenge) > maxChallenge {
		return "", "", provider.Invalid("hub.challenge is empty or longer than %d bytes", maxChallenge)
	}
	for i := 0; i < len(challenge); i++ {
		if challenge[i] < '0' || challenge[i] > '9' {
			return "", "", provider.Invalid("hub.challenge is not digits")
		}
	}
	return token, challenge, nil
}
