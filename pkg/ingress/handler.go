// Package ingress is wahook's webhook HTTP API: it checks who sent a
// delivery, splits it into items with the provider's package, and publishes
// each item as a raw CloudEvent, answering 200 only once the broker has
// stored every item. Bad input is answered with a clear error and kept on the
// dead-letter stream; a broker that is down or slow is answered 503 so that
// the provider retries.
package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nuid"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
)

// Config configures a Handler. Zero durations and sizes take the defaults
// written beside them.
type Config struct {
	// Providers served under /v1/webhooks/{name}.
	Providers []provider.Provider
	// Verifiers by provider name. A provider without one is refused at
	// construction unless AuthDisabled is set, in which case it runs open;
	// providers with a verifier are always checked.
	Verifiers    map[string]Verifier
	AuthDisabled bool
	Publisher    broker.Publisher
	// Binding is the CloudEvents binding of the broker in use.
	Binding envelope.Binding
	// MaxBodyBytes bounds a delivery's body; larger ones get 413. 4 MiB.
	MaxBodyBytes int64
	// MaxInFlight bounds deliveries handled at once; more get 429. 4096.
	MaxInFlight int
	// PublishTimeout bounds the wait for the broker's acknowledgements;
	// past it the answer is 503. 5 s.
	PublishTimeout time.Duration
	// RetryAfter is sent with 429 and 503 answers. 5 s.
	RetryAfter time.Duration
	// Ready reports whether the broker is reachable and its streams exist.
	Ready   func(ctx context.Context) error
	Metrics *Metrics
	Logger  *zap.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 4 << 20
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4096
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Binding.Prefix == "" {
		c.Binding = envelope.NATS
	}
}

func (c *Config) validate() error {
	if len(c.Providers) == 0 {
		return errors.New("ingress: no providers")
	}
	if c.Publisher == nil {
		return errors.New("ingress: no publisher")
	}
	if c.Metrics == nil {
		return errors.New("ingress: no metrics")
	}
	if !c.AuthDisabled {
		for _, p := range c.Providers {
			if c.Verifiers[p.Name()] == nil {
				return fmt.Errorf("ingress: provider %s has no secrets configured (set them, or disable authentication for local development)", p.Name())
			}
		}
	}
	return nil
}

// Handler serves the ingress HTTP API.
type Handler struct {
	cfg        Config
	providers  map[string]provider.Provider
	slots      chan struct{}
	mux        *http.ServeMux
	retryAfter string
	bufs       sync.Pool
}

// New returns the ingress handler. metricsHandler serves GET /metrics.
func New(cfg Config, metricsHandler http.Handler) (*Handler, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &Handler{
		cfg:        cfg,
		providers:  make(map[string]provider.Provider, len(cfg.Providers)),
		slots:      make(chan struct{}, cfg.MaxInFlight),
		mux:        http.NewServeMux(),
		retryAfter: strconv.Itoa(int((cfg.RetryAfter + time.Second - 1) / time.Second)),
	}
	h.bufs.New = func() any { return new(bytes.Buffer) }
	for _, p := range cfg.Providers {
		h.providers[p.Name()] = p
	}
	h.mux.HandleFunc("/v1/webhooks/{provider}", h.serveWebhook)
	h.mux.HandleFunc("/v1/webhooks/{provider}/{rest...}", h.serveWebhook)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	h.mux.HandleFunc("GET /readyz", h.serveReady)
	if metricsHandler != nil {
		h.mux.Handle("GET /metrics", metricsHandler)
	}
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) serveReady(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := h.cfg.Ready(ctx); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not_ready", err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// outcome is what one delivery came to; it is logged and counted once.
type outcome struct {
	status  int
	code    string
	message string
	channel string
	ids     []string
	items   int
	err     error
}

func (h *Handler) serveWebhook(w http.ResponseWriter, r *http.Request) {
	start := h.cfg.Now()
	reqID := r.Header.Get("X-Request-Id")
	if reqID == "" {
		reqID = nuid.Next()
	}
	w.Header().Set("X-Request-Id", reqID)
	name := r.PathValue("provider")
	p, known := h.providers[name]
	metricName := name
	if !known {
		metricName = "unknown"
	}

	var out outcome
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			out = outcome{status: http.StatusInternalServerError, code: "internal", message: "internal error",
				err: fmt.Errorf("panic: %v\n%s", v, debug.Stack())}
			writeError(w, out.status, out.code, out.message)
		}
		h.finish(r, reqID, metricName, start, out)
	}()

	if !known {
		out = outcome{status: http.StatusNotFound, code: "unknown_provider", message: fmt.Sprintf("no provider %q", name)}
		writeError(w, out.status, out.code, out.message)
		return
	}
	out = h.handle(w, r, p, start)
}

