package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/tracing"
)

// TestSetupExportsOTLP: Setup, configured by OTEL_* variables only, sends
// the spans of a delivery and its publish to an OTLP/HTTP receiver (here
// one that decodes the protobuf ExportTraceServiceRequest of
// opentelemetry-proto's collector/trace/v1) once shutdown flushes them.
func TestSetupExportsOTLP(t *testing.T) {
	var mu sync.Mutex
	var got []*coltrace.ExportTraceServiceRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		req := new(coltrace.ExportTraceServiceRequest)
		if err == nil {
			err = proto.Unmarshal(body, req)
		}
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || err != nil {
			t.Errorf("export %s %s: %v", r.URL.Path, r.Header.Get("Content-Type"), err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "wahook-test")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, shutdown, err := tracing.Setup(ctx, "wahook-ingress", zap.NewNop())
	if err != nil || tr == nil {
		t.Fatalf("Setup = %v, %v; want tracing on", tr, err)
	}
	r := httptest.NewRequest("POST", "/v1/webhooks/whapi", nil)
	r.Header.Set("Traceparent", incoming)
	sctx, span := tr.StartDelivery(r, "/v1/webhooks/{provider}")
	msg := broker.Message{Topic: envelope.IngressTopic, ID: "e1", Header: broker.Header{}}
	if err := tr.Publish(sctx, discard{}, envelope.NATS, msg); err != nil {
		t.Fatal(err)
	}
	tracing.EndDelivery(span, tracing.Delivery{Provider: "whapi", Status: 200, Items: 1})
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	names := map[string]bool{}
	for _, req := range got {
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					names[s.Name] = true
					if service != "wahook-test" {
						t.Errorf("span %s of service %q; want OTEL_SERVICE_NAME's", s.Name, service)
					}
					if tid := incomingContext(t).TraceID(); string(s.TraceId) != string(tid[:]) {
						t.Errorf("span %s in trace %x; want the request's", s.Name, s.TraceId)
					}
				}
			}
		}
	}
	if !names["POST /v1/webhooks/{provider}"] || !names["send wahook.ingress"] || len(names) != 2 {
		t.Errorf("spans received %v; want the delivery's and the publish's", names)
	}
}

type discard struct{}

func (discard) Publish(context.Context, ...broker.Message) error { return nil }

// TestEnabled: tracing is on with an OTLP endpoint or exporter, off
// otherwise or when disabled.
func TestEnabled(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
		err  bool
	}{
		{nil, false, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, false, false},
		{map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, true},
	} {
		on, err := tracing.Enabled(func(k string) string { return tc.env[k] })
		if on != tc.want || (err != nil) != tc.err {
			t.Errorf("Enabled(%v) = %v, %v; want %v, error %v", tc.env, on, err, tc.want, tc.err)
		}
	}
}
