package kafkabroker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"go.uber.org/zap"
)

// Config configures a Broker. The zero value of every field but Brokers is
// usable.
type Config struct {
	// Brokers lists bootstrap brokers as "host:port"; required.
	Brokers []string
	// ClientID is the client id the brokers see, "wahook" when empty.
	ClientID string
	// Topics sizes the topics EnsureTopics creates.
	Topics TopicsConfig
	// BatchTimeout is how long Publish waits for more messages bound for
	// the same partition before it sends a batch, 2ms when zero. Concurrent
	// callers share batches; kafka-go's default (1s) would cost each
	// synchronous Publish a second.
	BatchTimeout time.Duration
	// BatchSize caps the messages of one produce request to a partition,
	// 100 when zero.
	BatchSize int
	// PublishTimeout bounds Publish when ctx has no deadline, 5s when zero.
	PublishTimeout time.Duration
	// Dial, when set, opens every connection to the brokers (through a
	// proxy, or cut by a test); a net.Dialer otherwise. TLS and SASL apply
	// on top of it.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// TLS, when set, encrypts every connection (writer, readers, consumer
	// groups, admin requests) and checks the brokers' certificates.
	TLS *tls.Config
	// SASL, when set, authenticates every connection: sasl/plain or
	// sasl/scram (see Security).
	SASL sasl.Mechanism
	// Subscribe tunes Subscribe.
	Subscribe SubscribeConfig
	// Logger receives Subscribe's reports (handler panics, failed commits,
	// rebalances) and, at debug level, kafka-go's own; nothing is logged
	// when nil.
	Logger *zap.Logger
}

// Defaults of Config.
const (
	DefaultClientID       = "wahook"
	DefaultBatchTimeout   = 2 * time.Millisecond
	DefaultBatchSize      = 100
	DefaultPublishTimeout = 5 * time.Second
)

func (c *Config) setDefaults() {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	c.Topics.setDefaults()
	c.Subscribe.setDefaults()
}

// Validate checks a configuration after defaults are applied.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafkabroker: no brokers")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("kafkabroker: broker %q: %w", b, err)
		}
	}
	switch {
	case c.BatchTimeout < 0:
		return fmt.Errorf("kafkabroker: negative batch timeout %s", c.BatchTimeout)
	case c.BatchSize < 1:
		return fmt.Errorf("kafkabroker: batch size %d, want 1 or more", c.BatchSize)
	case c.PublishTimeout < 0:
		return fmt.Errorf("kafkabroker: negative publish timeout %s", c.PublishTimeout)
	}
	if err := c.Topics.Validate(); err != nil {
		return err
	}
	return c.Subscribe.Validate()
}

// TopicsConfig sizes the topics EnsureTopics creates. Zero values take the
// defaults. Existing topics are left as they are.
type TopicsConfig struct {
	// Partitions per topic, 6 when zero. A key's records stay in one
	// partition, so this bounds how many instances of one group share the
	// work (see Subscribe). Kafka cannot take partitions away, and adding
	// some moves keys to other partitions.
	Partitions int
	// ReplicationFactor per topic, 1 when zero; 3 in a production cluster.
	ReplicationFactor int
	// MinInSyncReplicas is the topics' min.insync.replicas, the broker's
	// default when zero. With ReplicationFactor 3 set it to 2: Publish's
	// acknowledgement from all in-sync replicas then means at least two
	// brokers have each message, and writes fail (ErrUnavailable) rather
	// than land on a lone broker.
	MinInSyncReplicas int
	// MaxMessageBytes is the largest record Publish writes and the
	// topics' max.message.bytes, 5 MiB when zero: above the ingress's
	// 4 MiB body limit plus headers. Kafka's own default (1 MB) would
	// refuse large webhook deliveries.
	MaxMessageBytes int
	// IngressRetention (30 days), DeadLetterRetention (90 days) and
	// DerivedRetention (30 days, the four derived topics) are the topics'
	// retention.ms: how far back a new group can start. -1 keeps records
	// forever.
	IngressRetention    time.Duration
	DeadLetterRetention time.Duration
	DerivedRetention    time.Duration
}

