package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker"
)

// JetStream API error codes of a full store (nats-server's
// jetstream_errors_generated.go; nats.go names none of them).
const (
	errCodeAccountResourcesExceeded = 10002 // 400 "resource limits exceeded for account"
	errCodeInsufficientResources    = 10023 // 503: the server's store limit is reached
	errCodeMemoryResourcesExceeded  = 10028 // 500: no room to reserve a memory stream's limit
	errCodeStorageResourcesExceeded = 10047 // 500: no room to reserve a file stream's limit
	errCodeStreamStoreFailed        = 10077 // 503 "{err}": the store refused the message
)

// DefaultStorageHighWater is the share of a limit above which Ready reports
// the storage as nearly full.
const DefaultStorageHighWater = 0.95

// readyCallTimeout bounds each JetStream request of Ready: a server whose
// JetStream is switched off may not answer at all.
const readyCallTimeout = 2 * time.Second

// storeFull tells the errors of a full store: a full stream with
// DiscardNew ("maximum bytes exceeded", "maximum messages exceeded"), the
// account's or the server's limit reached. Space comes back when messages
// age out, a stream is purged or a limit is raised, so they are
// ErrUnavailable: the ingress answers 503 and the provider retries.
func storeFull(e *jetstream.APIError) bool {
	switch e.ErrorCode {
	case errCodeStreamStoreFailed:
		return strings.HasPrefix(e.Description, "maximum bytes exceeded") ||
			strings.HasPrefix(e.Description, "maximum messages exceeded")
	case errCodeAccountResourcesExceeded, errCodeInsufficientResources,
		errCodeStorageResourcesExceeded, errCodeMemoryResourcesExceeded:
		return true
	}
	return false
}

// StorageHighWater is the share of a limit above which Ready reports the
// storage full.
func (b *Broker) StorageHighWater() float64 { return b.cfg.StorageHighWater }

// Classify marks err, from a request on this broker's JetStream connection
// (a state bucket's write, say), broker.ErrUnavailable when retrying later
// can succeed, as Publish does: the server unreachable or not answering,
// JetStream starting, a full stream or store.
func Classify(err error) error { return classify(err) }

