package envelope

import (
	"testing"
	"time"
)

// Dead-letter ids are derived from their content so that a retried bad
// delivery is stored once, across versions too: these were computed before
// id hashing was shared with the providers and must not change.
func TestDeadLetterIDsStayPinned(t *testing.T) {
	text := `{"not json`
	cases := []struct {
		d    DeadLetter
		want string
	}{
		{DeadLetter{Reason: "invalid", Provider: "whapi", Channel: "MANTIS-M72HC", Body: &text}, "df631f0d02b7caef1a0885edeb9f098f"},
		{DeadLetter{Reason: "interpret", Provider: "zapi", Channel: "instance.id", SourceEventID: "0123456789abcdef0123456789abcdef"}, "ae7e2a953e38498463b6261b4fc5e47b"},
		{DeadLetter{Reason: "invalid", Provider: "waha", BodyBase64: "/w=="}, "1024f30b00d3f703477d2342a479bf69"},
	}
	for _, tc := range cases {
		tc.d.ReceivedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		m, err := DeadLetterMessage(tc.d, NATS)
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != tc.want {
			t.Errorf("dead letter %+v: id %s, want %s", tc.d, m.ID, tc.want)
		}
	}
}