// Defaults of TopicsConfig.
const (
	DefaultPartitions          = 6
	DefaultReplicationFactor   = 1
	DefaultMaxMessageBytes     = 5 << 20
	DefaultIngressRetention    = 30 * 24 * time.Hour
	DefaultDeadLetterRetention = 90 * 24 * time.Hour
	DefaultDerivedRetention    = 30 * 24 * time.Hour
)

func (c *TopicsConfig) setDefaults() {
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.IngressRetention == 0 {
		c.IngressRetention = DefaultIngressRetention
	}
	if c.DeadLetterRetention == 0 {
		c.DeadLetterRetention = DefaultDeadLetterRetention
	}
	if c.DerivedRetention == 0 {
		c.DerivedRetention = DefaultDerivedRetention
	}
}

// Validate checks a configuration after defaults are applied.
func (c TopicsConfig) Validate() error {
	switch {
	case c.Partitions < 1:
		return fmt.Errorf("kafkabroker: topics: partitions %d, want 1 or more", c.Partitions)
	case c.ReplicationFactor < 1:
		return fmt.Errorf("kafkabroker: topics: replication factor %d, want 1 or more", c.ReplicationFactor)
	case c.MaxMessageBytes < 1024:
		return fmt.Errorf("kafkabroker: topics: max message bytes %d, want 1024 or more", c.MaxMessageBytes)
	case c.MinInSyncReplicas < 0 || c.MinInSyncReplicas > c.ReplicationFactor:
		return fmt.Errorf("kafkabroker: topics: min in-sync replicas %d, want 0 to the replication factor %d",
			c.MinInSyncReplicas, c.ReplicationFactor)
	}
	for name, r := range map[string]time.Duration{
		"ingress": c.IngressRetention, "dead-letter": c.DeadLetterRetention, "derived": c.DerivedRetention,
	} {
		if r < time.Millisecond && r != -1 {
			return fmt.Errorf("kafkabroker: topics: %s retention %s, want 1ms or more, or -1", name, r)
		}
	}
	return nil
}

// SubscribeConfig tunes Subscribe. The zero value of every field is usable.
type SubscribeConfig struct {
	// RetryMin and RetryMax bound the pause between two attempts of a
	// record whose handler failed: RetryMin (100ms) doubling up to
	// RetryMax (30s), each with up to half of it taken off at random.
	RetryMin, RetryMax time.Duration
	// SessionTimeout is how long the group coordinator waits without a
	// heartbeat before it gives a silent (crashed, partitioned) member's
	// partitions to the others, 30s when zero: the delay before another
	// instance redelivers a dead instance's records. The broker bounds it
	// (group.min/max.session.timeout.ms, 6s to 30 minutes by default).
	SessionTimeout time.Duration
	// HeartbeatInterval is how often a member tells the coordinator it is
	// alive, and so how soon it learns of a rebalance, 3s when zero; below
	// SessionTimeout.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long the coordinator waits for every member
	// to rejoin during a rebalance, 30s when zero. A member whose handlers
	// are still running then finishes them first (see Subscribe), within
	// half of it.
	RebalanceTimeout time.Duration
	// JoinGroupBackoff is the pause before joining the group again after
	// an error (coordinator unreachable), 2s when zero.
	JoinGroupBackoff time.Duration
	// CommitInterval spaces commits out. When zero, offsets are committed
	// as soon as the previous commit returned, so a commit carries every
	// record finished meanwhile.
	CommitInterval time.Duration
	// MaxPending caps the records fetched from one partition and not yet
	// finished, 256 when zero. A record retried for long holds the commit
	// point of its partition: once MaxPending records wait behind it,
	// fetching that partition pauses until it passes.
	MaxPending int
	// ShutdownGrace is how long the handlers running when Subscribe's ctx
	// ends may take to finish, 30s when zero; their ctx is cancelled then.
	ShutdownGrace time.Duration
	// StallTimeout is how long records may wait on a partition while the
	// group's commit there does not move (neither its offset nor the
	// delivery count of a record retried in place) before Subscribe
	// reports the partition stalled (GroupStatus.Stalled) and leaves and
	// rejoins the group as a new member, so that the coordinator gives the
	// partitions of a member that no longer consumes them to live ones: 2m
	// (or twice RetryMax or CommitInterval, if more) when zero, never when
	// negative. Above RetryMax and CommitInterval;
	// keep it above the longest a handler may run and above
	// SessionTimeout plus RebalanceTimeout, how long a rebalance around a
	// crashed member may take.
	StallTimeout time.Duration
}

