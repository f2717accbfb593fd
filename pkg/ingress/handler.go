// Package ingress is wahook's webhook HTTP API: it checks who sent a
// delivery, splits it into items with the provider's package, and publishes
// each item as a raw CloudEvent, answering 200 only once the broker has
// stored every item. Bad input is answered with a clear error and kept on the
// dead-letter stream; a broker that is down or slow is answered 503 so that
// the provider retries.
package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/auth"
	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/tracing"
	"github.com/wahook/wahook/schemas"
)

// Config configures a Handler. Zero durations and sizes take the defaults
// written beside them.
type Config struct {
	// Providers served under /v1/webhooks/{name}.
	Providers []provider.Provider
	// Verifiers by provider name. A provider without one is refused at
	// construction unless AuthDisabled is set, in which case it runs open;
	// providers with a verifier are always checked.
	Verifiers    map[string]auth.Verifier
	AuthDisabled bool
	// VerifyTokens by provider name: the tokens a provider that checks
	// its webhook URL with a GET (provider.Challenger, e.g. Meta) must
	// present. Without them such a check is refused (403).
	VerifyTokens map[string]*auth.VerifyTokens
	Publisher    broker.Publisher
	// Binding is the CloudEvents binding of the broker in use.
	Binding envelope.Binding
	// MaxBodyBytes bounds a delivery's body; larger ones get 413. 4 MiB.
	MaxBodyBytes int64
	// MaxInFlight bounds deliveries handled at once; more get 429. 4096.
	MaxInFlight int
	// MaxUnauthenticatedInFlight bounds, among them, the deliveries whose
	// sender is not known yet: those of providers that sign the body
	// (until the signature is checked) and of providers running open.
	// MaxInFlight/4.
	MaxUnauthenticatedInFlight int
	// MaxBufferedBytes bounds the bytes of the bodies held in memory at
	// once, a quarter of them for deliveries not yet authenticated; past
	// it the answer is 429. 256 MiB.
	MaxBufferedBytes int64
	// BodyReadTimeout bounds the time a body may take to arrive, so that
	// slow clients give their slot back; past it the answer is 408. 10 s.
	BodyReadTimeout time.Duration
	// MaxItems bounds the items of one delivery; more get 400. 1000.
	MaxItems int
	// PublishTimeout bounds the wait for the broker's acknowledgements;
	// past it the answer is 503. 5 s.
	PublishTimeout time.Duration
	// RetryAfter is sent with 429 and 503 answers. 5 s.
	RetryAfter time.Duration
	// Ready reports whether the broker is reachable and its streams exist.
	Ready   func(ctx context.Context) error
	Metrics *Metrics
	Logger  *zap.Logger
	// Tracer, when set, traces every delivery and carries its trace
	// context on the raw events; nil is tracing off.
	Tracer *tracing.Tracer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Observer, when set, is told of every delivery once answered (the
	// console's per-channel overview); nil costs nothing.
	Observer Observer
}

// Observer is told of each delivery once it is answered: its provider
// ("unknown" for a path naming none served), its channel when known (""
// before), whether its sender was checked (or the provider runs open), the
// answer's status and the items accepted. Channels come from payloads, so
// an Observer bounds what it keeps. It is called on the request's
// goroutine and must be quick.
type Observer interface {
	Delivery(provider, channel string, authenticated bool, status, items int)
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 4 << 20
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4096
	}
	if c.MaxUnauthenticatedInFlight <= 0 {
		c.MaxUnauthenticatedInFlight = max(c.MaxInFlight/4, 1)
	}
	if c.MaxBufferedBytes <= 0 {
		c.MaxBufferedBytes = 256 << 20
	}
	if c.BodyReadTimeout <= 0 {
		c.BodyReadTimeout = 10 * time.Second
	}
	if c.MaxItems <= 0 {
		c.MaxItems = 1000
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
	if c.MaxBufferedBytes/4 < c.MaxBodyBytes {
		return fmt.Errorf("ingress: buffered bytes %d must be at least 4 times the body limit %d, or the largest bodies could never be read", c.MaxBufferedBytes, c.MaxBodyBytes)
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
	total      budget // every delivery
	unauth     budget // deliveries whose sender is not known yet
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
		mux:        http.NewServeMux(),
		retryAfter: strconv.Itoa(int((cfg.RetryAfter + time.Second - 1) / time.Second)),
	}
	h.total.maxDeliveries, h.total.maxBytes = int64(cfg.MaxInFlight), cfg.MaxBufferedBytes
	h.unauth.maxDeliveries, h.unauth.maxBytes = int64(min(cfg.MaxUnauthenticatedInFlight, cfg.MaxInFlight)), cfg.MaxBufferedBytes/4
	cfg.Metrics.buffered.Store(&h.total)
	h.bufs.New = func() any { return new([]byte) }
	for _, p := range cfg.Providers {
		h.providers[p.Name()] = p
	}
	h.mux.HandleFunc("/v1/webhooks/{provider}", h.serveWebhook)
	h.mux.HandleFunc("/v1/webhooks/{provider}/{rest...}", h.serveWebhook)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	h.mux.HandleFunc("GET /readyz", h.serveReady)
	// The schemas at their $id paths, so that a derived event's
	// dataschema resolves against a running wahook; one route each, so
	// that any other path gets the JSON 404 below.
	for _, name := range schemas.Names() {
		h.mux.Handle("GET "+schemas.Path+name, schemas.Handler())
	}
	if metricsHandler != nil {
		h.mux.Handle("GET /metrics", metricsHandler)
	}
	// Every other request gets a JSON answer too, not the mux's text.
	h.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no_route", "no such route")
	})
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The mux would redirect a path that is not clean ("//", "..") with a
	// 301 that providers would follow as a GET: such paths are no route.
	if p := r.URL.Path; r.Method != http.MethodConnect && (p == "" || p[0] != '/' || !clean(p)) {
		writeError(w, http.StatusNotFound, "no_route", "no such route")
		return
	}
	h.mux.ServeHTTP(w, r)
}

