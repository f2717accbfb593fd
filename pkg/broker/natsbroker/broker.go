package natsbroker

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
)

// Config configures a Broker. The zero value of every field but URL (or
// Embedded) is usable.
type Config struct {
	// URL lists NATS server URLs, comma-separated. Used when Embedded is nil.
	URL string
	// Embedded, when set, is connected to in-process (nats.InProcessServer):
	// no socket, and the connection lives and dies with that server.
	Embedded *Embedded
	// Auth is how to log in and whether to use TLS; with Embedded and a
	// zero Auth, the embedded server's service user.
	Auth Auth
	// Name is the client name the server shows, "wahook" when empty.
	Name string
	// Streams sizes the streams EnsureStreams creates.
	Streams StreamsConfig
	// PublishTimeout bounds Publish when ctx has no deadline, 5s when zero.
	PublishTimeout time.Duration
	// MaxPending is the async publish window: messages sent and not yet
	// acknowledged, over all callers. 4096 when zero. One Publish call keeps
	// at most an eighth of it (256 at most) in flight; a Publish that finds
	// it full waits for room (bounded by its ctx).
	MaxPending int
	// ReconnectWait is the pause between reconnect attempts, 1s when zero.
	ReconnectWait time.Duration
	// Subscribe tunes Subscribe.
	Subscribe SubscribeConfig
	// StorageHighWater is the share (0 to 1] of a limit above which Ready
	// reports the storage full: the raw stream's, the account's store, the
	// embedded server's store. DefaultStorageHighWater (0.95) when zero.
	StorageHighWater float64
	// Logger receives connection events and Subscribe's reports (handler
	// panics, messages that could not be settled); nothing is logged when
	// nil.
	Logger *zap.Logger
}

// Defaults of Config.
const (
	DefaultPublishTimeout = 5 * time.Second
	DefaultMaxPending     = 4096
	DefaultReconnectWait  = time.Second
)

const (
	// stallSlice is the longest one wait for room in a full window lasts
	// before ctx is checked again, so cancellation is seen promptly.
	stallSlice = 50 * time.Millisecond
	// minOrphanTimeout frees window slots of acks nobody waits for any more
	// (their Publish gave up) should the server never answer.
	minOrphanTimeout = time.Minute
	// dialTimeout bounds each connection attempt.
	dialTimeout = 2 * time.Second
	// pingInterval times 3 (the pings allowed out) is how long a silently
	// dead connection goes unnoticed: 45s rather than nats.go's 4 minutes.
	pingInterval = 15 * time.Second
	// writeTimeout bounds one write to the connection.
	writeTimeout = 5 * time.Second
)

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "wahook"
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = DefaultReconnectWait
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.StorageHighWater == 0 {
		c.StorageHighWater = DefaultStorageHighWater
	}
	c.Streams.setDefaults()
	c.Subscribe.setDefaults()
}

// Validate checks a configuration after defaults are applied.
func (c Config) Validate() error {
	if c.URL == "" && c.Embedded == nil {
		return errors.New("natsbroker: neither URL nor Embedded is set")
	}
	if c.PublishTimeout < 0 {
		return fmt.Errorf("natsbroker: negative publish timeout %s", c.PublishTimeout)
	}
	if c.MaxPending < 1 {
		return fmt.Errorf("natsbroker: max pending %d, want 1 or more", c.MaxPending)
	}
	if c.ReconnectWait < 0 {
		return fmt.Errorf("natsbroker: negative reconnect wait %s", c.ReconnectWait)
	}
	if err := c.Subscribe.Validate(); err != nil {
		return err
	}
	if err := c.Auth.Validate(); err != nil {
		return err
	}
	if c.StorageHighWater <= 0 || c.StorageHighWater > 1 {
		return fmt.Errorf("natsbroker: storage high-water mark %g, want more than 0 and at most 1", c.StorageHighWater)
	}
	return c.Streams.Validate()
}

