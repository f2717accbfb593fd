package ingress_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider/all"
)

// TestRedeliverGivesTheHandlersEvents: for every provider example, the
// raw events Redeliver builds from the dead letter of a delivery the
// broker refused are those the handler built for it, byte for byte: ids,
// subjects, keys, headers (time, traceparent) and data; with a ?channel=
// pin where the payload names no channel.
func TestRedeliverGivesTheHandlersEvents(t *testing.T) {
	var attempted, dead []broker.Message
	pub := publisherFunc(func(_ context.Context, msgs ...broker.Message) error {
		if msgs[0].Topic == envelope.DeadLetterTopic {
			dead = append(dead, msgs...)
			return nil
		}
		attempted = append(attempted, msgs...)
		return broker.Rejected(errors.New("refused for the test"))
	})
	h, err := ingress.New(ingress.Config{Providers: all.Providers(), AuthDisabled: true, Publisher: pub,
		Metrics: ingress.NewMetrics(prometheus.NewRegistry())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	providers := map[string]bool{}
	for _, p := range all.Providers() {
		providers[p.Name()] = true
	}
	files, err := filepath.Glob(filepath.Join("..", "provider", "*", "testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, f := range files {
		name := filepath.Base(filepath.Dir(filepath.Dir(f)))
		if !providers[name] {
			continue
		}
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, query := range []string{"", "?channel=PINNED"} {
			attempted, dead = nil, nil
			req := httptest.NewRequest(http.MethodPost, ingress.WebhookPath+name+query, bytes.NewReader(body))
			req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusInternalServerError || len(attempted) == 0 {
				continue // not a delivery, or it needs the pin
			}
			id, d, err := envelope.DecodeDeadLetter(dead[len(dead)-1], envelope.NATS)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			raw, err := envelope.DeadLetterBody(id, d, dead, envelope.NATS)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			p, _ := all.Select([]string{name})
			msgs, ids, err := ingress.Redeliver(p[0], d, raw, 0, envelope.NATS)
			if err != nil {
				t.Fatalf("%s%s: Redeliver: %v", f, query, err)
			}
			if len(msgs) != len(attempted) || len(ids) != len(msgs) {
				t.Fatalf("%s%s: %d events, want %d", f, query, len(msgs), len(attempted))
			}
			for i := range msgs {
				if !reflect.DeepEqual(msgs[i], attempted[i]) || ids[i] != attempted[i].ID {
					t.Errorf("%s%s: event %d\n got %+v\nwant %+v", f, query, i, msgs[i], attempted[i])
				}
			}
			compared++
			break
		}
	}
	t.Logf("compared %d examples", compared)
	if compared < 100 {
		t.Errorf("compared %d examples, want every provider's", compared)
	}
}

// TestRedeliverRefuses names why a dead letter is not redelivered.
func TestRedeliverRefuses(t *testing.T) {
	p, _ := all.Select([]string{"whapi"})
	body := `{"messages":[{"id":"m1","from_me":false,"type":"text","chat_id":"5511999990000@s.whatsapp.net","timestamp":1747391325,"text":{"body":"hi"}}],"event":{"type":"messages","event":"post"},"channel_id":"CH"}`
	ok := envelope.DeadLetter{Provider: "whapi", Method: "POST", Path: "/v1/webhooks/whapi", ReceivedAt: time.Now()}
	ok.SetBody([]byte(body))
	if _, ids, err := ingress.Redeliver(p[0], ok, []byte(body), 0, envelope.NATS); err != nil || len(ids) != 1 {
		t.Fatalf("Redeliver of a good delivery: %v %v", ids, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*envelope.DeadLetter)
		body string
		want string
	}{
		{"a consumer's", func(d *envelope.DeadLetter) { d.SourceEventID = "e1" }, body, "replaying"},
		{"another provider's", func(d *envelope.DeadLetter) { d.Provider = "zapi" }, body, "not \"whapi\""},
		{"no body", func(d *envelope.DeadLetter) { d.Body = nil }, "", "keeps no body"},
		{"not a delivery", func(d *envelope.DeadLetter) { d.Path = "/metrics" }, body, "not a delivery"},
		{"still invalid", nil, `{not json`, "still invalid_payload"},
		{"too many items", nil, strings.Replace(body, `[{`, `[{"id":"m0","type":"text","chat_id":"1@s.whatsapp.net","timestamp":1},{`, 1), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := ok
			if tc.edit != nil {
				tc.edit(&d)
			}
			_, _, err := ingress.Redeliver(p[0], d, []byte(tc.body), 1, envelope.NATS)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), "still too_many_items") {
					t.Errorf("Redeliver with 1 item at most: %v, want still too_many_items", err)
				}
				return
			}
			if !errors.Is(err, ingress.ErrNotRedeliverable) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Redeliver: %v, want %q", err, tc.want)
			}
		})
	}
}
