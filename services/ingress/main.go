// Command ingress is wahook's webhook receiver: it accepts WhatsApp API
// providers' webhooks over HTTP and publishes every item as a CloudEvent on
// the raw stream, answering only once the broker has stored it.
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
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/wahook/wahook/pkg/backbone"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/logging"
	"github.com/wahook/wahook/pkg/provider/all"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], nil); err != nil {
		fmt.Fprintln(os.Stderr, "ingress:", err)
		os.Exit(1)
	}
}

type config struct {
	httpAddr        string
	backbone        backbone.Config
	whapiTokens     string
	zapiTokens      string
	wahaKeys        string
	authDisabled    bool
	maxBodyBytes    int64
	maxInFlight     int
	maxUnauth       int
	maxBuffered     int64
	bodyReadTimeout time.Duration
	maxItems        int
	publishTimeout  time.Duration
	retryAfter      time.Duration
	shutdownTimeout time.Duration
	logLevel        string
	logFormat       string
	streams         consumer.StreamFlags
	debugAddr       string
}

func parseConfig(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("ingress", flag.ContinueOnError)
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address")
	c.backbone.RegisterFlags(fs)
	fs.StringVar(&c.whapiTokens, "auth-whapi-tokens", "", "accepted Whapi secrets, comma-separated (Authorization: Bearer, X-Wahook-Token or ?token=)")
	fs.StringVar(&c.zapiTokens, "auth-zapi-tokens", "", "accepted Z-API secrets, comma-separated (?token= or X-Wahook-Token)")
	fs.StringVar(&c.wahaKeys, "auth-waha-hmac-keys", "", "WAHA HMAC-SHA512 keys for X-Webhook-Hmac, comma-separated; a Wawp X-Wawp-Signature equal to a key is accepted")
	fs.BoolVar(&c.authDisabled, "auth-disabled", false, "accept unauthenticated webhooks (local development only)")
	fs.Int64Var(&c.maxBodyBytes, "max-body-bytes", 4<<20, "largest accepted delivery body; larger ones get 413")
	fs.IntVar(&c.maxInFlight, "max-in-flight", 4096, "deliveries handled at once; more get 429")
	fs.IntVar(&c.maxUnauth, "max-unauthenticated-in-flight", 0, "of those, deliveries whose sender is not known yet (body-signed until checked, or open providers); more get 429 (0: a quarter of -max-in-flight)")
	fs.Int64Var(&c.maxBuffered, "max-buffered-bytes", 256<<20, "bytes of bodies held in memory at once, a quarter of them for deliveries not yet authenticated; more get 429")
	fs.DurationVar(&c.bodyReadTimeout, "body-read-timeout", 10*time.Second, "longest time a body may take to arrive; slower ones get 408")
	fs.IntVar(&c.maxItems, "max-items", 1000, "most items in one delivery; more get 400 and a dead letter")
	fs.DurationVar(&c.publishTimeout, "publish-timeout", 5*time.Second, "longest wait for the broker's acknowledgements before answering 503")
	fs.DurationVar(&c.retryAfter, "retry-after", 5*time.Second, "Retry-After sent with 429 and 503")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "longest wait for in-flight deliveries on shutdown")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "json", "log format: json or console")
	// Development and single-machine setups run the consumers in this
	// process too; production runs services/deriver beside it.
	c.streams.RegisterFlags(fs, "")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (off when empty; keep it private)")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WAHOOK")); err != nil {
		return c, err
	}
	c.backbone.ClientName = "wahook-ingress"
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func verifiers(c config) (map[string]ingress.Verifier, error) {
	v := map[string]ingress.Verifier{}
	if list := splitList(c.whapiTokens); len(list) > 0 {
		t, err := ingress.NewTokenVerifier(list)
		if err != nil {
			return nil, err
		}
		v["whapi"] = t
	}
	if list := splitList(c.zapiTokens); len(list) > 0 {
		t, err := ingress.NewTokenVerifier(list)
		if err != nil {
			return nil, err
		}
		v["zapi"] = t
	}
	if list := splitList(c.wahaKeys); len(list) > 0 {
		h, err := ingress.NewHMACVerifier(list)
		if err != nil {
			return nil, err
		}
		v["waha"] = h
	}
	return v, nil
}

// run serves until ctx is cancelled, then drains. listening, when set,
// receives the bound address.
func run(ctx context.Context, args []string, listening chan<- string) error {
	cfg, err := parseConfig(args)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	vs, err := verifiers(cfg)
	if err != nil {
		return err
	}
	if cfg.authDisabled {
		log.Warn("AUTHENTICATION IS DISABLED for providers without secrets: anyone can post their webhooks; use only for local development")
	}

	bb, err := backbone.Open(ctx, cfg.backbone, log)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		if err := bb.Close(closeCtx); err != nil {
			log.Error("close broker", zap.Error(err))
		}
	}()

	streams, err := cfg.streams.Streams()
	if err != nil {
		return err
	}
	providers := all.Providers()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := ingress.New(ingress.Config{
		Providers:      providers,
		Verifiers:      vs,
		AuthDisabled:   cfg.authDisabled,
		Publisher:      bb.Publisher,
		Binding:        bb.Binding,
		MaxBodyBytes:   cfg.maxBodyBytes,
		MaxInFlight:    cfg.maxInFlight,
		PublishTimeout: cfg.publishTimeout,
		RetryAfter:     cfg.retryAfter,
		Ready:          bb.Ready,
		Metrics:        ingress.NewMetrics(reg),
		Logger:         log.Named("ingress"),

		MaxUnauthenticatedInFlight: cfg.maxUnauth,
		MaxBufferedBytes:           cfg.maxBuffered,
		BodyReadTimeout:            cfg.bodyReadTimeout,
		MaxItems:                   cfg.maxItems,
	}, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if err != nil {
		return err
	}
	var deps consumer.Deps
	if len(streams.Names) > 0 {
		if deps, err = bb.ConsumerDeps(ctx, providers, consumer.NewMetrics(reg), log.Named("consumer")); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	log.Info("ingress listening", zap.String("addr", ln.Addr().String()), zap.Strings("derive", streams.Names))
	if listening != nil {
		listening <- ln.Addr().String()
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		select {
		case err := <-served:
			return fmt.Errorf("serve: %w", err)
		case <-gctx.Done():
		}
		log.Info("shutting down: finishing in-flight deliveries")
		shutCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(shutCtx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	if len(streams.Names) > 0 {
		g.Go(func() error { return streams.Run(gctx, deps) })
	}
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("ingress stopped")
	return nil
}