// clean reports whether the mux takes p as it is: no empty, "." or ".."
// segments (a trailing slash is kept).
func clean(p string) bool {
	c := path.Clean(p)
	if p[len(p)-1] == '/' && c != "/" {
		c += "/"
	}
	return c == p
}

func (h *Handler) serveReady(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := h.cfg.Ready(ctx); err != nil {
			// The reason (broker addresses, stream names, store use) is for
			// operators: the admin listener's /readyz tells it.
			writeError(w, http.StatusServiceUnavailable, "not_ready", "not ready")
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
	if !printable(reqID, maxRequestID) {
		reqID = nuid.Next()
	}
	w.Header().Set("X-Request-Id", reqID)
	if r.ContentLength != 0 {
		// Answers given before the body is read close the connection:
		// the server would otherwise read what is left of the body before
		// answering, which a slow client makes last. Reading the body
		// whole lifts it.
		w.Header()["Connection"] = connectionClose
	}
	name := r.PathValue("provider")
	p, known := h.providers[name]
	metricName := name
	if !known {
		metricName = "unknown"
	}

	var span trace.Span
	if h.cfg.Tracer != nil {
		var ctx context.Context
		ctx, span = h.cfg.Tracer.StartDelivery(r, r.Pattern)
		r = r.WithContext(ctx)
	}
	d := &delivery{h: h, reuse: true}
	var out outcome
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				d.done()
				panic(v)
			}
			out = outcome{status: http.StatusInternalServerError, code: "internal", message: "internal error",
				err: fmt.Errorf("panic: %v", v)}
			if body := d.body; body != nil {
				// The body was read and its sender checked: keep it.
				d.body = nil
				out = h.reject(w, r, reqID, name, d.channel, body, start, out)
			} else {
				writeError(w, out.status, out.code, out.message)
			}
			out.err = fmt.Errorf("%w\n%s", out.err, debug.Stack())
		}
		d.done()
		if h.cfg.Observer != nil {
			ch, items := out.channel, 0
			if ch == "" {
				ch = d.channel
			}
			if out.status == http.StatusOK {
				items = out.items
			}
			h.cfg.Observer.Delivery(metricName, ch, d.authed, out.status, items)
		}
		h.finish(r, reqID, metricName, start, out, span)
	}()

	if !known {
		out = outcome{status: http.StatusNotFound, code: "unknown_provider", message: fmt.Sprintf("no provider %q", name)}
		writeError(w, out.status, out.code, out.message)
		return
	}
	out = h.handle(w, r, p, d, reqID, start)
}

