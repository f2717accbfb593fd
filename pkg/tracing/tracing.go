// Package tracing follows one webhook through wahook with OpenTelemetry: a
// server span for the HTTP delivery, a producer span for each publish, a
// consumer span for each consumer's processing of a raw event, and the
// trace context carried from one to the next in the CloudEvents
// distributed-tracing extension (traceparent, tracestate) of every raw,
// derived and dead-letter event.
//
// A nil *Tracer is tracing off: its methods publish without touching a
// header and start nothing, so a service without an OTLP endpoint pays a
// nil check.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
)

// ScopeName is the instrumentation scope of wahook's spans.
const ScopeName = "github.com/wahook/wahook"

// Tracer starts wahook's spans and carries their context in messages.
type Tracer struct {
	tracer trace.Tracer
	prop   propagation.TraceContext
}

// New returns a Tracer whose spans tp records.
func New(tp trace.TracerProvider) *Tracer {
	return &Tracer{tracer: tp.Tracer(ScopeName)}
}

// Enabled reports whether the OTEL_* variables getenv reads turn tracing
// on: OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint set
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) with
// OTEL_TRACES_EXPORTER unset; OTEL_SDK_DISABLED=true and
// OTEL_TRACES_EXPORTER=none turn it off. Another exporter is an error.
func Enabled(getenv func(string) string) (bool, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false, nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER %q: only otlp and none are supported", exp)
	}
}

// Setup configures tracing from the standard OTEL_* environment variables
// (see Enabled; the OTLP exporter reads its endpoint, protocol, headers,
// TLS and timeout from them, the SDK its sampler and batching, the
// resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES). service is the
// service.name when OTEL_SERVICE_NAME is unset. When tracing is off it
// returns a nil Tracer. shutdown flushes the spans not yet exported; call
// it once the process has drained.
func Setup(ctx context.Context, service string, log *zap.Logger) (t *Tracer, shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	on, err := Enabled(os.Getenv)
	if err != nil || !on {
		return nil, noop, err
	}
	var exp sdktrace.SpanExporter
	switch proto := protocol(os.Getenv); proto {
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, noop, fmt.Errorf("tracing: OTLP protocol %q: want http/protobuf or grpc", proto)
	}
	if err != nil {
		return nil, noop, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	// Later detectors win: OTEL_SERVICE_NAME over the default name.
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, noop, fmt.Errorf("tracing: resource: %w", err)
	}
	// Export failures are the exporter's own; log them instead of the
	// SDK's default of the standard logger.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing", zap.Error(err))
	}))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	log.Info("tracing on", zap.String("service", res.Set().Encoded(attribute.DefaultEncoder())))
	return New(tp), tp.Shutdown, nil
}

// protocol is the OTLP transport OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL names; http/protobuf, the specification's
// default, when neither is set.
func protocol(getenv func(string) string) string {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
	}
	return "http/protobuf"
}

// maxTraceState bounds the tracestate taken from a request: it is copied
// onto every raw event of the delivery, and W3C Trace Context asks to
// propagate at least 512 characters.
const maxTraceState = 512

// StartDelivery starts the server span of an HTTP delivery, continuing the
// W3C traceparent the request carries, else starting a trace. route is the
// matched pattern (low cardinality), e.g. /v1/webhooks/{provider}.
func (t *Tracer) StartDelivery(r *http.Request, route string) (context.Context, trace.Span) {
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	if sc := trace.SpanContextFromContext(ctx); len(sc.TraceState().String()) > maxTraceState {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc.WithTraceState(trace.TraceState{}))
	}
	method := methodAttr(r.Method)
	name := "HTTP"
	if method != semconv.HTTPRequestMethodOther {
		name = r.Method
	}
	if route != "" {
		name += " " + route
	}
	return t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		method, semconv.HTTPRoute(route), semconv.URLPath(r.URL.Path)))
}

func methodAttr(m string) attribute.KeyValue {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodHead, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return semconv.HTTPRequestMethodKey.String(m)
	}
	return semconv.HTTPRequestMethodOther
}

// Delivery is what an HTTP delivery came to.
type Delivery struct {
	Provider, Channel, RequestID string
	Items, Status                int
	// Code is the error code of the answer, empty for 200.
	Code string
	Err  error
}

// EndDelivery records d on a span StartDelivery started and ends it. A 5xx
// answer is an error of the span; a 4xx is the sender's, as OTel's HTTP
// conventions say for server spans.
func EndDelivery(span trace.Span, d Delivery) {
	span.SetAttributes(semconv.HTTPResponseStatusCode(d.Status),
		attribute.String("wahook.provider", d.Provider),
		attribute.String("wahook.channel", d.Channel),
		attribute.Int("wahook.items", d.Items),
		attribute.String("wahook.request_id", d.RequestID))
	if d.Code != "" {
		span.SetAttributes(attribute.String("wahook.error_code", d.Code))
	}
	if d.Status >= 500 {
		span.SetAttributes(semconv.ErrorTypeKey.String(fmt.Sprint(d.Status)))
		msg := d.Code
		if d.Err != nil {
			span.RecordError(d.Err)
			msg = d.Err.Error()
		}
		span.SetStatus(codes.Error, msg)
	}
	span.End()
}

