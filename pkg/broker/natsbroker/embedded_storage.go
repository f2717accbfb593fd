package natsbroker

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
)

// Defaults of EmbeddedStorageConfig.
const (
	DefaultMaxStore      = 8 << 30
	DefaultMaxMemory     = 1 << 30
	DefaultCheckInterval = 10 * time.Second
	DefaultMinFreeDisk   = 256 << 20
	// maxRestartBackoff bounds the pause between two JetStream restarts
	// that did not heal it.
	maxRestartBackoff = 5 * time.Minute
)

// EmbeddedStorageConfig limits the embedded server's storage and says how
// it recovers when the disk was full. The zero value takes the defaults.
type EmbeddedStorageConfig struct {
	// MaxStore caps the file store (nats-server's JetStreamMaxStore),
	// DefaultMaxStore (8 GiB) when zero. Every stream and bucket with a byte
	// limit reserves it here at creation, so the limits must add up to less;
	// at the cap, writes to streams without a limit fail (ErrUnavailable).
	// nats-server's own default, 75% of the disk space free at start, moves
	// with every start.
	MaxStore int64
	// MaxMemory caps memory-backed streams (JetStreamMaxMemory),
	// DefaultMaxMemory (1 GiB) when zero. wahook's own streams are on file.
	MaxMemory int64
	// CheckInterval is how often JetStream's health is checked and, when
	// it is broken (switched off, or a stream stuck on a write error after
	// the disk filled up), JetStream restarted: DefaultCheckInterval (10s)
	// when zero, never when negative.
	CheckInterval time.Duration
	// MinFreeDisk is the free space the store's file system needs for a
	// restart to be tried and for Ready to pass, DefaultMinFreeDisk
	// (256 MiB) when zero, not checked when negative.
	MinFreeDisk int64
}

func (c *EmbeddedStorageConfig) setDefaults() {
	if c.MaxStore == 0 {
		c.MaxStore = DefaultMaxStore
	}
	if c.MaxMemory == 0 {
		c.MaxMemory = DefaultMaxMemory
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.MinFreeDisk == 0 {
		c.MinFreeDisk = DefaultMinFreeDisk
	}
}

func (c EmbeddedStorageConfig) validate() error {
	if c.MaxStore < 1<<20 {
		return fmt.Errorf("natsbroker: embedded server: max store %d, want at least 1 MiB", c.MaxStore)
	}
	if c.MaxMemory < 1<<20 {
		return fmt.Errorf("natsbroker: embedded server: max memory %d, want at least 1 MiB", c.MaxMemory)
	}
	return nil
}

// applyStorage sets the server options that limit the store.
func (c EmbeddedStorageConfig) applyStorage(opts *server.Options) {
	opts.JetStreamMaxStore = c.MaxStore
	opts.JetStreamMaxMemory = c.MaxMemory
}

// watchdog restarts the embedded server's JetStream when it is broken.
//
// nats-server switches JetStream off on a permission error while writing
// and, when clustered, on a full disk; a standalone server instead keeps a
// stream's first write error (ENOSPC, EFBIG, EIO) and fails every later
// write to that stream, answering nothing. Neither heals when space comes
// back: only a restart of JetStream, which reloads the streams from disk,
// does. The watchdog does it in place (ShutdownJetStream then
// EnableJetStream) once the disk has MinFreeDisk free, backing off while
// restarts do not help. The process's own connection survives it.
type watchdog struct {
	srv      *server.Server
	cfg      EmbeddedStorageConfig
	storeDir string
	// jsCfg is JetStream's configuration as the server started it, with
	// the store directory as given to the server (EnableJetStream appends
	// "jetstream" itself).
	jsCfg server.JetStreamConfig
	log   *zap.Logger
	// diskFree reports the free bytes of the store's file system; tests
	// replace it.
	diskFree func(dir string) (uint64, bool)

	restarts atomic.Int64
	mu       sync.Mutex
	problem  string
	// waiting is set while a restart waits for disk space; only check,
	// from one goroutine, uses it.
	waiting bool

	stop chan struct{}
	done chan struct{}
}

func newWatchdog(srv *server.Server, cfg EmbeddedStorageConfig, storeDir string, log *zap.Logger) (*watchdog, error) {
	jsCfg := srv.JetStreamConfig()
	if jsCfg == nil {
		return nil, errors.New("natsbroker: embedded server: JetStream is not running")
	}
	w := &watchdog{
		srv: srv, cfg: cfg, storeDir: storeDir, jsCfg: *jsCfg, log: log, diskFree: diskAvailable,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	w.jsCfg.StoreDir = storeDir
	if free, ok := w.diskFree(storeDir); ok && free < uint64(cfg.MaxStore) {
		log.Warn("the store limit is above the disk's free space: a full disk, not the limit, may stop writes",
			zap.Int64("max_store", cfg.MaxStore), zap.Uint64("disk_free", free), zap.String("store_dir", storeDir))
	}
	return w, nil
}

func (w *watchdog) start() {
	if w.cfg.CheckInterval < 0 {
		close(w.done)
		return
	}
	go w.run()
}

func (w *watchdog) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *watchdog) run() {
	defer close(w.done)
	wait := w.cfg.CheckInterval
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		switch w.check() {
		case checkHealthy, checkWaiting:
			wait = w.cfg.CheckInterval
		case checkRestarted:
			// Restarted: look again soon; if it is still broken, the next
			// restart waits twice as long.
			t.Reset(wait)
			wait = min(wait*2, maxRestartBackoff)
			continue
		}
		t.Reset(wait)
	}
}

