package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultEmbeddedAddr is where the embedded server accepts clients unless
// EmbeddedConfig.Addr says otherwise (WAHOOK_NATS_EMBEDDED_ADDR).
const DefaultEmbeddedAddr = "127.0.0.1:4222"

// embeddedMaxPayload is the largest message the embedded server takes.
const embeddedMaxPayload = 8 << 20

// EmbeddedConfig configures a nats-server with JetStream run inside the
// process. The zero value of every field but StoreDir is usable.
type EmbeddedConfig struct {
	// Addr is the host:port clients connect to over TCP, DefaultEmbeddedAddr
	// when empty. Port -1 picks a free port (tests). Every client must log
	// in (see User and Subscribers); traffic is not encrypted: keep it on
	// loopback or a private network.
	Addr string
	// StoreDir is the JetStream file storage directory. Required. Streams
	// survive a restart of the process that reuses the directory.
	StoreDir string
	// SyncAlways fsyncs every write before the PubAck, so an acknowledged
	// message survives power loss, at the cost of a disk flush per
	// acknowledgement (6 to 15 times fewer on the test machine).
	// When false (the default) writes reach the OS at once, so they survive a
	// crash of the process, but are fsynced on nats-server's sync interval
	// (2 minutes): a power loss or kernel crash can lose acknowledged
	// messages written since the last sync.
	SyncAlways bool
	// ServerName names the server in logs and monitoring, "wahook" when empty.
	ServerName string
	// Logger receives nats-server's logs; nothing is logged when nil.
	Logger *zap.Logger

	// User and Password are the service user, the one with every right,
	// which Connect logs in as (Embedded.ServiceAuth). When both are empty
	// the user is DefaultServiceUser with a random password, generated at
	// first start and kept in StoreDir (ServiceUserFile, mode 0600).
	User, Password string
	// Subscribers are read-only users, each in an account of its own
	// (access.go). Clients without credentials are refused.
	Subscribers []Subscriber
	// SubscriberConsumers are the consumers subscribers may use, each of
	// a subscriber in Subscribers. The server lets them use these; the
	// broker creates them (Broker.EnsureSubscriberConsumers).
	SubscriberConsumers []SubscriberConsumer
	// Storage limits the store and sets how JetStream recovers after the
	// disk was full (embedded_storage.go).
	Storage EmbeddedStorageConfig
}

func (c *EmbeddedConfig) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultEmbeddedAddr
	}
	if c.ServerName == "" {
		c.ServerName = "wahook"
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	c.Storage.setDefaults()
}

// Validate reports whether the configuration can start a server.
func (c EmbeddedConfig) Validate() error {
	if c.StoreDir == "" {
		return errors.New("natsbroker: embedded server: StoreDir is empty")
	}
	if _, _, err := splitAddr(c.Addr); err != nil {
		return fmt.Errorf("natsbroker: embedded server: %w", err)
	}
	return c.Storage.validate()
}

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("addr %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < server.RANDOM_PORT || port > 65535 {
		return "", 0, fmt.Errorf("addr %q: invalid port", addr)
	}
	return host, port, nil
}

// Embedded is a running in-process nats-server with JetStream.
type Embedded struct {
	srv     *server.Server
	url     string
	service Auth
	// watch restarts JetStream when a full disk broke it.
	watch *watchdog
}

