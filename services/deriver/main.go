// Command deriver runs wahook's derived-stream consumers: it reads the raw
// stream and publishes the provider-neutral label-changed, chat-created, call
// and group-notification streams. Each stream is its own durable consumer;
// run one process for all of them, or one per stream, and several instances
// with -derive-partitions to share the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/peterbourgon/ff/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/wahook/wahook/pkg/admin"
	"github.com/wahook/wahook/pkg/backbone"
	"github.com/wahook/wahook/pkg/console"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/gctune"
	"github.com/wahook/wahook/pkg/logging"
	"github.com/wahook/wahook/pkg/provider/all"
	"github.com/wahook/wahook/pkg/redrive"
	"github.com/wahook/wahook/pkg/tracing"
)

// gc is the garbage collector's pacing main chose, logged by run; zero in
// tests, which keep Go's defaults.
var gc gctune.Applied

func main() {
	gc.Settings, gc.Err = gctune.Apply(os.Getenv, memlimit.FromCgroup)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], nil); err != nil {
		fmt.Fprintln(os.Stderr, "deriver:", err)
		os.Exit(1)
	}
}

type config struct {
	healthcheck bool
	adminAddr   string
	pprof       bool
	cpuProfile  string
	backbone    backbone.Config
	streams     consumer.StreamFlags
	logLevel    string
	logFormat   string
	console     console.Flags
}

func parseConfig(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("deriver", flag.ContinueOnError)
	fs.BoolVar(&c.healthcheck, "healthcheck", false, "ask the running deriver's admin listener (-admin-addr) whether it is ready, exit 0 if so, 1 if not: a container health check")
	// The deriver had -http-addr for these; it is the admin listener now,
	// as in the ingress (WAHOOK_HTTP_ADDR is the ingress's webhook port).
	fs.StringVar(&c.adminAddr, "admin-addr", admin.DefaultAddr, "admin listen address: /metrics, /healthz, /readyz, pprof when enabled (empty: off); keep it private")
	fs.BoolVar(&c.pprof, "pprof", false, "serve Go's pprof profiles on the admin listener")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file, closed once the process has drained on shutdown")
	c.backbone.RegisterFlags(fs)
	c.streams.RegisterFlags(fs, "all")
	c.console.RegisterFlags(fs)
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "json", "log format: json or console")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WAHOOK")); err != nil {
		return c, err
	}
	c.backbone.ClientName = "wahook-deriver"
	c.backbone.ProtectedConsumers = backbone.ConsumerNames(c.streams.GroupPrefix, c.streams.Partitions)
	return c, nil
}

// readyCache is how long a readiness answer is reused: probes are cheap
// whatever their rate.
const readyCache = time.Second

// readiness is what /readyz checks: the state store is open, the broker
// is reachable with its streams, every stream's consumer has started,
// every consumer group consumes (Kafka: joined, no stalled partition), and
// no consumer has held raw events without finishing any for longer than
// stuckAfter.
func readiness(stateOpen func() bool, broker func(context.Context) error, groups func() error, m *consumer.Metrics,
	streams []string, stuckAfter time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		if !stateOpen() {
			return errors.New("state store opening")
		}
		if err := broker(ctx); err != nil {
			return err
		}
		if err := m.Running(streams); err != nil {
			return err
		}
		if err := groups(); err != nil {
			return err
		}
		return m.Stuck(stuckAfter)
	}
}