func (h *Handler) handle(w http.ResponseWriter, r *http.Request, p provider.Provider, start time.Time) outcome {
	var segments []string
	if rest := r.PathValue("rest"); rest != "" {
		segments = strings.Split(strings.Trim(rest, "/"), "/")
	}
	if err := provider.CheckRoute(p, r.Method, segments); err != nil {
		if errors.Is(err, provider.ErrMethod) {
			return h.fail(w, outcome{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
				message: fmt.Sprintf("%s is not accepted here", r.Method)})
		}
		return h.fail(w, outcome{status: http.StatusNotFound, code: "no_route", message: "no such webhook route"})
	}

	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		w.Header().Set("Retry-After", h.retryAfter)
		return h.fail(w, outcome{status: http.StatusTooManyRequests, code: "saturated", message: "ingress saturated, retry later"})
	}
	h.cfg.Metrics.inFlight.Inc()
	defer h.cfg.Metrics.inFlight.Dec()

	verifier := h.cfg.Verifiers[p.Name()]
	if verifier != nil && !verifier.NeedsBody() {
		if o, failed := authOutcome(verifier.Verify(r, nil)); failed {
			return h.fail(w, o)
		}
	}

	buf := h.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	// A publish that failed may still hold the body: a broker client can
	// send a batch after its caller gave up (kafka-go does). Such a buffer
	// is left to the collector rather than reused under it.
	reuse := true
	defer func() {
		if reuse && buf.Cap() <= 1<<20 {
			h.bufs.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return h.fail(w, outcome{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
				message: fmt.Sprintf("body exceeds %d bytes", h.cfg.MaxBodyBytes)})
		}
		return h.fail(w, outcome{status: http.StatusBadRequest, code: "unreadable_body", message: "could not read body", err: err})
	}
	body := buf.Bytes()

	if verifier != nil && verifier.NeedsBody() {
		if o, failed := authOutcome(verifier.Verify(r, body)); failed {
			return h.fail(w, o)
		}
	}

	pin := r.URL.Query().Get("channel")
	items, err := p.Split(body, provider.Delivery{Method: r.Method, Segments: segments})
	if err != nil {
		if errors.Is(err, provider.ErrInvalid) {
			return h.reject(w, r, p.Name(), pin, body, start, outcome{status: http.StatusBadRequest, code: "invalid_payload", message: err.Error()})
		}
		return h.reject(w, r, p.Name(), pin, body, start, outcome{status: http.StatusInternalServerError, code: "internal",
			message: "could not split delivery", err: err})
	}
	if len(items) == 0 {
		return h.reject(w, r, p.Name(), pin, body, start, outcome{status: http.StatusBadRequest, code: "invalid_payload", message: "delivery has no items"})
	}

	msgs := make([]broker.Message, len(items))
	ids := make([]string, len(items))
	channel := ""
	traceParent := r.Header.Get("Traceparent")
	for i := range items {
		it := &items[i]
		switch {
		case pin != "" && it.Channel != "" && it.Channel != pin:
			return h.fail(w, outcome{status: http.StatusForbidden, code: "channel_mismatch",
				message: "payload names another channel than the one pinned by ?channel=", channel: it.Channel})
		case it.Channel == "" && pin == "":
			return h.reject(w, r, p.Name(), pin, body, start, outcome{status: http.StatusBadRequest, code: "no_channel",
				message: "payload names no channel; pin one with ?channel="})
		case it.Channel == "":
			it.Channel = pin
		}
		id, err := provider.EventID(p.Name(), *it)
		if err != nil {
			return h.reject(w, r, p.Name(), pin, body, start, outcome{status: http.StatusBadRequest, code: "invalid_payload", message: err.Error()})
		}
		t := it.Time
		if t.IsZero() {
			t = start
		}
		ids[i] = id
		channel = it.Channel
		msgs[i] = envelope.Ingress(envelope.Raw{
			ID:          id,
			Provider:    p.Name(),
			Channel:     it.Channel,
			Kind:        it.Kind,
			Chat:        chatid.ID(it.Chat),
			Time:        t,
			TraceParent: traceParent,
			Data:        it.Data,

			// Copies stored apart have other receive times: consumers use the first's.
			TimeReceived: it.Time.IsZero(),
		}, h.cfg.Binding)
	}

	if err := h.publish(r.Context(), msgs); err != nil {
		reuse = false
		o := h.unavailable(w, outcome{channel: channel, items: len(items), ids: ids, err: err})
		if r.Context().Err() != nil {
			// The provider hung up first; it will retry, nothing to alarm on.
			o.code = "client_gone"
		}
		return o
	}
	for i := range items {
		h.cfg.Metrics.items.WithLabelValues(p.Name(), items[i].Kind).Inc()
	}
	writeAccepted(w, ids)
	return outcome{status: http.StatusOK, channel: channel, ids: ids, items: len(items)}
}

