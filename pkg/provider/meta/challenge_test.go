package meta_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/meta"
)

// Meta's verification request, as its webhooks guide shows it:
// https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests
func TestChallenge(t *testing.T) {
	q, _ := url.ParseQuery("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock")
	token, challenge, err := meta.New().Challenge(q)
	if err != nil || token != "meatyhamhock" || challenge != "1158201444" {
		t.Errorf("Challenge(%v) = %q, %q, %v; want meatyhamhock, 1158201444, nil", q, token, challenge, err)
	}
}

func TestChallengeRefused(t *testing.T) {
	for name, query := range map[string]string{
		"no mode":           "hub.challenge=1&hub.verify_token=t",
		"unsubscribe":       "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=t",
		"no token":          "hub.mode=subscribe&hub.challenge=1",
		"long token":        "hub.mode=subscribe&hub.challenge=1&hub.verify_token=" + strings.Repeat("t", 257),
		"no challenge":      "hub.mode=subscribe&hub.verify_token=t",
		"long challenge":    "hub.mode=subscribe&hub.verify_token=t&hub.challenge=" + strings.Repeat("1", 65),
		"markup challenge":  "hub.mode=subscribe&hub.verify_token=t&hub.challenge=%3Cscript%3E",
		"signed challenge":  "hub.mode=subscribe&hub.verify_token=t&hub.challenge=-1",
		"newline challenge": "hub.mode=subscribe&hub.verify_token=t&hub.challenge=1%0A2",
	} {
		t.Run(name, func(t *testing.T) {
			q, err := url.ParseQuery(query)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := meta.New().Challenge(q); !errors.Is(err, provider.ErrInvalid) {
				t.Errorf("Challenge(%s) = %v, want ErrInvalid", query, err)
			}
		})
	}
}