// Publish publishes msgs with p, as p.Publish does, in producer spans whose
// context each message carries in its traceparent and tracestate headers.
// One message gets a "send {topic}" PRODUCER span; several get a "create
// {topic}" PRODUCER span each and one "send {topic}" CLIENT span linking
// them, OTel's messaging conventions for batch publishing. On a nil Tracer
// it is p.Publish(ctx, msgs...).
func (t *Tracer) Publish(ctx context.Context, p broker.Publisher, b envelope.Binding, msgs ...broker.Message) error {
	if t == nil || len(msgs) == 0 {
		return p.Publish(ctx, msgs...)
	}
	topic := msgs[0].Topic
	for _, m := range msgs[1:] {
		if m.Topic != topic {
			topic = ""
			break
		}
	}
	common := []attribute.KeyValue{semconv.MessagingSystemKey.String(b.Name),
		semconv.MessagingOperationName("send")}
	if topic != "" {
		common = append(common, semconv.MessagingDestinationName(topic))
	}
	name := spanName("send", topic)
	if len(msgs) == 1 {
		ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(common...),
			trace.WithAttributes(semconv.MessagingOperationTypeKey.String("publish")),
			trace.WithAttributes(messageAttrs(msgs[0], b)...))
		t.inject(ctx, &msgs[0], b)
		return end(span, p.Publish(ctx, msgs...))
	}
	links := make([]trace.Link, len(msgs))
	for i := range msgs {
		cctx, cspan := t.tracer.Start(ctx, spanName("create", msgs[i].Topic), trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(semconv.MessagingSystemKey.String(b.Name), semconv.MessagingOperationName("create"),
				semconv.MessagingOperationTypeKey.String("create"), semconv.MessagingDestinationName(msgs[i].Topic)),
			trace.WithAttributes(messageAttrs(msgs[i], b)...))
		t.inject(cctx, &msgs[i], b)
		links[i] = trace.Link{SpanContext: cspan.SpanContext(),
			Attributes: []attribute.KeyValue{semconv.MessagingMessageID(msgs[i].ID)}}
		cspan.End()
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
		trace.WithAttributes(common...),
		trace.WithAttributes(semconv.MessagingOperationTypeKey.String("publish"), semconv.MessagingBatchMessageCount(len(msgs))))
	return end(span, p.Publish(ctx, msgs...))
}

func spanName(op, topic string) string {
	if topic == "" {
		return op
	}
	return op + " " + topic
}

// messageAttrs describe one message: its id, its CloudEvent type and, on
// NATS, its subject.
func messageAttrs(m broker.Message, b envelope.Binding) []attribute.KeyValue {
	attrs := []attribute.KeyValue{semconv.MessagingMessageID(m.ID), semconv.CloudEventsEventID(m.ID)}
	if typ := envelope.Type(m.Header, b); typ != "" {
		attrs = append(attrs, semconv.CloudEventsEventType(typ))
	}
	if b.Name == envelope.NATS.Name && m.Subject != "" {
		attrs = append(attrs, attribute.String("messaging.nats.subject", m.Subject))
	}
	return attrs
}

// inject writes the span context of ctx into m's headers. A message
// without headers gets some.
func (t *Tracer) inject(ctx context.Context, m *broker.Message, b envelope.Binding) {
	if m.Header == nil {
		m.Header = broker.Header{}
	}
	t.prop.Inject(ctx, envelope.TraceCarrier{Header: m.Header, Binding: b})
}

func end(span trace.Span, err error) error {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		kind := "_OTHER"
		switch {
		case errors.Is(err, broker.ErrTooLarge):
			kind = "too_large"
		case errors.Is(err, broker.ErrRejected):
			kind = "rejected"
		case errors.Is(err, broker.ErrUnavailable):
			kind = "unavailable"
		}
		span.SetAttributes(semconv.ErrorTypeKey.String(kind))
	}
	span.End()
	return err
}

// Process describes a consumer's processing of one received message.
type Process struct {
	// Group is the durable consumer or consumer group.
	Group string
	// Stream is the derived stream the consumer derives.
	Stream string
	// Outcome is set once the processing is done (derived, skipped, ...).
	Outcome string
}

// StartProcess starts the CONSUMER span of processing m: a child of the
// trace context m carries, so that one webhook is one trace, and linked to
// it as OTel's messaging conventions ask of a "process" span. A message
// without one starts a trace.
func (t *Tracer) StartProcess(ctx context.Context, m broker.Received, b envelope.Binding, p Process) (context.Context, trace.Span) {
	pctx := t.prop.Extract(ctx, envelope.TraceCarrier{Header: m.Header, Binding: b})
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(semconv.MessagingSystemKey.String(b.Name), semconv.MessagingOperationName("process"),
			semconv.MessagingOperationTypeKey.String("process"), semconv.MessagingDestinationName(m.Topic),
			semconv.MessagingConsumerGroupName(p.Group), attribute.String("wahook.stream", p.Stream),
			attribute.Int("wahook.attempt", m.Attempt)),
		trace.WithAttributes(messageAttrs(m.Message, b)...)}
	if sc := trace.SpanContextFromContext(pctx); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	return t.tracer.Start(pctx, spanName("process", m.Topic), opts...)
}

// EndProcess records the outcome and error of a processing and ends its
// span. A permanent error (a dead-lettered raw event) is an outcome, not
// an error of the span.
func EndProcess(span trace.Span, outcome string, err error) {
	span.SetAttributes(attribute.String("wahook.outcome", outcome))
	if err != nil && !broker.IsPermanent(err) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorTypeKey.String("_OTHER"))
	}
	span.End()
}

// LogFields are the trace_id and span_id of the span in ctx for a log
// line, nil unless it is recording.
func LogFields(ctx context.Context) []zap.Field {
	return SpanFields(trace.SpanFromContext(ctx))
}

// SpanFields are span's trace_id and span_id for a log line, nil unless it
// is recording.
func SpanFields(span trace.Span) []zap.Field {
	if span == nil || !span.IsRecording() {
		return nil
	}
	sc := span.SpanContext()
	return []zap.Field{zap.String("trace_id", sc.TraceID().String()), zap.String("span_id", sc.SpanID().String())}
}
