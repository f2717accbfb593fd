// Package admin is the operators' HTTP listener of a wahook service, apart
// from the public webhook port: Prometheus metrics, health and readiness,
// and, when enabled, Go's pprof profiles. It also sets the timeouts every
// wahook HTTP server uses, and writes a whole run's CPU profile to a file
// (StartCPUProfile).
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// DefaultAddr is where the admin listener listens unless configured
// (WAHOOK_ADMIN_ADDR): loopback only.
const DefaultAddr = "127.0.0.1:9090"

// Config configures the admin handler.
type Config struct {
	// Registry is served on /metrics.
	Registry *prometheus.Registry
	// Ready reports whether the service can do its work (/readyz); always
	// ready when nil.
	Ready func(ctx context.Context) error
	// Pprof serves Go's profiles under /debug/pprof/, but never
	// /debug/pprof/cmdline: the command line may hold secrets.
	Pprof bool
	// Console, when set, is served under /console/ (pkg/console).
	Console http.Handler
}

// readyTimeout bounds one readiness check.
const readyTimeout = 2 * time.Second

// Handler serves /metrics, /healthz, /readyz and, when enabled, pprof and
// the console.
func Handler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	if cfg.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))
	}
	if cfg.Console != nil {
		mux.Handle("/console/", cfg.Console)
	}
	mux.HandleFunc("GET /healthz", Healthz)
	mux.Handle("GET /readyz", Readyz(cfg.Ready))
	if cfg.Pprof {
		// pprof.Index serves the named profiles (heap, goroutine, block,
		// mutex, allocs, threadcreate) under /debug/pprof/{name}.
		mux.HandleFunc("GET /debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/debug/pprof/cmdline" {
				http.NotFound(w, r)
				return
			}
			pprof.Index(w, r)
		})
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Healthz answers that the process is alive.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// CachedReady returns a readiness check that runs ready at most once per
// ttl, however many callers ask at once (load balancers, orchestrators and
// scrapers probing several times a second): concurrent callers share one
// run, and its answer is reused until ttl has passed. A run is bounded by
// readyTimeout and is not cut short by the caller that started it.
func CachedReady(ready func(ctx context.Context) error, ttl time.Duration) func(ctx context.Context) error {
	if ready == nil {
		return nil
	}
	var (
		group singleflight.Group
		mu    sync.Mutex
		at    time.Time
		last  error
	)
	cached := func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return !at.IsZero() && time.Since(at) < ttl, last
	}
	return func(ctx context.Context) error {
		if ok, err := cached(); ok {
			return err
		}
		ch := group.DoChan("ready", func() (any, error) {
			// A run may have ended between the look above and this one.
			if ok, err := cached(); ok {
				return nil, err
			}
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
			defer cancel()
			err := ready(rctx)
			mu.Lock()
			at, last = time.Now(), err
			mu.Unlock()
			return nil, err
		})
		select {
		case res := <-ch:
			return res.Err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Readyz answers 200 when ready reports nil (or is nil), else 503 with the
// reason.
func Readyz(ready func(ctx context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
			defer cancel()
			if err := ready(ctx); err != nil {
				writeJSON(w, http.StatusServiceUnavailable, map[string]any{
					"error": map[string]string{"code": "not_ready", "message": err.Error()}})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Timeouts of an HTTP server. Every wahook server sets all four, so that no
// client can hold a connection or a goroutine forever.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// WebhookTimeouts are the public webhook server's: a body may take up to a
// minute (large deliveries over slow links), a connection idle two.
var WebhookTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 60 * time.Second, Write: 60 * time.Second, Idle: 120 * time.Second}

// AdminTimeouts are the admin listener's. Write leaves room for a 60s CPU
// profile or trace (pprof refuses a duration above the write timeout).
var AdminTimeouts = Timeouts{ReadHeader: 5 * time.Second, Read: 10 * time.Second, Write: 70 * time.Second, Idle: 60 * time.Second}

// NewServer returns an HTTP server with h and every timeout of t set; its
// errors go to log (nowhere when nil).
func NewServer(h http.Handler, t Timeouts, log *zap.Logger) *http.Server {
	if log == nil {
		log = zap.NewNop()
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(log),
	}
}

// Listen opens the admin listener on addr.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen: %w", err)
	}
	return ln, nil
}

// Serve serves srv on ln until ctx ends, then shuts it down, waiting at most
// grace for the requests in progress.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}