// StartEmbedded starts a nats-server with JetStream file storage and returns
// once it accepts connections and JetStream is enabled, or fails when ctx
// ends first.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, port, _ := splitAddr(cfg.Addr)
	opts := &server.Options{
		ServerName: cfg.ServerName,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: cfg.SyncAlways,
		// Above the ingress's default body limit (4 MiB), so any delivery
		// it accepts fits one message; nats-server's own default is 1 MiB.
		MaxPayload: embeddedMaxPayload,
		// The process owns its signals; the server must not exit on SIGTERM.
		NoSigs: true,
	}
	service, err := configureAccess(opts, cfg)
	if err != nil {
		return nil, err
	}
	if err := moveGlobalStore(cfg.StoreDir, cfg.Logger); err != nil {
		return nil, err
	}
	cfg.Storage.applyStorage(opts)
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: embedded server: %w", err)
	}
	log := &serverLogger{log: cfg.Logger.With(zap.String("component", "nats-server"))}
	srv.SetLoggerV2(log, cfg.Logger.Core().Enabled(zapcore.DebugLevel), false, false)

	// Start recovers the JetStream store synchronously, which can take a
	// while on a large store; run it aside so ctx bounds the wait.
	started := make(chan struct{})
	go func() {
		defer close(started)
		srv.Start()
	}()
	select {
	case <-started:
	case <-ctx.Done():
		srv.Shutdown()
		return nil, fmt.Errorf("natsbroker: embedded server start: %w", ctx.Err())
	}
	// nats-server reports fatal start errors (port in use, store not
	// writable) through the logger and keeps going; we refuse to.
	if msg := log.fatal(); msg != "" {
		srv.Shutdown()
		return nil, fmt.Errorf("natsbroker: embedded server start: %s", msg)
	}
	for !srv.ReadyForConnections(25 * time.Millisecond) {
		if err := ctx.Err(); err != nil {
			srv.Shutdown()
			return nil, fmt.Errorf("natsbroker: embedded server not ready: %w", err)
		}
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, errors.New("natsbroker: embedded server started without JetStream")
	}
	tcp, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		srv.Shutdown()
		return nil, fmt.Errorf("natsbroker: embedded server listens on %v, want TCP", srv.Addr())
	}
	watch, err := newWatchdog(srv, cfg.Storage, cfg.StoreDir, cfg.Logger.With(zap.String("component", "jetstream-watchdog")))
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	watch.start()
	return &Embedded{srv: srv, url: "nats://" + net.JoinHostPort(dialHost(host), strconv.Itoa(tcp.Port)), service: service, watch: watch}, nil
}

// dialHost is the host clients dial for a listen host. It follows the
// configured host rather than the listener's address: Go reports a 0.0.0.0
// listener as [::] on dual-stack machines.
func dialHost(host string) string {
	ip := net.ParseIP(host)
	switch {
	case host == "": // nats-server listens on every interface
		return "127.0.0.1"
	case ip == nil: // a host name
		return host
	case ip.IsUnspecified() && ip.To4() != nil:
		return "127.0.0.1"
	case ip.IsUnspecified():
		return "::1"
	}
	return ip.String()
}

// ClientURL is the URL other processes connect to, e.g. nats://127.0.0.1:4222
// (with the real port when Addr asked for a random one).
func (e *Embedded) ClientURL() string { return e.url }

// Server is the running nats-server.
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server, closing its client connections, and waits until
// the JetStream store is flushed and closed or ctx ends.
func (e *Embedded) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.watch.halt()
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsbroker: embedded server shutdown: %w", ctx.Err())
	}
}

// serverLogger routes nats-server logs to zap and remembers the first fatal
// message, which nats-server logs instead of stopping when embedded.
type serverLogger struct {
	log *zap.Logger

	mu       sync.Mutex
	fatalMsg string
}

func (l *serverLogger) logf(lvl zapcore.Level, format string, v []any) {
	if ce := l.log.Check(lvl, ""); ce != nil {
		ce.Message = fmt.Sprintf(format, v...)
		ce.Write()
	}
}

func (l *serverLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalMsg
}

func (l *serverLogger) Noticef(format string, v ...any) { l.logf(zapcore.InfoLevel, format, v) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.logf(zapcore.WarnLevel, format, v) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.logf(zapcore.ErrorLevel, format, v) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.logf(zapcore.DebugLevel, format, v) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.logf(zapcore.DebugLevel, format, v) }

// Fatalf logs at error level: zap's fatal level would exit the process, and
// StartEmbedded turns the message into an error instead.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.fatalMsg == "" {
		l.fatalMsg = msg
	}
	l.mu.Unlock()
	l.log.Error(msg, zap.Bool("fatal", true))
}

// moveGlobalStore moves streams that an embedded server without accounts
// kept (nats-server's global account, $G) to ServiceAccount's store, where
// the server now looks for them. The server is not running yet, so a
// rename of the directory moves them whole.
func moveGlobalStore(storeDir string, log *zap.Logger) error {
	js := filepath.Join(storeDir, server.JetStreamStoreDir)
	old, now := filepath.Join(js, server.DEFAULT_GLOBAL_ACCOUNT), filepath.Join(js, ServiceAccount)
	if _, err := os.Stat(old); errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("natsbroker: embedded server: %w", err)
	}
	if _, err := os.Stat(now); err == nil {
		log.Warn("the store holds streams of the global account beside wahook's account: left as they are, the server ignores them",
			zap.String("global", old), zap.String("wahook", now))
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("natsbroker: embedded server: %w", err)
	}
	if err := os.Rename(old, now); err != nil {
		return fmt.Errorf("natsbroker: embedded server: move the streams to account %s: %w", ServiceAccount, err)
	}
	log.Info("streams moved from the global account to wahook's account", zap.String("from", old), zap.String("to", now))
	return nil
}