type checkResult int

const (
	checkHealthy checkResult = iota
	checkWaiting
	checkRestarted
)

// check looks at JetStream's health once and restarts it when it is
// broken and the disk has room.
func (w *watchdog) check() checkResult {
	problem := jetStreamProblem(w.srv)
	prev := w.setProblem(problem)
	if problem == "" {
		if prev != "" {
			w.log.Info("JetStream healthy again", zap.String("was", prev))
		}
		return checkHealthy
	}
	if prev == "" {
		w.log.Error("JetStream broken: it will be restarted once the disk has room", zap.String("problem", problem))
	}
	// The server switches JetStream off in the background; enabling it
	// before that has finished would be undone by it.
	if !w.srv.JetStreamEnabled() && w.srv.JetStreamConfig() != nil {
		return checkWaiting
	}
	if free, ok := w.diskFree(w.storeDir); ok && w.cfg.MinFreeDisk >= 0 && free < uint64(w.cfg.MinFreeDisk) {
		if !w.waiting {
			w.log.Warn("JetStream broken, waiting for disk space before restarting it", zap.String("problem", problem),
				zap.Uint64("disk_free", free), zap.Int64("min_free_disk", w.cfg.MinFreeDisk))
		}
		w.waiting = true
		return checkWaiting
	}
	w.waiting = false
	w.restart(problem)
	return checkRestarted
}

func (w *watchdog) restart(problem string) {
	w.log.Warn("restarting JetStream", zap.String("problem", problem))
	if w.srv.JetStreamEnabled() {
		if err := w.srv.ShutdownJetStream(); err != nil {
			w.log.Error("JetStream shutdown failed", zap.Error(err))
			return
		}
	}
	cfg := w.jsCfg
	if err := w.srv.EnableJetStream(&cfg); err != nil {
		w.log.Error("JetStream restart failed", zap.Error(err))
		return
	}
	w.restarts.Add(1)
	w.log.Info("JetStream restarted")
}

func (w *watchdog) setProblem(p string) (prev string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, w.problem = w.problem, p
	return prev
}

// jetStreamProblem describes what breaks JetStream on srv, or returns ""
// when it can store: it is enabled and no stream is stuck on a write error.
// Other health findings (a stream being created, say) are not its concern.
func jetStreamProblem(srv *server.Server) string {
	if !srv.JetStreamEnabled() {
		return "JetStream is switched off"
	}
	h := srv.Healthz(&server.HealthzOptions{Details: true})
	for _, e := range h.Errors {
		if strings.Contains(e.Error, "write error") {
			return e.Error
		}
	}
	return ""
}

// EmbeddedStorage is the embedded server's store use.
type EmbeddedStorage struct {
	// Store and Memory are the bytes used, Reserved* those reserved by
	// streams with limits, Max* the caps.
	Store, ReservedStore, MaxStore    int64
	Memory, ReservedMemory, MaxMemory int64
	// DiskFree is the store file system's free space, -1 when unknown.
	DiskFree int64
	// Restarts counts JetStream restarts by the watchdog.
	Restarts int64
	// Problem is why JetStream cannot store, "" when it can.
	Problem string
}

// Storage reports the embedded server's store use.
func (e *Embedded) Storage() (EmbeddedStorage, error) {
	st := EmbeddedStorage{DiskFree: -1, Restarts: e.watch.restarts.Load(), Problem: jetStreamProblem(e.srv)}
	if free, ok := e.watch.diskFree(e.watch.storeDir); ok {
		st.DiskFree = int64(min(free, uint64(1<<63-1)))
	}
	if st.Problem != "" {
		return st, nil
	}
	info, err := e.srv.Jsz(&server.JSzOptions{})
	if err != nil {
		return st, fmt.Errorf("natsbroker: embedded server storage: %w", err)
	}
	st.Store, st.ReservedStore, st.MaxStore = int64(info.Store), int64(info.ReservedStore), info.Config.MaxStore
	st.Memory, st.ReservedMemory, st.MaxMemory = int64(info.Memory), int64(info.ReservedMemory), info.Config.MaxMemory
	return st, nil
}

// storageReady reports ErrUnavailable when JetStream cannot store, the
// store is over highWater of its cap, or the disk is nearly full.
func (e *Embedded) storageReady(highWater float64) error {
	st, err := e.Storage()
	if err != nil {
		return fmt.Errorf("%w: %w", broker.ErrUnavailable, err)
	}
	switch {
	case st.Problem != "":
		return fmt.Errorf("%w: embedded JetStream: %s", broker.ErrUnavailable, st.Problem)
	case st.MaxStore > 0 && float64(st.Store) >= highWater*float64(st.MaxStore):
		return fmt.Errorf("%w: embedded JetStream store %d of %d bytes used", broker.ErrUnavailable, st.Store, st.MaxStore)
	case e.watch.cfg.MinFreeDisk >= 0 && st.DiskFree >= 0 && st.DiskFree < e.watch.cfg.MinFreeDisk:
		return fmt.Errorf("%w: embedded JetStream disk has %d bytes free, below %d", broker.ErrUnavailable, st.DiskFree, e.watch.cfg.MinFreeDisk)
	}
	return nil
}
