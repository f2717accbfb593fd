package ingress

import (
	"errors"
	"net/http"

	"github.com/wahook/wahook/pkg/provider"
)

var textContentType = []string{"text/plain; charset=utf-8"}

// handshake answers a provider's URL check (a GET of its webhook route):
// 200 with the challenge as text when the request is well formed and its
// token is accepted, else 403. Nothing is read, stored or published.
func (h *Handler) handshake(w http.ResponseWriter, r *http.Request, p provider.Provider, c provider.Challenger) outcome {
	token, challenge, err := c.Challenge(r.URL.Query())
	if err != nil {
		return h.fail(w, outcome{status: http.StatusForbidden, code: "invalid_handshake", message: err.Error()})
	}
	tokens := h.cfg.VerifyTokens[p.Name()]
	if tokens == nil {
		return h.fail(w, outcome{status: http.StatusForbidden, code: "forbidden",
			message: "no verify token is configured for this provider", err: errors.New("handshake without configured verify tokens")})
	}
	if !tokens.Accepts(token) {
		return h.fail(w, outcome{status: http.StatusForbidden, code: "forbidden", message: "verify token not accepted"})
	}
	w.Header()["Content-Type"] = textContentType
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(challenge))
	return outcome{status: http.StatusOK, code: "handshake"}
}

// forbiddenChannel is the answer to credentials scoped to other channels
// than the delivery's: nothing of it is stored.
func forbiddenChannel(channel string) outcome {
	if !provider.ValidChannel(channel) {
		channel = "" // the delivery log line carries only channels within the bounds
	}
	return outcome{status: http.StatusForbidden, code: "forbidden",
		message: "credentials not accepted for this channel", channel: channel}
}