// Broker publishes to JetStream and consumes from it. It is safe for
// concurrent use.
type Broker struct {
	cfg Config
	log *zap.Logger
	nc  *nats.Conn
	js  jetstream.JetStream

	// connClosed is closed once the connection is closed for good.
	connClosed chan struct{}

	// reconnectCtx is cancelled at the next reconnect, then replaced:
	// subscriptions check then whether deliveries were lost.
	reconnectMu     sync.Mutex
	reconnectCtx    context.Context
	reconnectCancel context.CancelFunc

	// maxPayload is the server's max_payload as first read. Reading it
	// takes the connection's lock, which every publish takes too, so it is
	// read again only for a message that seems over it (a reconnect may
	// have reached a server with another limit).
	maxPayload atomic.Int64

	// mu guards closing against inflight.Add, so Close's Wait never races
	// an Add from zero; it is held only to enter, never while waiting.
	mu       sync.RWMutex
	closing  bool
	inflight sync.WaitGroup
}

var (
	_ broker.Publisher  = (*Broker)(nil)
	_ broker.Subscriber = (*Broker)(nil)
)

// Connect connects to NATS and ensures the streams exist. It fails, bounded
// by ctx, when no server can be reached now; once connected, it reconnects
// forever, and Publish fails with ErrUnavailable while disconnected.
func Connect(ctx context.Context, cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("natsbroker: connect: %w", classify(err))
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, connClosed: make(chan struct{})}
	b.reconnectCtx, b.reconnectCancel = context.WithCancel(context.Background())

	url := cfg.URL
	dial := dialTimeout
	if dl, ok := ctx.Deadline(); ok {
		dial = min(dial, time.Until(dl))
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.Timeout(dial),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		// No reconnect buffer: while disconnected a publish fails at once
		// (ErrReconnectBufExceeded, mapped to ErrUnavailable) instead of
		// sitting in memory with its caller waiting for an ack that only a
		// reconnect can bring. The provider retries on a 503; buffering would
		// hold HTTP requests and memory for the length of the outage.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(pingInterval),
		// A write stuck on a dead peer holds the connection lock, which
		// PublishMsgAsync takes without a ctx: bound it well below nats.go's
		// 1-minute default and reconnect, failing pending acks as
		// ErrUnavailable, instead of blocking every Publish past its deadline.
		nats.FlusherTimeout(writeTimeout),
		nats.ReconnectOnFlusherError(),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			b.log.Warn("nats disconnected", zap.Error(err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("nats reconnected", zap.String("url", nc.ConnectedUrlRedacted()))
			b.reconnected()
		}),
		nats.ReconnectErrHandler(func(nc *nats.Conn, err error) {
			b.log.Debug("nats reconnect attempt failed", zap.Error(err))
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			b.log.Info("nats connection closed")
			close(b.connClosed)
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			fields := []zap.Field{zap.Error(err)}
			if sub != nil {
				fields = append(fields, zap.String("subject", sub.Subject))
			}
			b.log.Error("nats async error", fields...)
		}),
	}
	if cfg.Embedded != nil {
		url = cfg.Embedded.ClientURL()
		opts = append(opts, nats.InProcessServer(cfg.Embedded.Server()))
		if cfg.Auth.IsZero() {
			cfg.Auth = cfg.Embedded.ServiceAuth()
		}
	}
	authOpts, err := cfg.Auth.Options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, authOpts...)

	nc, err := dialContext(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	b.nc = nc
	b.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(max(cfg.PublishTimeout, minOrphanTimeout)),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbroker: jetstream: %w", err)
	}
	if err := b.EnsureStreams(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	b.log.Info("nats connected", zap.String("url", nc.ConnectedUrlRedacted()), zap.String("name", cfg.Name))
	return b, nil
}

// dialContext runs nats.Connect, which takes no context, so that ctx bounds
// it; a connection that completes after ctx ended is closed.
func dialContext(ctx context.Context, url string, opts []nats.Option) (*nats.Conn, error) {
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(url, opts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("natsbroker: connect %s: %w", redact(url), classify(r.err))
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("natsbroker: connect %s: %w", redact(url), classify(ctx.Err()))
	}
}

// redact hides credentials in a comma-separated URL list for error
// messages.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := neturl.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// reconnected tells the subscriptions that the connection was
// re-established.
func (b *Broker) reconnected() {
	b.reconnectMu.Lock()
	defer b.reconnectMu.Unlock()
	b.reconnectCancel()
	b.reconnectCtx, b.reconnectCancel = context.WithCancel(context.Background())
}

// nextReconnect is a context cancelled at the next reconnect.
func (b *Broker) nextReconnect() context.Context {
	b.reconnectMu.Lock()
	defer b.reconnectMu.Unlock()
	return b.reconnectCtx
}

