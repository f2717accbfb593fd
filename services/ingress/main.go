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
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/peterbourgon/ff/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/wahook/wahook/pkg/admin"
	"github.com/wahook/wahook/pkg/auth"
	"github.com/wahook/wahook/pkg/backbone"
	"github.com/wahook/wahook/pkg/console"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/gctune"
	"github.com/wahook/wahook/pkg/ingress"
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
		fmt.Fprintln(os.Stderr, "ingress:", err)
		os.Exit(1)
	}
}

type config struct {
	healthcheck bool
	httpAddr    string
	adminAddr   string
	pprof       bool
	cpuProfile  string
	backbone    backbone.Config
	providers   string
	// schemes are the providers' auth settings, by provider name.
	schemes         map[string]auth.Scheme
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
	console         console.Flags
}

func parseConfig(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("ingress", flag.ContinueOnError)
	fs.BoolVar(&c.healthcheck, "healthcheck", false, "ask the running ingress's admin listener (-admin-addr) whether it is ready, exit 0 if so, 1 if not: a container health check")
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "webhook listen address (also /healthz and /readyz for load balancers)")
	fs.StringVar(&c.adminAddr, "admin-addr", admin.DefaultAddr, "admin listen address: /metrics, /healthz, /readyz, pprof when enabled (empty: off); keep it private")
	fs.BoolVar(&c.pprof, "pprof", false, "serve Go's pprof profiles on the admin listener")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file, closed once the process has drained on shutdown")
	c.backbone.RegisterFlags(fs)
	fs.StringVar(&c.providers, "providers", "all", "providers whose webhooks this ingress serves, comma-separated path names (whapi, zapi...), or all; the others' paths answer 404 and need no secrets")
	c.schemes = map[string]auth.Scheme{}
	for _, p := range all.Providers() {
		if ap, ok := p.(auth.Provider); ok {
			c.schemes[p.Name()] = ap.AuthScheme()
			c.schemes[p.Name()].RegisterFlags(fs)
		}
	}
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
	c.console.RegisterFlags(fs)
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WAHOOK")); err != nil {
		return c, err
	}
	c.backbone.ClientName = "wahook-ingress"
	c.backbone.ProtectedConsumers = backbone.ConsumerNames(c.streams.GroupPrefix, c.streams.Partitions)
	return c, nil
}

func splitList(s string) []string { return auth.List(s) }

// handler is con as a handler, nil (no console) when con is.
func handler(con *console.Console) http.Handler {
	if con == nil {
		return nil
	}
	return con
}

// verifiers are the providers' verifiers of the secrets set, by provider.
func verifiers(c config) (map[string]auth.Verifier, error) {
	v := map[string]auth.Verifier{}
	for name, s := range c.schemes {
		ver, err := s.Verifier()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if ver != nil {
			v[name] = ver
		}
	}
	return v, nil
}

// verifyTokens are the tokens of providers' webhook URL checks.
func verifyTokens(c config) (map[string]*auth.VerifyTokens, error) {
	v := map[string]*auth.VerifyTokens{}
	for name, s := range c.schemes {
		h, ok := s.(auth.Handshaker)
		if !ok {
			continue
		}
		t, err := h.VerifyTokens()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if t != nil {
			v[name] = t
		}
	}
	return v, nil
}

// listening are the bound addresses, announced once both listen.
type listening struct{ http, admin string }