func (h *Handler) handle(w http.ResponseWriter, r *http.Request, p provider.Provider, d *delivery, reqID string, start time.Time) outcome {
	var segments []string
	if rest := r.PathValue("rest"); rest != "" {
		segments = strings.Split(strings.Trim(rest, "/"), "/")
	}
	if c, ok := p.(provider.Challenger); ok && r.Method == http.MethodGet && len(segments) == 0 {
		return h.handshake(w, r, p, c)
	}
	if err := provider.CheckRoute(p, r.Method, segments); err != nil {
		if errors.Is(err, provider.ErrMethod) {
			return h.fail(w, outcome{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
				message: fmt.Sprintf("%s is not accepted here", r.Method)})
		}
		return h.fail(w, outcome{status: http.StatusNotFound, code: "no_route", message: "no such webhook route"})
	}

	// A sender known from the request alone is checked before anything is
	// read or reserved; one that signs the body, or a provider running
	// open, takes from the smaller unauthenticated budget until checked.
	verifier := h.cfg.Verifiers[p.Name()]
	grant := auth.AllChannels
	signed := verifier != nil && verifier.NeedsBody()
	if verifier != nil && !signed {
		g, err := auth.Authorize(verifier, r, nil)
		if o, failed := authOutcome(err); failed {
			return h.fail(w, o)
		}
		grant = g
	}
	// Known from the request, or running open; a signed body is checked below.
	d.authed = !signed
	if !d.enter(verifier == nil || signed) {
		return h.saturated(w, "ingress saturated, retry later")
	}
	h.cfg.Metrics.inFlight.Inc()
	defer h.cfg.Metrics.inFlight.Dec()

	d.buf = h.bufs.Get().(*[]byte)
	body, o, ok := h.readBody(w, r, d)
	if !ok {
		return o
	}
	delete(w.Header(), "Connection")
	if signed {
		g, err := auth.Authorize(verifier, r, body)
		if o, failed := authOutcome(err); failed {
			return h.fail(w, o)
		}
		grant = g
		d.authenticated()
		d.authed = true
	}
	// A credential the provider puts in the body goes before anything of
	// the body is split, stored, dead-lettered or logged.
	body = provider.Redact(p, body)
	d.body = body

	// Parsing a query makes a map: most deliveries have none.
	var pin string
	if r.URL.RawQuery != "" {
		pin = r.URL.Query().Get("channel")
	}
	// A channel-scoped sender is refused before anything of it is stored.
	if pin != "" && !grant.Allows(pin) {
		return h.fail(w, forbiddenChannel(pin))
	}
	if pin != "" && !provider.ValidChannel(pin) {
		return h.reject(w, r, reqID, p.Name(), "", body, start, invalidChannel("?channel="))
	}
	d.channel = pin
	items, f := splitDelivery(p, body, r.Method, segments, h.cfg.MaxItems)
	if f != nil {
		return h.reject(w, r, reqID, p.Name(), pin, body, start, *f)
	}
	// A channel-scoped secret posts for its channel only: every item or none.
	if ch, refused := grant.Refused(items, pin); refused {
		return h.fail(w, forbiddenChannel(ch))
	}

	msgs, ids, channel, bf := rawEvents(p.Name(), items, pin, false, start, reqID, h.cfg.Binding)
	if bf != nil {
		if bf.keep {
			return h.reject(w, r, reqID, p.Name(), bf.channel, body, start, bf.o)
		}
		return h.fail(w, bf.o)
	}

	d.channel = channel
	if err := h.publish(r.Context(), msgs); err != nil {
		d.reuse = false
		o := outcome{channel: channel, items: len(items), ids: ids, err: err}
		switch {
		case errors.Is(err, broker.ErrTooLarge):
			o.status, o.code, o.message = http.StatusRequestEntityTooLarge, "too_large_for_broker",
				"an item is larger than the event broker takes; the delivery is kept as a dead letter"
		case errors.Is(err, broker.ErrRejected):
			o.status, o.code, o.message = http.StatusInternalServerError, "broker_rejected",
				"the event broker refuses the delivery; it is kept as a dead letter"
		default:
			o = h.unavailable(w, o)
			if r.Context().Err() != nil {
				// The provider hung up first; it will retry, nothing to alarm on.
				o.code = "client_gone"
			}
			return o
		}
		// Retrying can never store it: keep it, and say why.
		d.body = nil
		o = h.reject(w, r, reqID, p.Name(), channel, body, start, o)
		o.ids = append(o.ids, ids...)
		return o
	}
	d.body = nil
	for i := range items {
		h.cfg.Metrics.item(p.Name(), items[i].Kind)
	}
	writeAccepted(w, ids)
	return outcome{status: http.StatusOK, channel: channel, ids: ids, items: len(items)}
}