// Defaults of SubscribeConfig.
const (
	DefaultRetryMin          = 100 * time.Millisecond
	DefaultRetryMax          = 30 * time.Second
	DefaultSessionTimeout    = 30 * time.Second
	DefaultHeartbeatInterval = 3 * time.Second
	DefaultRebalanceTimeout  = 30 * time.Second
	DefaultJoinGroupBackoff  = 2 * time.Second
	DefaultMaxPending        = 256
	DefaultShutdownGrace     = 30 * time.Second
	DefaultStallTimeout      = 2 * time.Minute
)

func (c *SubscribeConfig) setDefaults() {
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = min(DefaultHeartbeatInterval, c.SessionTimeout/3)
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if c.JoinGroupBackoff == 0 {
		c.JoinGroupBackoff = DefaultJoinGroupBackoff
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = max(DefaultStallTimeout, 2*c.RetryMax, 2*c.CommitInterval)
	}
}

// Validate checks a configuration after defaults are applied.
func (c SubscribeConfig) Validate() error {
	switch {
	case c.RetryMin < 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("kafkabroker: subscribe: retry backoff %s to %s, want 0 <= min <= max", c.RetryMin, c.RetryMax)
	case c.SessionTimeout < time.Millisecond:
		return fmt.Errorf("kafkabroker: subscribe: session timeout %s, want 1ms or more", c.SessionTimeout)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.SessionTimeout:
		return fmt.Errorf("kafkabroker: subscribe: heartbeat interval %s, want above 0 and below the session timeout %s",
			c.HeartbeatInterval, c.SessionTimeout)
	case c.RebalanceTimeout < time.Millisecond:
		return fmt.Errorf("kafkabroker: subscribe: rebalance timeout %s, want 1ms or more", c.RebalanceTimeout)
	case c.JoinGroupBackoff < 0:
		return fmt.Errorf("kafkabroker: subscribe: negative join group backoff %s", c.JoinGroupBackoff)
	case c.CommitInterval < 0:
		return fmt.Errorf("kafkabroker: subscribe: negative commit interval %s", c.CommitInterval)
	case c.MaxPending < 1:
		return fmt.Errorf("kafkabroker: subscribe: max pending %d, want 1 or more", c.MaxPending)
	case c.ShutdownGrace < 0:
		return fmt.Errorf("kafkabroker: subscribe: negative shutdown grace %s", c.ShutdownGrace)
	case c.StallTimeout >= 0 && (c.StallTimeout <= c.RetryMax || c.StallTimeout <= c.CommitInterval):
		return fmt.Errorf("kafkabroker: subscribe: stall timeout %s, want above the retry backoff max %s and the commit interval %s, or negative",
			c.StallTimeout, c.RetryMax, c.CommitInterval)
	}
	return nil
}

// revokeGrace is how long the handlers running when a rebalance takes the
// partitions away may take to finish: half of the rebalance timeout at
// most, so that this member rejoins before the coordinator gives up on it.
func (c SubscribeConfig) revokeGrace() time.Duration {
	return min(c.ShutdownGrace, c.RebalanceTimeout/2)
}

// Security is the TLS and SASL configuration of the connections to Kafka in
// the form operators give it (WAHOOK_KAFKA_TLS*, WAHOOK_KAFKA_SASL_*). The
// zero value is plaintext without authentication.
type Security struct {
	// TLS turns TLS on with the system's CAs; setting CA, Cert or Key
	// turns it on as well.
	TLS bool
	// CA is a PEM file of the CAs the brokers' certificates must chain to,
	// instead of the system's.
	CA string
	// Cert and Key are the client certificate and key (PEM), for brokers
	// that authenticate clients by certificate (ssl.client.auth).
	Cert, Key string
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty means no
	// SASL.
	Mechanism string
	// User and Password are the SASL credentials.
	User, Password string
}