// writeAccepted answers {"accepted": N, "ids": [...]}. Ids are hex, so the
// body is written without an encoder on this hot path.
func writeAccepted(w http.ResponseWriter, ids []string) {
	b := make([]byte, 0, 32+len(ids)*35)
	b = append(b, `{"accepted":`...)
	b = strconv.AppendInt(b, int64(len(ids)), 10)
	b = append(b, `,"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, id)
	}
	b = append(b, "]}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (h *Handler) publish(ctx context.Context, msgs []broker.Message) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	t := time.Now()
	err := h.cfg.Publisher.Publish(ctx, msgs...)
	result := "ok"
	if err != nil {
		result = "error"
	}
	h.cfg.Metrics.publish.WithLabelValues(result).Observe(time.Since(t).Seconds())
	return err
}

// reject answers a delivery that cannot become events, after storing its raw
// bytes on the dead-letter stream; if that store fails the answer is 503 so
// that the provider retries and nothing is lost.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, providerName, channel string, body []byte, received time.Time, o outcome) outcome {
	reason := o.message
	if o.err != nil {
		reason = o.message + ": " + o.err.Error()
	}
	dl := envelope.DeadLetter{
		Reason:     reason,
		Provider:   providerName,
		Channel:    channel,
		ReceivedAt: received.UTC(),
		Method:     r.Method,
		Path:       r.URL.Path,
		Headers:    keptHeaders(r.Header),
	}
	dl.SetBody(body)
	msg, err := envelope.DeadLetterMessage(dl, h.cfg.Binding)
	if err == nil {
		err = h.publish(r.Context(), []broker.Message{msg})
	}
	if err != nil {
		o.err = errors.Join(o.err, fmt.Errorf("dead letter: %w", err))
		return h.unavailable(w, o)
	}
	h.cfg.Metrics.deadLetters.WithLabelValues(providerName).Inc()
	o.ids = []string{msg.ID}
	return h.fail(w, o)
}

func (h *Handler) unavailable(w http.ResponseWriter, o outcome) outcome {
	w.Header().Set("Retry-After", h.retryAfter)
	o.status, o.code, o.message = http.StatusServiceUnavailable, "broker_unavailable", "the event broker did not store the delivery; retry later"
	return h.fail(w, o)
}

func (h *Handler) fail(w http.ResponseWriter, o outcome) outcome {
	writeError(w, o.status, o.code, o.message)
	return o
}

func authOutcome(err error) (outcome, bool) {
	switch {
	case err == nil:
		return outcome{}, false
	case errors.Is(err, ErrNoCredentials):
		return outcome{status: http.StatusUnauthorized, code: "unauthenticated", message: "credentials required"}, true
	default:
		return outcome{status: http.StatusForbidden, code: "forbidden", message: "credentials not accepted"}, true
	}
}

// finish logs one line and counts one delivery.
func (h *Handler) finish(r *http.Request, reqID, providerName string, start time.Time, o outcome) {
	elapsed := h.cfg.Now().Sub(start)
	h.cfg.Metrics.deliveries.WithLabelValues(providerName, strconv.Itoa(o.status)).Inc()
	h.cfg.Metrics.duration.WithLabelValues(providerName).Observe(elapsed.Seconds())
	log := h.cfg.Logger
	lvl := zap.InfoLevel
	switch {
	case o.status >= 500 && o.code != "client_gone":
		lvl = zap.ErrorLevel
	case o.status >= 400:
		lvl = zap.WarnLevel
	}
	ce := log.Check(lvl, "delivery")
	if ce == nil {
		return
	}
	ids := o.ids
	if len(ids) > 20 {
		ids = ids[:20]
	}
	fields := []zap.Field{
		zap.String("request_id", reqID),
		zap.String("provider", providerName),
		zap.String("method", r.Method),
		zap.String("channel", o.channel),
		zap.Int("items", o.items),
		zap.Strings("ids", ids),
		zap.Int("status", o.status),
		zap.Duration("latency", elapsed),
	}
	if o.code != "" {
		fields = append(fields, zap.String("code", o.code))
	}
	if o.err != nil {
		fields = append(fields, zap.Error(o.err))
	}
	ce.Write(fields...)
}

// keptHeaders are the request headers a dead-letter record keeps: what helps
// to understand a delivery, never a credential.
func keptHeaders(hdr http.Header) map[string]string {
	kept := map[string]string{}
	for _, k := range [...]string{"Content-Type", "User-Agent", "X-Request-Id", "X-Webhook-Request-Id",
		"X-Webhook-Timestamp", "X-Webhook-Hmac-Algorithm", "X-Forwarded-For", "Traceparent"} {
		if v := hdr.Get(k); v != "" {
			kept[k] = v
		}
	}
	return kept
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}