// JetStream is the JetStream context, for consumers.
func (b *Broker) JetStream() jetstream.JetStream { return b.js }

// Conn is the NATS connection, for consumers and plain subscribers.
func (b *Broker) Conn() *nats.Conn { return b.nc }

// Publish sends the messages to JetStream and returns nil when the stream
// has acknowledged all of them; a duplicate acknowledgement (same ID inside
// the duplicates window) counts as stored. It keeps at most 256 of its
// messages in flight (an eighth of Config.MaxPending when that is less),
// sending the next ones as earlier acks arrive, so that one call with many
// messages leaves room in the window for concurrent callers.
//
// m.ID is sent as the Nats-Msg-Id header and m.Key, when m.Header has no
// KeyHeader, as KeyHeader (percent-encoded), in a copy of m.Header; a map
// that already carries both is sent without copying.
//
// Messages the server would refuse, or that could break the protocol, are
// refused before anything of the call is sent, with an error wrapping
// broker.ErrRejected: an invalid subject, a header that would not be stored
// as given, a control line or header block over the server's limits, and
// headers and data over max_payload (also broker.ErrTooLarge).
//
// Publish keeps m.Header and m.Data until it returns (and, on error, until a
// pending send is settled): callers must not modify them meanwhile. It never
// modifies them.
func (b *Broker) Publish(ctx context.Context, msgs ...broker.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if !b.enter() {
		return fmt.Errorf("natsbroker: publish: %w", broker.ErrClosed)
	}
	defer b.inflight.Done()
	return b.publish(ctx, msgs)
}

// MaxMessageBytes is the server's max_payload, as its INFO announced it:
// a message whose broker.Size is at most that fits.
func (b *Broker) MaxMessageBytes() int { return int(b.nc.MaxPayload()) }

var _ broker.Limits = (*Broker)(nil)

func (b *Broker) knownMaxPayload() int {
	v := b.maxPayload.Load()
	if v == 0 {
		v = b.nc.MaxPayload()
		b.maxPayload.Store(v)
	}
	return int(v)
}

// perCall is how many of its messages one Publish call keeps in
// flight: an eighth of the window, at most 256 (enough to overlap the round
// trips), at least 1.
func (b *Broker) perCall() int {
	return min(max(b.cfg.MaxPending/8, 1), maxPerCallPending)
}

const maxPerCallPending = 256

// enter registers an in-flight Publish, or reports false once Close began.
func (b *Broker) enter() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closing {
		return false
	}
	b.inflight.Add(1)
	return true
}

func (b *Broker) publish(ctx context.Context, msgs []broker.Message) error {
	// A caller that already gave up gets nothing stored behind its back.
	if err := ctx.Err(); err != nil {
		return publishErr(&msgs[0], classifyPublish(err))
	}
	lim := limits{maxPayload: b.knownMaxPayload(), replyLen: asyncReplyLen(b.nc), nc: b.nc}
	for i := range msgs {
		m := &msgs[i]
		if _, ok := StreamFor(m.Subject); !ok {
			return publishErr(m, classifyPublish(ErrNoStream))
		}
		if err := lim.check(m, needsID(m)); err != nil {
			return publishErr(m, err)
		}
	}
	// Without a deadline in ctx the call ends after PublishTimeout: a
	// timer rather than a derived context, which would cost a context, its
	// timer and a registration with ctx for every call.
	deadline, ok := ctx.Deadline()
	var expired <-chan time.Time
	if !ok {
		deadline = time.Now().Add(b.cfg.PublishTimeout)
		t := time.NewTimer(b.cfg.PublishTimeout)
		defer t.Stop()
		expired = t.C
	}
	// Keep up to w messages in flight: message i+w is sent once message
	// i is acknowledged, so the round trips overlap without one call taking
	// the whole window.
	w := min(len(msgs), b.perCall())
	var small [8]jetstream.PubAckFuture
	ring := small[:0]
	if w <= len(small) {
		ring = small[:w]
	} else {
		ring = make([]jetstream.PubAckFuture, w)
	}
	sent := 0
	for i := range msgs {
		for ; sent < len(msgs) && sent < i+w; sent++ {
			f, err := b.send(ctx, deadline, &msgs[sent])
			if err != nil {
				return err
			}
			ring[sent%w] = f
		}
		f := ring[i%w]
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return publishErr(&msgs[i], classifyPublish(err))
		case <-ctx.Done():
			return publishErr(&msgs[i], classifyPublish(ctx.Err()))
		case <-expired:
			return publishErr(&msgs[i], classifyPublish(context.DeadlineExceeded))
		case <-b.connClosed:
			// nats.go settles no pending acks when the connection closes.
			return publishErr(&msgs[i], classifyPublish(nats.ErrConnectionClosed))
		}
	}
	return nil
}

