package kafkabroker_test

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
)

// testPartitions is how many partitions the tests' topics have.
const testPartitions = 4

// fastGroups makes groups notice joins and deaths quickly, while leaving a
// loaded machine room for heartbeats.
var fastGroups = kafkabroker.SubscribeConfig{
	SessionTimeout:    3 * time.Second,
	HeartbeatInterval: 300 * time.Millisecond,
	RebalanceTimeout:  10 * time.Second,
	JoinGroupBackoff:  300 * time.Millisecond,
}

// startCluster starts an in-process Kafka (kfake) with one broker, closed
// when the test ends.
func startCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(testPartitions),
		kfake.GroupMinSessionTimeout(500*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// testLogger logs to stderr when KAFKABROKER_TEST_LOG is set (to debug a
// failing test), and nowhere otherwise.
func testLogger(t *testing.T) *zap.Logger {
	t.Helper()
	if os.Getenv("KAFKABROKER_TEST_LOG") == "" {
		return zap.NewNop()
	}
	log, err := zap.NewDevelopment()
	if err != nil {
		t.Fatalf("zap.NewDevelopment: %v", err)
	}
	return log.With(zap.String("test", t.Name()))
}

// connect connects to c with cfg (Brokers, partitions and logger filled in)
// and closes the Broker when the test ends.
func connect(t *testing.T, c *kfake.Cluster, cfg kafkabroker.Config) *kafkabroker.Broker {
	t.Helper()
	cfg.Brokers = c.ListenAddrs()
	if cfg.Topics.Partitions == 0 {
		cfg.Topics.Partitions = testPartitions
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := kafkabroker.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("Connect(%v): %v", cfg.Brokers, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// cutter dials like net.Dialer until kill, which closes every connection
// it opened and refuses new ones: what the cluster sees of a crashed
// process.
type cutter struct {
	mu    sync.Mutex
	dead  bool
	conns []net.Conn
}

var errKilled = errors.New("test: process killed")

func (c *cutter) dial(ctx context.Context, network, address string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil, errKilled
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	c.conns = append(c.conns, conn)
	return conn, nil
}

func (c *cutter) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = true
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// running is a Subscribe call in progress.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// subscribe runs sub.Subscribe until stop or the end of the test.
func subscribe(t *testing.T, sub broker.Subscriber, s broker.Subscription, h broker.Handler) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = sub.Subscribe(ctx, s, h)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Errorf("Subscribe(%s) still running 30s after the test ended", s.Group)
		}
	})
	return r
}

// stop cancels Subscribe and returns its error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(30 * time.Second):
		t.Fatalf("Subscribe did not return within 30s of its ctx being cancelled")
		return nil
	}
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