// storageReady reports ErrUnavailable unless JetStream answers, the raw
// stream is below the high-water mark of its limits, the account's store is
// below its limit's, every stream exists and, with an embedded server, its
// store and disk have room.
func (b *Broker) storageReady(ctx context.Context) error {
	hw := b.cfg.StorageHighWater
	if e := b.cfg.Embedded; e != nil {
		if err := e.storageReady(hw); err != nil {
			return fmt.Errorf("natsbroker: ready: %w", err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, readyCallTimeout)
	defer cancel()
	ai, err := b.js.AccountInfo(cctx)
	if err != nil {
		return fmt.Errorf("natsbroker: ready: jetstream: %w", classify(err))
	}
	if err := accountFull(ai, hw); err != nil {
		return fmt.Errorf("natsbroker: ready: %w", err)
	}
	for _, name := range streamNames {
		cctx, cancel := context.WithTimeout(ctx, readyCallTimeout)
		s, err := b.js.Stream(cctx, name)
		cancel()
		if err != nil {
			return fmt.Errorf("natsbroker: ready: stream %s: %w", name, classify(err))
		}
		if name != IngressStream {
			continue
		}
		if err := streamFull(s.CachedInfo(), hw); err != nil {
			return fmt.Errorf("natsbroker: ready: %w", err)
		}
	}
	return nil
}

func accountFull(ai *jetstream.AccountInfo, hw float64) error {
	check := func(tier string, t jetstream.Tier) error {
		if t.Limits.MaxStore > 0 && float64(t.Store) >= hw*float64(t.Limits.MaxStore) {
			return fmt.Errorf("%w: account store%s: %d of %d bytes used", broker.ErrUnavailable, tier, t.Store, t.Limits.MaxStore)
		}
		return nil
	}
	if err := check("", ai.Tier); err != nil {
		return err
	}
	for name, t := range ai.Tiers {
		if err := check(" (tier "+name+")", t); err != nil {
			return err
		}
	}
	return nil
}

func streamFull(si *jetstream.StreamInfo, hw float64) error {
	c, st := si.Config, si.State
	if c.MaxBytes > 0 && float64(st.Bytes) >= hw*float64(c.MaxBytes) {
		return fmt.Errorf("%w: stream %s holds %d of %d bytes", broker.ErrUnavailable, c.Name, st.Bytes, c.MaxBytes)
	}
	if c.MaxMsgs > 0 && float64(st.Msgs) >= hw*float64(c.MaxMsgs) {
		return fmt.Errorf("%w: stream %s holds %d of %d messages", broker.ErrUnavailable, c.Name, st.Msgs, c.MaxMsgs)
	}
	return nil
}

// Storage metrics are collected on scrape, at most once per
// collectInterval (scrapes in between get the last figures), each request
// bounded by collectTimeout.
const (
	collectInterval = 2 * time.Second
	collectTimeout  = 3 * time.Second
)

var (
	descJetStreamUp   = prometheus.NewDesc("wahook_nats_jetstream_up", "1 when JetStream answered the last storage collection, 0 otherwise.", nil, nil)
	descStreamBytes   = prometheus.NewDesc("wahook_nats_stream_bytes", "Bytes stored in the stream.", []string{"stream"}, nil)
	descStreamMsgs    = prometheus.NewDesc("wahook_nats_stream_messages", "Messages stored in the stream.", []string{"stream"}, nil)
	descStreamMaxB    = prometheus.NewDesc("wahook_nats_stream_max_bytes", "The stream's byte limit (absent when unlimited).", []string{"stream"}, nil)
	descStreamMaxM    = prometheus.NewDesc("wahook_nats_stream_max_messages", "The stream's message limit (absent when unlimited).", []string{"stream"}, nil)
	descAccStore      = prometheus.NewDesc("wahook_nats_account_store_bytes", "File store bytes used by the account.", nil, nil)
	descAccStoreRes   = prometheus.NewDesc("wahook_nats_account_store_reserved_bytes", "File store bytes reserved by the account's streams with limits.", nil, nil)
	descAccStoreLimit = prometheus.NewDesc("wahook_nats_account_store_limit_bytes", "The account's file store limit (absent when unlimited).", nil, nil)
	descAccMemory     = prometheus.NewDesc("wahook_nats_account_memory_bytes", "Memory store bytes used by the account.", nil, nil)
	descSrvStore      = prometheus.NewDesc("wahook_nats_server_store_bytes", "Embedded server: file store bytes used.", nil, nil)
	descSrvStoreRes   = prometheus.NewDesc("wahook_nats_server_store_reserved_bytes", "Embedded server: file store bytes reserved by streams with limits.", nil, nil)
	descSrvStoreLimit = prometheus.NewDesc("wahook_nats_server_store_limit_bytes", "Embedded server: file store limit.", nil, nil)
	descSrvMemory     = prometheus.NewDesc("wahook_nats_server_memory_bytes", "Embedded server: memory store bytes used.", nil, nil)
	descSrvMemLimit   = prometheus.NewDesc("wahook_nats_server_memory_limit_bytes", "Embedded server: memory store limit.", nil, nil)
	descSrvDiskFree   = prometheus.NewDesc("wahook_nats_server_disk_free_bytes", "Embedded server: free space of the store's file system.", nil, nil)
	descSrvHealthy    = prometheus.NewDesc("wahook_nats_server_jetstream_healthy", "Embedded server: 1 when JetStream can store, 0 when it is switched off or a stream is stuck on a write error.", nil, nil)
	descSrvRestarts   = prometheus.NewDesc("wahook_nats_server_jetstream_restarts_total", "Embedded server: JetStream restarts after it broke (full disk).", nil, nil)
)

// StorageCollector returns a Prometheus collector of the storage use: the
// streams' (wahook's and extraStreams, such as the state buckets' KV_
// streams), the account's and, with an embedded server, the server's and
// its disk's. It asks JetStream on scrape, at most once every 2 seconds
// whatever the number of scrapers, so its cost is bounded.
func (b *Broker) StorageCollector(extraStreams ...string) prometheus.Collector {
	names := append(streamNames[:len(streamNames):len(streamNames)], extraStreams...)
	return &storageCollector{b: b, streams: names}
}

type storageCollector struct {
	b       *Broker
	streams []string

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

func (c *storageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range [...]*prometheus.Desc{descJetStreamUp, descStreamBytes, descStreamMsgs, descStreamMaxB, descStreamMaxM,
		descAccStore, descAccStoreRes, descAccStoreLimit, descAccMemory} {
		ch <- d
	}
	if c.b.cfg.Embedded != nil {
		for _, d := range [...]*prometheus.Desc{descSrvStore, descSrvStoreRes, descSrvStoreLimit, descSrvMemory, descSrvMemLimit,
			descSrvDiskFree, descSrvHealthy, descSrvRestarts} {
			ch <- d
		}
	}
}

func (c *storageCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if time.Since(c.at) >= collectInterval {
		c.metrics = c.collect()
		c.at = time.Now()
	}
	metrics := c.metrics
	c.mu.Unlock()
	for _, m := range metrics {
		ch <- m
	}
}

func (c *storageCollector) collect() []prometheus.Metric {
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	if e := c.b.cfg.Embedded; e != nil {
		st, err := e.Storage()
		healthy := 0.0
		if st.Problem == "" && err == nil {
			healthy = 1
			gauge(descSrvStore, float64(st.Store))
			gauge(descSrvStoreRes, float64(st.ReservedStore))
			gauge(descSrvStoreLimit, float64(st.MaxStore))
			gauge(descSrvMemory, float64(st.Memory))
			gauge(descSrvMemLimit, float64(st.MaxMemory))
		}
		gauge(descSrvHealthy, healthy)
		if st.DiskFree >= 0 {
			gauge(descSrvDiskFree, float64(st.DiskFree))
		}
		out = append(out, prometheus.MustNewConstMetric(descSrvRestarts, prometheus.CounterValue, float64(st.Restarts)))
		if !e.srv.JetStreamEnabled() {
			// Nobody would answer: do not wait for the timeout.
			gauge(descJetStreamUp, 0)
			return out
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	ai, err := c.b.js.AccountInfo(ctx)
	if err != nil {
		gauge(descJetStreamUp, 0)
		return out
	}
	gauge(descJetStreamUp, 1)
	gauge(descAccStore, float64(ai.Store))
	gauge(descAccStoreRes, float64(ai.ReservedStore))
	if ai.Limits.MaxStore >= 0 {
		gauge(descAccStoreLimit, float64(ai.Limits.MaxStore))
	}
	gauge(descAccMemory, float64(ai.Memory))
	for _, name := range c.streams {
		s, err := c.b.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			// Out of time or JetStream gone: report what was collected.
			break
		}
		si := s.CachedInfo()
		gauge(descStreamBytes, float64(si.State.Bytes), name)
		gauge(descStreamMsgs, float64(si.State.Msgs), name)
		if si.Config.MaxBytes > 0 {
			gauge(descStreamMaxB, float64(si.Config.MaxBytes), name)
		}
		if si.Config.MaxMsgs > 0 {
			gauge(descStreamMaxM, float64(si.Config.MaxMsgs), name)
		}
	}
	return out
}