// run consumes until ctx is cancelled, then finishes the raw events in
// flight. ready, when set, receives the admin listener's address.
func run(ctx context.Context, args []string, ready chan<- string) error {
	cfg, err := parseConfig(args)
	if err != nil {
		return err
	}
	if cfg.healthcheck {
		return admin.Healthcheck(ctx, cfg.adminAddr)
	}
	streams, err := cfg.streams.Streams()
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	tracer, stopTracing, err := tracing.Setup(ctx, "wahook-deriver", log.Named("tracing"))
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: the drain's spans are flushed too.
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := stopTracing(flushCtx); err != nil {
			log.Warn("flush traces", zap.Error(err))
		}
	}()
	gc.Log(log)
	if cfg.cpuProfile != "" {
		stop, err := admin.StartCPUProfile(cfg.cpuProfile, log)
		if err != nil {
			return err
		}
		// Deferred before the broker's close, so it runs after it: the
		// profile covers the drain.
		defer stop()
	}

	bb, err := backbone.Open(ctx, cfg.backbone, log)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := bb.Close(closeCtx); err != nil {
			log.Error("close broker", zap.Error(err))
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if c := bb.Collector(); c != nil {
		reg.MustRegister(c)
	}
	reg.MustRegister(admin.BuildInfo())
	metrics := consumer.NewMetrics(reg)
	// The admin listener comes up first: metrics and liveness while the
	// state opens (a Kafka state is read whole first), readiness false
	// until it is open and the consumers run.
	var stateOpen atomic.Bool
	// The registries the console reads, once the state is open.
	var (
		labels  atomic.Pointer[console.LabelLister]
		chats   atomic.Pointer[console.ChatLookup]
		aliases atomic.Pointer[console.AliasLookup]
	)
	g, gctx := errgroup.WithContext(ctx)
	if cfg.adminAddr != "" {
		ln, err := admin.Listen(cfg.adminAddr)
		if err != nil {
			return err
		}
		isReady := admin.CachedReady(readiness(stateOpen.Load, bb.Ready, bb.ConsumerGroups, metrics, streams.Names,
			cfg.streams.StuckAfter), readyCache)
		var con http.Handler
		if cfg.console.Enabled {
			events, err := bb.EventLog()
			if err != nil {
				ln.Close()
				return err
			}
			defer events.Close()
			rd, err := redrive.New(redrive.Config{Log: events, Publisher: bb.Publisher})
			if err != nil {
				ln.Close()
				return err
			}
			c, err := console.New(console.Config{Service: "deriver", Gatherer: reg, Ready: isReady,
				Labels:  func() console.LabelLister { return loaded(&labels) },
				Chats:   func() console.ChatLookup { return loaded(&chats) },
				Aliases: func() console.AliasLookup { return loaded(&aliases) },
				Events:  events, Redriver: rd, Token: cfg.console.Token, Hosts: cfg.console.Hosts, Logger: log.Named("console")})
			if err != nil {
				ln.Close()
				return err
			}
			con = c
			g.Go(func() error { return c.Run(gctx) })
		}
		srv := admin.NewServer(admin.Handler(admin.Config{Registry: reg, Ready: isReady, Pprof: cfg.pprof, Console: con}),
			admin.AdminTimeouts, log.Named("admin-http"))
		log.Info("admin listening", zap.String("addr", ln.Addr().String()), zap.Bool("pprof", cfg.pprof),
			zap.Bool("console", con != nil), zap.Bool("console_actions", cfg.console.Token != ""))
		g.Go(func() error { return admin.Serve(gctx, srv, ln, 5*time.Second) })
		if ready != nil {
			ready <- ln.Addr().String()
		}
	}

	g.Go(func() error {
		deps, err := bb.ConsumerDeps(gctx, all.Providers(), metrics, log.Named("consumer"))
		if err != nil {
			if gctx.Err() != nil {
				// Stopped while the state was still opening.
				return gctx.Err()
			}
			return err
		}
		deps.Tracer = tracer
		if l, ok := deps.Labels.(console.LabelLister); ok {
			labels.Store(&l)
		}
		if c, ok := deps.Chats.(console.ChatLookup); ok {
			chats.Store(&c)
		}
		if a, ok := deps.Aliases.(console.AliasLookup); ok {
			aliases.Store(&a)
		}
		stateOpen.Store(true)
		err = streams.Run(gctx, deps)
		if err == nil && ctx.Err() == nil {
			// The consumers never end on their own: take the admin
			// listener down with them.
			err = errors.New("derived stream consumers stopped")
		}
		return err
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("deriver stopped")
	return nil
}

// loaded is what p holds, the zero value (a nil interface) before it is
// stored.
func loaded[T any](p *atomic.Pointer[T]) T {
	if v := p.Load(); v != nil {
		return *v
	}
	var zero T
	return zero
}