// needsID tells whether Publish adds m.ID as Nats-Msg-Id.
func needsID(m *broker.Message) bool {
	return m.ID != "" && nats.Header(m.Header).Get(jetstream.MsgIDHeader) != m.ID
}

// stallOnly are the options of a message sent without Nats-Msg-Id while
// the deadline is over a stallSlice away, the common case: built once, as
// every option is a closure and the slice passed on escapes.
var stallOnly = []jetstream.PublishOpt{jetstream.WithStallWait(stallSlice)}

// send publishes one checked message asynchronously, waiting for room in
// the window while ctx allows, until deadline.
func (b *Broker) send(ctx context.Context, deadline time.Time, m *broker.Message) (jetstream.PubAckFuture, error) {
	nm := &nats.Msg{Subject: m.Subject, Header: nats.Header(m.Header), Data: m.Data}
	needID := needsID(m)
	// NATS has no message key: it travels as KeyHeader, which package
	// envelope always writes; a message without it gets it here, so that
	// consumers order it by its Key rather than by its subject.
	needKey := m.Key != "" && len(m.Header[KeyHeader]) == 0
	if needID || needKey {
		// Give the writes a copy so the caller's map is never written,
		// which would race when one message is published from two
		// goroutines, or a retry is built from it. A shallow copy of ~11
		// entries costs about 0.8µs, under 3% of a publish here; a header
		// already carrying Nats-Msg-Id = ID and the key is sent as is.
		h := make(nats.Header, len(m.Header)+2)
		for k, v := range m.Header {
			h[k] = v
		}
		if needKey {
			h[KeyHeader] = []string{broker.EscapeHeader(m.Key)}
		}
		nm.Header = h
	}
	for {
		wait := min(stallSlice, time.Until(deadline))
		if wait <= 0 {
			return nil, publishErr(m, classifyPublish(context.DeadlineExceeded))
		}
		var f jetstream.PubAckFuture
		var err error
		if !needID && wait == stallSlice {
			f, err = b.js.PublishMsgAsync(nm, stallOnly...)
		} else {
			opts := make([]jetstream.PublishOpt, 0, 2)
			if needID {
				opts = append(opts, jetstream.WithMsgID(m.ID))
			}
			f, err = b.js.PublishMsgAsync(nm, append(opts, jetstream.WithStallWait(wait))...)
		}
		if err == nil {
			return f, nil
		}
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			if cerr := ctx.Err(); cerr != nil {
				return nil, publishErr(m, classifyPublish(cerr))
			}
			continue
		}
		return nil, publishErr(m, classifyPublish(err))
	}
}

func publishErr(m *broker.Message, err error) error {
	if m.ID == "" {
		return fmt.Errorf("natsbroker: publish to %s: %w", clip(m.Subject), err)
	}
	return fmt.Errorf("natsbroker: publish %s to %s: %w", clip(m.ID), clip(m.Subject), err)
}

// classify wraps err with broker.ErrUnavailable when retrying later can
// succeed: the server is unreachable, did not answer in time, or JetStream
// reports itself temporarily unable to store. The cause stays wrapped.
func classify(err error) error {
	if transient(err) {
		return fmt.Errorf("%w: %w", broker.ErrUnavailable, err)
	}
	return err
}

// classifyPublish is classify for the errors of a publish, which also tells
// the messages retrying can never store: errors wrapping broker.ErrRejected
// (and broker.ErrTooLarge for a message over a size limit).
func classifyPublish(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, broker.ErrRejected), errors.Is(err, broker.ErrUnavailable):
		return err
	case transient(err):
		return fmt.Errorf("%w: %w", broker.ErrUnavailable, err)
	case tooLarge(err):
		return fmt.Errorf("%w: %w: %w", broker.ErrRejected, broker.ErrTooLarge, err)
	case rejected(err):
		return broker.Rejected(err)
	}
	return err
}

