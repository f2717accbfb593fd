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

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/peterbourgon/ff/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/wahook/wahook/pkg/admin"
	"github.com/wahook/wahook/pkg/backbone"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/gctune"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/logging"
	"github.com/wahook/wahook/pkg/provider/all"
	"github.com/wahook/wahook/pkg/provider/meta"
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
	healthcheck     bool
	httpAddr        string
	adminAddr       string
	pprof           bool
	cpuProfile      string
	backbone        backbone.Config
	providers       string
	whapiTokens     string
	zapiTokens      string
	wahaKeys        string
	wawpTokens      string
	metaSecrets     string
	metaVerify      string
	evoTokens       string
	evoJWTKeys      string
	wahaMaxSkew     time.Duration
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
	fs.StringVar(&c.whapiTokens, "auth-whapi-tokens", "", "accepted Whapi secrets, comma-separated, each secret or channel:secret (Authorization: Bearer, X-Wahook-Token or ?token=)")
	fs.StringVar(&c.zapiTokens, "auth-zapi-tokens", "", "accepted Z-API secrets, comma-separated, each secret or channel:secret (?token= or X-Wahook-Token)")
	fs.StringVar(&c.wahaKeys, "auth-waha-hmac-keys", "", "WAHA HMAC-SHA512 keys for X-Webhook-Hmac, comma-separated, each key or channel:key")
	fs.StringVar(&c.wawpTokens, "auth-wawp-tokens", "", "Wawp X-Wawp-Signature secrets, comma-separated, each secret or channel:secret")
	fs.StringVar(&c.metaSecrets, "auth-meta-app-secrets", "", "Meta app secrets for X-Hub-Signature-256 (HMAC-SHA256 of the body), comma-separated, each secret or phone_number_id:secret")
	fs.StringVar(&c.metaVerify, "meta-verify-tokens", "", "verify tokens Meta's webhook check (GET ?hub.verify_token=) may present, comma-separated; without them the check is refused")
	fs.StringVar(&c.evoTokens, "auth-evolution-tokens", "", "accepted Evolution API secrets, comma-separated, each secret or channel:secret (Authorization: Bearer, X-Wahook-Token or ?token=)")
	fs.StringVar(&c.evoJWTKeys, "auth-evolution-jwt-keys", "", "Evolution API jwt_key values, comma-separated, each key or channel:key: HS256 Authorization: Bearer <jwt> with app evolution, action webhook")
	fs.DurationVar(&c.wahaMaxSkew, "auth-waha-max-skew", 0, "refuse WAHA deliveries whose X-Webhook-Timestamp (and signed body timestamp) is further than this from now (0: off)")
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
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WAHOOK")); err != nil {
		return c, err
	}
	c.backbone.ClientName = "wahook-ingress"
	c.backbone.ProtectedConsumers = backbone.ConsumerNames(c.streams.GroupPrefix, c.streams.Partitions)
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
	// WAHA and Wawp post to the same route with their own secrets.
	var waha ingress.AnyVerifier
	if list := splitList(c.wahaKeys); len(list) > 0 {
		h, err := ingress.NewHMACVerifier(list)
		if err != nil {
			return nil, err
		}
		h.MaxSkew = c.wahaMaxSkew
		waha = append(waha, h)
	}
	if list := splitList(c.wawpTokens); len(list) > 0 {
		w, err := ingress.NewWawpVerifier(list)
		if err != nil {
			return nil, err
		}
		waha = append(waha, w)
	}
	if len(waha) > 0 {
		v["waha"] = waha
	}
	// Evolution: a JWT when the bearer value is one, else a static token.
	var evo ingress.AnyVerifier
	if list := splitList(c.evoJWTKeys); len(list) > 0 {
		j, err := ingress.NewJWTVerifier(list)
		if err != nil {
			return nil, err
		}
		evo = append(evo, j)
	}
	if list := splitList(c.evoTokens); len(list) > 0 {
		t, err := ingress.NewTokenVerifier(list)
		if err != nil {
			return nil, err
		}
		evo = append(evo, t)
	}
	if len(evo) > 0 {
		v["evolution"] = evo
	}
	if list := splitList(c.metaSecrets); len(list) > 0 {
		m, err := ingress.NewHubSignatureVerifier(list)
		if err != nil {
			return nil, err
		}
		v[meta.Name] = m
	}
	return v, nil
}

// verifyTokens are the tokens of providers' webhook URL checks.
func verifyTokens(c config) (map[string]*ingress.VerifyTokens, error) {
	v := map[string]*ingress.VerifyTokens{}
	if list := splitList(c.metaVerify); len(list) > 0 {
		t, err := ingress.NewVerifyTokens(list)
		if err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
		v[meta.Name] = t
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
	}

	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := admin.NewServer(h, admin.WebhookTimeouts, log.Named("http"))
	srv.MaxHeaderBytes = 64 << 10
	var adminLn net.Listener
	var adminSrv *http.Server
	if cfg.adminAddr != "" {
		if adminLn, err = admin.Listen(cfg.adminAddr); err != nil {
			ln.Close()
			return err
		}
		adminSrv = admin.NewServer(admin.Handler(admin.Config{Registry: reg, Ready: ready, Pprof: cfg.pprof}),
			admin.AdminTimeouts, log.Named("admin-http"))
		log.Info("admin listening", zap.String("addr", adminLn.Addr().String()), zap.Bool("pprof", cfg.pprof))
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
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("ingress stopped")
	return nil
}
