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
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/backbone"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/logging"
	"github.com/wahook/wahook/pkg/provider/all"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], nil); err != nil {
		fmt.Fprintln(os.Stderr, "deriver:", err)
		os.Exit(1)
	}
}

type config struct {
	httpAddr  string
	backbone  backbone.Config
	streams   consumer.StreamFlags
	logLevel  string
	logFormat string
}

func parseConfig(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("deriver", flag.ContinueOnError)
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:9090", "address of /healthz, /readyz and /metrics")
	c.backbone.RegisterFlags(fs)
	c.streams.RegisterFlags(fs, "all")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "json", "log format: json or console")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WAHOOK")); err != nil {
		return c, err
	}
	c.backbone.ClientName = "wahook-deriver"
	return c, nil
}

// readiness is what /readyz checks: the broker is reachable with its
// streams, and no consumer has held raw events without finishing any for
// longer than stuckAfter.
func readiness(broker func(context.Context) error, m *consumer.Metrics, stuckAfter time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := broker(ctx); err != nil {
			return err
		}
		return m.Stuck(stuckAfter)
	}
}

// run consumes until ctx is cancelled, then finishes the raw events in
// flight. ready, when set, receives the address of the HTTP endpoints.
func run(ctx context.Context, args []string, ready chan<- string) error {
	cfg, err := parseConfig(args)
	if err != nil {
		return err
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
	metrics := consumer.NewMetrics(reg)
	isReady := readiness(bb.Ready, metrics, cfg.streams.StuckAfter)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := isReady(rctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if ready != nil {
		ready <- ln.Addr().String()
	}

	deps, err := bb.ConsumerDeps(ctx, all.Providers(), metrics, log.Named("consumer"))
	if err != nil {
		return err
	}
	err = streams.Run(ctx, deps)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("deriver stopped")
	return nil
}