func invalidChannel(which string) outcome {
	return outcome{status: http.StatusBadRequest, code: "invalid_channel",
		message: fmt.Sprintf("%s channel is not 1 to %d bytes of ASCII letters, digits and -_.:@+=~", which, provider.MaxChannelBytes)}
}

var connectionClose = []string{"close"}

// maxRequestID bounds the X-Request-Id taken from a request; a longer one is
// replaced, since it is echoed, logged and kept in dead letters.
const maxRequestID = 128

// printable reports whether s is 1 to max bytes of printable ASCII.
func printable(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// writeAccepted answers {"accepted": N, "ids": [...]}. Ids are hex, so the
// body is written without an encoder on this hot path.
var jsonContentType = []string{"application/json"}

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
	// Shared, never modified: Set would allocate a slice per answer.
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (h *Handler) publish(ctx context.Context, msgs []broker.Message) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	t := time.Now()
	// Traced, each message carries its producer span's context.
	err := h.cfg.Tracer.Publish(ctx, h.cfg.Publisher, h.cfg.Binding, msgs...)
	result := "ok"
	if err != nil {
		result = "error"
	}
	h.cfg.Metrics.published(result, time.Since(t).Seconds())
	return err
}

// reject answers a delivery that cannot become events, after storing its raw
// bytes and its request id on the dead-letter stream; if that store fails the answer is 503 so
// that the provider retries and nothing is lost.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, reqID, providerName, channel string, body []byte, received time.Time, o outcome) outcome {
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
	// The request id answered, made up or not, as the log line and the
	// raw events have it: a redrive puts it on its raw events again.
	dl.Headers["X-Request-Id"] = reqID
	dl.SetBody(body)
	// Parts first when the body does not fit one message, the record last.
	msgs, err := envelope.DeadLetterMessages(dl, h.cfg.Binding, broker.MaxMessageBytes(h.cfg.Publisher))
	if err == nil {
		err = envelope.PublishDeadLetter(r.Context(), func(ctx context.Context, m ...broker.Message) error {
			return h.publish(ctx, m)
		}, msgs)
	}
	if err != nil {
		o.err = errors.Join(o.err, fmt.Errorf("dead letter: %w", err))
		return h.unavailable(w, o)
	}
	h.cfg.Metrics.deadLetters.WithLabelValues(providerName).Inc()
	o.ids = []string{msgs[len(msgs)-1].ID}
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
	case errors.Is(err, auth.ErrNoCredentials):
		return outcome{status: http.StatusUnauthorized, code: "unauthenticated", message: "credentials required"}, true
	case errors.Is(err, auth.ErrStale):
		return outcome{status: http.StatusForbidden, code: "forbidden", message: "delivery timestamp outside the accepted skew"}, true
	default:
		return outcome{status: http.StatusForbidden, code: "forbidden", message: "credentials not accepted"}, true
	}
}

// finish logs one line, counts one delivery and ends its span.
func (h *Handler) finish(r *http.Request, reqID, providerName string, start time.Time, o outcome, span trace.Span) {
	if span != nil {
		// Ended after the line is written, so that it is still recording.
		defer tracing.EndDelivery(span, tracing.Delivery{Provider: providerName, Channel: o.channel, RequestID: reqID,
			Items: o.items, Status: o.status, Code: o.code, Err: o.err})
	}
	elapsed := h.cfg.Now().Sub(start)
	h.cfg.Metrics.delivery(providerName, o.status, elapsed.Seconds())
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
	fields = append(fields, tracing.SpanFields(span)...)
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