// tooLarge tells a message over the server's max_payload (nats.go refuses
// it before sending) or over the stream's maximum message size.
func tooLarge(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) {
		return true
	}
	var jsErr jetstream.JetStreamError
	if errors.As(err, &jsErr) {
		if apiErr := jsErr.APIError(); apiErr != nil {
			return apiErr.ErrorCode == 10054 // JSStreamMessageExceedsMaximumErr
		}
	}
	return false
}

// rejected tells a message the server or client refuses for what it is:
// no stream for its subject, a subject or header nats.go refuses, or a
// JetStream answer that the request is bad (400: header block too large,
// a failed expectation), which a retry of the same message gets again.
func rejected(err error) bool {
	for _, target := range [...]error{
		ErrNoStream,
		nats.ErrBadSubject,
		nats.ErrBadHeaderMsg,
		nats.ErrInvalidMsg,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var jsErr jetstream.JetStreamError
	if errors.As(err, &jsErr) {
		if apiErr := jsErr.APIError(); apiErr != nil {
			return apiErr.Code == 400
		}
	}
	return false
}

func transient(err error) bool {
	for _, target := range [...]error{
		context.DeadlineExceeded,
		nats.ErrTimeout,
		nats.ErrNoServers,
		nats.ErrNoResponders,
		nats.ErrDisconnected,
		nats.ErrConnectionClosed,
		nats.ErrConnectionDraining,
		nats.ErrConnectionReconnecting,
		nats.ErrReconnectBufExceeded,
		nats.ErrStaleConnection,
		jetstream.ErrNoStreamResponse, // no responders: JetStream or the stream is (re)starting
		jetstream.ErrAsyncPublishTimeout,
		jetstream.ErrTooManyStalledMsgs,
		jetstream.ErrJetStreamPublisherClosed,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var jsErr jetstream.JetStreamError
	if errors.As(err, &jsErr) {
		if apiErr := jsErr.APIError(); apiErr != nil {
			return transientAPI(apiErr)
		}
	}
	return false
}

// transientAPI tells JetStream API errors an operator or time fixes (no
// quorum, storage full, JetStream starting) from those a retry never fixes
// (message too large, bad request).
func transientAPI(e *jetstream.APIError) bool {
	if storeFull(e) {
		return true
	}
	switch e.ErrorCode {
	case 10036, // JSClusterUnSupportFeatureErr (503)
		10010, // JSClusterRequiredErr (503)
		10063: // JSStreamSequenceNotMatchErr (503)
		return false
	}
	// 503: cluster not available, insufficient resources, JetStream not
	// enabled (yet), store failed. 429: the stream's ingest queue is full.
	return e.Code == 503 || e.Code == 429
}

// Ready reports an error unless the connection is up, JetStream answers,
// the three streams exist and storage has room (see storageReady).
func (b *Broker) Ready(ctx context.Context) error {
	if b.isClosing() {
		return fmt.Errorf("natsbroker: ready: %w", broker.ErrClosed)
	}
	if !b.nc.IsConnected() {
		return fmt.Errorf("natsbroker: ready: connection %s: %w", b.nc.Status(), broker.ErrUnavailable)
	}
	return b.storageReady(ctx)
}

func (b *Broker) isClosing() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.closing
}

// Close makes Publish and Subscribe fail with broker.ErrClosed, waits for
// the Publish calls in flight to finish, then drains the connection, which
// ends running subscriptions (cancel their ctx first to shut them down
// gracefully). When ctx ends first
// it closes the connection at once (in-flight calls fail with
// ErrUnavailable) and returns ctx's error.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	already := b.closing
	b.closing = true
	b.mu.Unlock()

	if !already {
		idle := make(chan struct{})
		go func() {
			b.inflight.Wait()
			close(idle)
		}()
		select {
		case <-idle:
		case <-ctx.Done():
			b.nc.Close()
			return fmt.Errorf("natsbroker: close: waiting for in-flight publishes: %w", ctx.Err())
		}
		// While reconnecting there is nothing to drain and nats.go closes
		// the connection itself.
		err := b.nc.Drain()
		if err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrConnectionReconnecting) {
			b.nc.Close()
			return fmt.Errorf("natsbroker: close: drain: %w", err)
		}
	}
	select {
	case <-b.connClosed:
		return nil
	case <-ctx.Done():
		b.nc.Close()
		return fmt.Errorf("natsbroker: close: drain: %w", ctx.Err())
	}
}