// run serves until ctx is cancelled, then drains. bound, when set, receives
// the bound addresses.
func run(ctx context.Context, args []string, bound chan<- listening) error {
	cfg, err := parseConfig(args)
	if err != nil {
		return err
	}
	if cfg.healthcheck {
		return admin.Healthcheck(ctx, cfg.adminAddr)
	}
	log, err := logging.New(cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	tracer, stopTracing, err := tracing.Setup(ctx, "wahook-ingress", log.Named("tracing"))
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
	// Room above the bodies the ingress may hold, as Go's default pacing
	// would leave at the full budget.
	gc.Floor(2*cfg.maxBuffered + 256<<20)
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

	vs, err := verifiers(cfg)
	if err != nil {
		return err
	}
	tokens, err := verifyTokens(cfg)
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
	providers, err := all.Select(splitList(cfg.providers))
	if err != nil {
		return fmt.Errorf("providers: %w", err)
	}
	served := map[string]bool{}
	for _, p := range providers {
		served[p.Name()] = true
	}
	for name := range vs {
		if !served[name] {
			log.Warn("secrets are set for a provider this ingress does not serve (WAHOOK_PROVIDERS)", zap.String("provider", name))
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), admin.BuildInfo())
	if c := bb.Collector(); c != nil {
		reg.MustRegister(c)
	}
	// Load balancers probe the webhook port's /readyz, operators the admin
	// one: both share one broker check a second.
	ready := admin.CachedReady(bb.Ready, time.Second)
	// The console's per-channel tally, fed by the handler; none without
	// a console.
	var channels *console.Channels
	var observer ingress.Observer
	if cfg.adminAddr != "" && cfg.console.Enabled {
		channels = console.NewChannels(0)
		observer = channels
	}
	h, err := ingress.New(ingress.Config{
		Providers:      providers,
		Verifiers:      vs,
		VerifyTokens:   tokens,
		AuthDisabled:   cfg.authDisabled,
		Publisher:      bb.Publisher,
		Binding:        bb.Binding,
		MaxBodyBytes:   cfg.maxBodyBytes,
		MaxInFlight:    cfg.maxInFlight,
		PublishTimeout: cfg.publishTimeout,
		RetryAfter:     cfg.retryAfter,
		Ready:          ready,
		Metrics:        ingress.NewMetrics(reg),
		Logger:         log.Named("ingress"),
		Tracer:         tracer,
		Observer:       observer,

		MaxUnauthenticatedInFlight: cfg.maxUnauth,
		MaxBufferedBytes:           cfg.maxBuffered,
		BodyReadTimeout:            cfg.bodyReadTimeout,
		MaxItems:                   cfg.maxItems,
	}, nil) // metrics are on the admin listener only
	if err != nil {
		return err
	}
	var deps consumer.Deps
	if len(streams.Names) > 0 {
		if deps, err = bb.ConsumerDeps(ctx, all.Providers(), consumer.NewMetrics(reg), log.Named("consumer")); err != nil {
			return err
		}
		deps.Tracer = tracer
	}

	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := admin.NewServer(h, admin.WebhookTimeouts, log.Named("http"))
	srv.MaxHeaderBytes = 64 << 10
	var adminLn net.Listener
	var adminSrv *http.Server
	var con *console.Console
	if cfg.adminAddr != "" {
		if adminLn, err = admin.Listen(cfg.adminAddr); err != nil {
			ln.Close()
			return err
		}
		if cfg.console.Enabled {
			events, err := bb.EventLog()
			if err != nil {
				ln.Close()
				adminLn.Close()
				return err
			}
			defer events.Close()
			// Redriven through this ingress's item limit, as a delivery.
			rd, err := redrive.New(redrive.Config{Log: events, Publisher: bb.Publisher, MaxItems: cfg.maxItems})
			if err != nil {
				ln.Close()
				adminLn.Close()
				return err
			}
			var readState func(context.Context) (backbone.State, error)
			if cfg.backbone.Broker != "kafka" {
				readState = bb.ReadState
			}
			regs := consoleRegistries(deps, readState)
			if con, err = console.New(console.Config{Service: "ingress", Gatherer: reg, Ready: ready,
				Labels: regs.labels, Chats: regs.chats, Aliases: regs.aliases, Events: events, Redriver: rd, Token: cfg.console.Token,
				Hosts: cfg.console.Hosts, Channels: channels, Logger: log.Named("console")}); err != nil {
				ln.Close()
				adminLn.Close()
				return err
			}
		}
		adminSrv = admin.NewServer(admin.Handler(admin.Config{Registry: reg, Ready: ready, Pprof: cfg.pprof, Console: handler(con)}),
			admin.AdminTimeouts, log.Named("admin-http"))
		log.Info("admin listening", zap.String("addr", adminLn.Addr().String()), zap.Bool("pprof", cfg.pprof),
			zap.Bool("console", con != nil), zap.Bool("console_actions", cfg.console.Token != ""))
	}
	log.Info("ingress listening", zap.String("addr", ln.Addr().String()), zap.Strings("derive", streams.Names))
	if bound != nil {
		l := listening{http: ln.Addr().String()}
		if adminLn != nil {
			l.admin = adminLn.Addr().String()
		}
		bound <- l
	}

	g, gctx := errgroup.WithContext(ctx)
	if adminSrv != nil {
		g.Go(func() error { return admin.Serve(gctx, adminSrv, adminLn, 5*time.Second) })
	}
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
	if con != nil {
		g.Go(func() error { return con.Run(gctx) })
	}
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("ingress stopped")
	return nil
}
