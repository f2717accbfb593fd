package natsbroker

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"sync"
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
	// Name is the client name the server shows, "wahook" when empty.
	Name string
	// Streams sizes the streams EnsureStreams creates.
	Streams StreamsConfig
	// PublishTimeout bounds Publish when ctx has no deadline, 5s when zero.
	PublishTimeout time.Duration
	// MaxPending is the async publish window: messages sent and not yet
	// acknowledged, over all callers. 4096 when zero. A Publish that finds it
	// full waits for room (bounded by its ctx).
	MaxPending int
	// ReconnectWait is the pause between reconnect attempts, 1s when zero.
	ReconnectWait time.Duration
	// Subscribe tunes Subscribe.
	Subscribe SubscribeConfig
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
	}

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

// JetStream is the JetStream context, for consumers.
func (b *Broker) JetStream() jetstream.JetStream { return b.js }

// Conn is the NATS connection, for consumers and plain subscribers.
func (b *Broker) Conn() *nats.Conn { return b.nc }

// Publish sends every message to JetStream at once and returns nil when the
// stream has acknowledged all of them; a duplicate acknowledgement (same ID
// inside the duplicates window) counts as stored. m.ID is sent as the
// Nats-Msg-Id header and m.Key, when m.Header has no KeyHeader, as
// KeyHeader (percent-encoded), in a copy of m.Header; a map that already
// carries both is sent without copying. Publish keeps m.Header and
// m.Data until it returns (and, on error, until a pending send is settled):
// callers must not modify them meanwhile. It never modifies them.
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
		return publishErr(&msgs[0], classify(err))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.PublishTimeout)
		defer cancel()
	}
	// Send everything first so the round trips of a batch, and of
	// concurrent callers, overlap; then collect the acks.
	var small [8]jetstream.PubAckFuture
	futs := small[:0]
	for i := range msgs {
		f, err := b.send(ctx, &msgs[i])
		if err != nil {
			return err
		}
		futs = append(futs, f)
	}
	for i, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return publishErr(&msgs[i], classify(err))
		case <-ctx.Done():
			return publishErr(&msgs[i], classify(ctx.Err()))
		case <-b.connClosed:
			// nats.go settles no pending acks when the connection closes.
			return publishErr(&msgs[i], classify(nats.ErrConnectionClosed))
		}
	}
	return nil
}

// send publishes one message asynchronously, waiting for room in the
// window while ctx allows.
func (b *Broker) send(ctx context.Context, m *broker.Message) (jetstream.PubAckFuture, error) {
	if _, ok := StreamFor(m.Subject); !ok {
		return nil, publishErr(m, ErrNoStream)
	}
	nm := &nats.Msg{Subject: m.Subject, Header: nats.Header(m.Header), Data: m.Data}
	var opts [2]jetstream.PublishOpt
	n := 0
	needID := m.ID != "" && nats.Header(m.Header).Get(jetstream.MsgIDHeader) != m.ID
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
	if needID {
		opts[n] = jetstream.WithMsgID(m.ID)
		n++
	}
	for {
		wait := stallSlice
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		if wait <= 0 {
			return nil, publishErr(m, classify(context.DeadlineExceeded))
		}
		opts[n] = jetstream.WithStallWait(wait)
		f, err := b.js.PublishMsgAsync(nm, opts[:n+1]...)
		if err == nil {
			return f, nil
		}
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			if cerr := ctx.Err(); cerr != nil {
				return nil, publishErr(m, classify(cerr))
			}
			continue
		}
		return nil, publishErr(m, classify(err))
	}
}

func publishErr(m *broker.Message, err error) error {
	if m.ID == "" {
		return fmt.Errorf("natsbroker: publish to %s: %w", m.Subject, err)
	}
	return fmt.Errorf("natsbroker: publish %s to %s: %w", m.ID, m.Subject, err)
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

// Classify wraps err with broker.ErrUnavailable when retrying later can
// succeed, as Publish does: for the other packages that talk to JetStream
// (the state stores), so a store that is down is told from a bad input.
func Classify(err error) error { return classify(err) }

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
	switch e.ErrorCode {
	case 10047, // JSStorageResourcesExceededErr (500)
		10028: // JSMemoryResourcesExceededErr (500)
		return true
	case 10036, // JSClusterUnSupportFeatureErr (503)
		10010, // JSClusterRequiredErr (503)
		10063: // JSStreamSequenceNotMatchErr (503)
		return false
	}
	// 503: cluster not available, insufficient resources, JetStream not
	// enabled (yet), store failed. 429: the stream's ingest queue is full.
	return e.Code == 503 || e.Code == 429
}

// Ready reports an error unless the connection is up and the three streams
// exist.
func (b *Broker) Ready(ctx context.Context) error {
	if b.isClosing() {
		return fmt.Errorf("natsbroker: ready: %w", broker.ErrClosed)
	}
	if !b.nc.IsConnected() {
		return fmt.Errorf("natsbroker: ready: connection %s: %w", b.nc.Status(), broker.ErrUnavailable)
	}
	for _, name := range streamNames {
		if _, err := b.js.Stream(ctx, name); err != nil {
			return fmt.Errorf("natsbroker: ready: stream %s: %w", name, classify(err))
		}
	}
	return nil
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
