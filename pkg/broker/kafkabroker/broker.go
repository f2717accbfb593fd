package kafkabroker

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
)

const (
	// connectTimeout bounds Connect when its ctx has no deadline.
	connectTimeout = 10 * time.Second
	// dialTimeout bounds opening one connection.
	dialTimeout = 5 * time.Second
	// groupTimeout bounds one request to the group coordinator; errors
	// talking to it end the generation, so it is not short.
	groupTimeout = 5 * time.Second
)

// Broker publishes to Kafka and consumes from it. It is safe for concurrent
// use.
type Broker struct {
	cfg       Config
	log       *zap.Logger
	addr      net.Addr
	transport *kafka.Transport
	client    *kafka.Client
	dialer    *kafka.Dialer
	// dialErrors counts failed connection attempts (DialErrors).
	dialErrors atomic.Uint64
	// w is the one Writer every Publish shares, so that concurrent callers'
	// messages travel in the same batches.
	w *kafka.Writer

	// mu guards closing against the Adds of inflight and subs, so that
	// Close's Waits never race an Add from zero; it is held only to enter.
	mu       sync.RWMutex
	closing  bool
	inflight sync.WaitGroup // Publish calls
	subs     sync.WaitGroup // Subscribe calls
	// closed is closed when Close ends the running subscriptions, done
	// once Close has finished.
	closed    chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	// groupsMu guards groups, the running subscriptions Groups reports.
	groupsMu sync.Mutex
	groups   map[*subscription]struct{}
}

var (
	_ broker.Publisher  = (*Broker)(nil)
	_ broker.Subscriber = (*Broker)(nil)
)

// Connect checks that the cluster answers and ensures wahook's topics exist
// (EnsureTopics). ctx bounds both, 10s when it has no deadline; errors that
// mean "retry later" wrap broker.ErrUnavailable. Afterwards the clients
// reconnect on their own: Publish fails with ErrUnavailable while no broker
// answers.
func Connect(ctx context.Context, cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, connectTimeout)
		defer cancel()
	}
	b := newBroker(cfg)
	if err := b.ping(ctx); err != nil {
		b.transport.CloseIdleConnections()
		return nil, fmt.Errorf("kafkabroker: connect %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	if err := b.EnsureTopics(ctx); err != nil {
		b.transport.CloseIdleConnections()
		return nil, err
	}
	b.log.Info("kafka connected", zap.Strings("brokers", cfg.Brokers), zap.String("client_id", cfg.ClientID))
	return b, nil
}

func newBroker(cfg Config) *Broker {
	b := &Broker{
		cfg:    cfg,
		log:    cfg.Logger,
		addr:   kafka.TCP(cfg.Brokers...),
		closed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	kafkaLog := kafka.LoggerFunc(func(msg string, args ...any) {
		if ce := b.log.Check(zap.DebugLevel, "kafka-go"); ce != nil {
			ce.Write(zap.String("msg", fmt.Sprintf(msg, args...)))
		}
	})
	// The writer and admin requests go through the transport, readers and
	// the consumer groups through the dialer: both carry TLS and SASL.
	dial := countingDial(cfg.Dial, &b.dialErrors)
	b.transport = &kafka.Transport{
		Dial:        dial,
		DialTimeout: dialTimeout,
		ClientID:    cfg.ClientID,
		TLS:         cfg.TLS,
		SASL:        cfg.SASL,
	}
	b.client = &kafka.Client{Addr: b.addr, Transport: b.transport}
	b.dialer = &kafka.Dialer{
		ClientID:      cfg.ClientID,
		DialFunc:      dial,
		Timeout:       dialTimeout,
		DualStack:     true,
		TLS:           cfg.TLS,
		SASLMechanism: cfg.SASL,
	}
	b.w = &kafka.Writer{
		Addr: b.addr,
		// The Java client's default partitioner for keyed records, so that
		// other producers put a key in the same partition.
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: cfg.BatchTimeout,
		BatchSize:    cfg.BatchSize,
		// kafka-go's default (1 MiB) is below the topics' limit, and the
		// limit itself would let a batch of several records, or one record
		// near it, exceed max.message.bytes once the record batch header is
		// added: the broker then refuses the whole batch, other callers'
		// records with it. Publish refuses larger records before.
		BatchBytes:  int64(cfg.Topics.MaxMessageBytes - recordBatchOverhead),
		Transport:   b.transport,
		Logger:      kafkaLog,
		ErrorLogger: kafkaLog,
	}
	return b
}

// ping asks the cluster for its metadata: the first answer, or the first
// failure to get one, comes back within ctx.
func (b *Broker) ping(ctx context.Context) error {
	if _, err := b.client.Metadata(ctx, &kafka.MetadataRequest{Topics: Topics()}); err != nil {
		return classify(err)
	}
	return nil
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

// enterSubscribe registers a running Subscribe, or reports false once Close
// began.
func (b *Broker) enterSubscribe() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closing {
		return false
	}
	b.subs.Add(1)
	return true
}

func (b *Broker) isClosing() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.closing
}

// Ready reports an error unless a broker answers and every topic of Topics
// exists with a leader for each partition. Errors wrap
// broker.ErrUnavailable, or broker.ErrClosed after Close.
func (b *Broker) Ready(ctx context.Context) error {
	if b.isClosing() {
		return fmt.Errorf("kafkabroker: ready: %w", broker.ErrClosed)
	}
	// ApiVersions is not served from the client's metadata cache: it
	// proves a broker answers now.
	if _, err := b.client.ApiVersions(ctx, &kafka.ApiVersionsRequest{}); err != nil {
		return fmt.Errorf("kafkabroker: ready: %w", classify(err))
	}
	missing, err := b.missingTopics(ctx, Topics())
	if err != nil {
		return fmt.Errorf("kafkabroker: ready: %w", classify(err))
	}
	if len(missing) > 0 {
		return fmt.Errorf("kafkabroker: ready: topics %q missing or without leader: %w", missing, broker.ErrUnavailable)
	}
	return nil
}

// Close makes Publish and Subscribe fail with broker.ErrClosed, waits for the
// Publish calls in flight, flushes and closes the writer, then ends the
// running subscriptions as if their ctx were cancelled (they finish their
// handlers and commit, and return broker.ErrClosed) and waits for them.
// When ctx ends first it returns ctx's error; what is left finishes in the
// background.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	b.closeOnce.Do(func() { go b.finishClose() })
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafkabroker: close: %w", ctx.Err())
	}
}

// finishClose waits for the publishes in flight, closes the writer, ends
// the subscriptions and waits for them.
func (b *Broker) finishClose() {
	defer close(b.done)
	b.inflight.Wait()
	if err := b.w.Close(); err != nil {
		b.log.Warn("closing the kafka writer", zap.Error(err))
	}
	close(b.closed)
	b.subs.Wait()
	b.transport.CloseIdleConnections()
}