// RegisterFlags adds the settings to fs as -kafka-tls* and -kafka-sasl-*
// (WAHOOK_KAFKA_TLS*, WAHOOK_KAFKA_SASL_* through the environment).
func (s *Security) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&s.TLS, "kafka-tls", false, "TLS to Kafka with the system's CAs (on as well when a -kafka-tls-* file is set)")
	fs.StringVar(&s.CA, "kafka-tls-ca", "", "PEM file of the CAs the Kafka brokers' certificates must chain to")
	fs.StringVar(&s.Cert, "kafka-tls-cert", "", "client certificate for Kafka (PEM)")
	fs.StringVar(&s.Key, "kafka-tls-key", "", "client key for Kafka (PEM)")
	fs.StringVar(&s.Mechanism, "kafka-sasl-mechanism", "", "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: none)")
	fs.StringVar(&s.User, "kafka-sasl-user", "", "Kafka SASL user")
	fs.StringVar(&s.Password, "kafka-sasl-password", "", "Kafka SASL password")
}

// SASL mechanisms Security accepts.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// TLSConfig returns the TLS configuration, nil when TLS is off. Files are
// read now, so that a missing one fails at start.
func (s Security) TLSConfig() (*tls.Config, error) {
	if !s.TLS && s.CA == "" && s.Cert == "" && s.Key == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CA != "" {
		pem, err := os.ReadFile(s.CA)
		if err != nil {
			return nil, fmt.Errorf("kafkabroker: TLS CA: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafkabroker: TLS CA %s: no PEM certificate", s.CA)
		}
	}
	switch {
	case (s.Cert == "") != (s.Key == ""):
		return nil, errors.New("kafkabroker: TLS certificate and key go together")
	case s.Cert != "":
		cert, err := tls.LoadX509KeyPair(s.Cert, s.Key)
		if err != nil {
			return nil, fmt.Errorf("kafkabroker: TLS client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Dialer returns a kafka-go dialer with the TLS and SASL settings, for
// clients outside a Broker: readers of partitions, admin lookups.
func (s Security) Dialer(clientID string) (*kafka.Dialer, error) {
	tlsCfg, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	mech, err := s.SASLMechanism()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{ClientID: clientID, Timeout: 10 * time.Second, DualStack: true, TLS: tlsCfg, SASLMechanism: mech}, nil
}

// Transport returns a kafka-go transport with the TLS and SASL settings,
// for a kafka.Client outside a Broker: its connections are pooled.
func (s Security) Transport(clientID string) (*kafka.Transport, error) {
	tlsCfg, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	mech, err := s.SASLMechanism()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{DialTimeout: 10 * time.Second, ClientID: clientID, TLS: tlsCfg, SASL: mech}, nil
}

// Config returns a Broker's Config with the TLS and SASL settings.
func (s Security) Config(brokers []string, clientID string) (Config, error) {
	tlsCfg, err := s.TLSConfig()
	if err != nil {
		return Config{}, err
	}
	mech, err := s.SASLMechanism()
	if err != nil {
		return Config{}, err
	}
	return Config{Brokers: brokers, ClientID: clientID, TLS: tlsCfg, SASL: mech}, nil
}

// SASLMechanism returns kafka-go's mechanism, nil when SASL is off.
func (s Security) SASLMechanism() (sasl.Mechanism, error) {
	if s.Mechanism == "" {
		if s.User != "" || s.Password != "" {
			return nil, errors.New("kafkabroker: SASL user or password without a mechanism")
		}
		return nil, nil
	}
	if s.User == "" || s.Password == "" {
		return nil, fmt.Errorf("kafkabroker: SASL %s needs a user and a password", s.Mechanism)
	}
	switch strings.ToUpper(s.Mechanism) {
	case SASLPlain:
		return plain.Mechanism{Username: s.User, Password: s.Password}, nil
	case SASLScramSHA256:
		m, err := scram.Mechanism(scram.SHA256, s.User, s.Password)
		if err != nil {
			return nil, fmt.Errorf("kafkabroker: SASL %s: %w", s.Mechanism, err)
		}
		return m, nil
	case SASLScramSHA512:
		m, err := scram.Mechanism(scram.SHA512, s.User, s.Password)
		if err != nil {
			return nil, fmt.Errorf("kafkabroker: SASL %s: %w", s.Mechanism, err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("kafkabroker: SASL mechanism %q: want %s, %s or %s", s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
}
