package ingress_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider/all"
)

// BenchmarkHandler measures the handler's own work per delivery, in
// process and without a broker round trip: read, split, identify, build
// the CloudEvents, answer. The end-to-end benchmarks add loopback HTTP and
// JetStream, whose noise hides changes of this size.
func BenchmarkHandler(b *testing.B) {
	for _, tc := range []struct{ name, path, body string }{
		{"whapi", "/v1/webhooks/whapi", benchBody},
		{"zapi", "/v1/webhooks/zapi", `{"isStatusReply":false,"instanceId":"A20DA9C0183A2D35A260F53F5D2B9244","messageId":"bench-%d","phone":"5544999999999","fromMe":false,"momment":1632228638000,"status":"RECEIVED","chatName":"name","senderName":"name","type":"ReceivedCallback","text":{"message":"test"}}`},
		{"whapi-batch-20", "/v1/webhooks/whapi", batchBody(20)},
		// No provider id: identified by its content (provider.ContentKey).
		{"whapi-chats-patch", "/v1/webhooks/whapi", chatsPatchBody},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, err := ingress.New(ingress.Config{
				Providers:    all.Providers(),
				AuthDisabled: true,
				Publisher:    broker.Publisher(discard{}),
				Binding:      envelope.NATS,
				Metrics:      ingress.NewMetrics(prometheus.NewRegistry()),
				Logger:       zap.NewNop(),
			}, nil)
			if err != nil {
				b.Fatal(err)
			}
			bodies := make([][]byte, 64)
			for i := range bodies {
				bodies[i] = []byte(fmt.Sprintf(tc.body, i))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				body := bodies[i%len(bodies)]
				req := httptest.NewRequest("POST", tc.path, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

// batchBody is a Whapi delivery of n messages; %d makes its ids unique.
func batchBody(n int) string {
	var s bytes.Buffer
	s.WriteString(`{"messages":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			s.WriteByte(',')
		}
		fmt.Fprintf(&s, `{"id":"batch-%%[1]d-%d","from_me":false,"type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995245,"text":{"body":"Hello"}}`, i)
	}
	s.WriteString(`],"event":{"type":"messages","event":"post"},"channel_id":"BENCH"}`)
	return s.String()
}

// discard acknowledges every message at once.
type discard struct{}

func (discard) Publish(context.Context, ...broker.Message) error { return nil }

// chatsPatchBody is a Whapi chats.patch delivery about its own chat (%d):
// an item without a provider id.
const chatsPatchBody = `{"chats_updates":[{"before_update":{"id":"1203633987509%[1]d@g.us","type":"group","timestamp":1747391325,"name":"Jack Smith and his team","not_spam":true,"last_message":{"id":"EHdEMDU-kmEBq53fm7NK5g-E8JdK1c"}},"after_update":{"id":"1203633987509%[1]d@g.us","type":"group","timestamp":1747391325,"name":"Jack Smith and his team","not_spam":true,"last_message":{"id":"EHdEMDU-kmEBq53fm7NK5g-E8JdK1c"},"labels":[{"id":"76","name":"New order","color":"gold"}]},"changes":["labels"]}],"event":{"type":"chats","event":"patch"},"channel_id":"MANTIS-M72HC"}`
