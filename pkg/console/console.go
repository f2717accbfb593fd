// Package console is wahook's web console, served on a service's admin
// listener under /console/: an overview of deliveries, derived streams and
// the broker's health from the process's own metrics, live over
// server-sent events; a live tail of the streams with each event's causal
// chain; a chat's timeline; the label registry of each channel; and the
// dead letters, with a redrive guarded by a token.
//
// Pages are rendered on the server (html/template) with a little
// JavaScript, both embedded in the binary. Every page only reads, with
// bounded queries; no page sets a cookie, and the console sends headers that
// keep it out of frames and other origins' scripts. It answers only to its
// own host names (Config.Hosts), so that a page whose DNS name was rebound
// to its address reads nothing; live views are bounded in number and age.
// A list goes past its count a page at a time, each page bounded as the
// first, through a link whose position is checked before it is read.
package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"flag"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/admin"
	"github.com/wahook/wahook/pkg/eventlog"
	"github.com/wahook/wahook/pkg/state"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is mounted on the admin listener.
const Prefix = "/console/"

// LabelLister lists a label registry (natsstate.Labels, kafkastate.Labels).
type LabelLister interface {
	Channels(ctx context.Context) ([]state.ProviderChannel, error)
	List(ctx context.Context, provider, channel string) ([]state.Label, error)
}

// Config configures the console.
type Config struct {
	// Service names the process in the page title ("ingress", "deriver").
	Service string
	// Gatherer is the process's metrics registry, sampled for the
	// overview; no metrics when nil.
	Gatherer prometheus.Gatherer
	// Ready is the service's readiness check, shown on the overview.
	Ready func(ctx context.Context) error
	// Labels returns the label registry once the process has opened its
	// state, nil before (or never, in an ingress that derives nothing).
	Labels func() LabelLister
	// Chats and Aliases return the chat and alias registries once the
	// process has opened its state, nil before (or when nil): the chat
	// timeline tells when and by which event a chat was first seen from
	// them, else from the events in its range.
	Chats   func() ChatLookup
	Aliases func() AliasLookup
	// Events reads the broker's streams for the live tail, the event
	// pages, the chat timeline and the dead letters; those pages are not
	// served when nil.
	Events *eventlog.Log
	// Redriver lists the dead letters (with Events) and republishes one
	// by its id; with Token, the dead letters page offers that. Never
	// forced: a second redrive publishes nothing.
	Redriver Redriver
	// Token, when set, allows the actions that change something; empty
	// keeps the console read-only. Never shown, logged or echoed.
	Token string
	// Channels, when set, is the ingress's per-channel tally (given to it
	// as its Observer), sampled with the metrics for the overview.
	Channels *Channels
	// SampleEvery is how often metrics are sampled; 2s when zero.
	SampleEvery time.Duration
	// Window is how long samples are kept for sparklines; 10m when zero.
	Window time.Duration
	// MaxStreams bounds the live (server-sent events) connections at once;
	// 16 when zero. More get 503 with Retry-After.
	MaxStreams int
	// MaxStreamAge ends a live connection after this long, cleanly: the
	// browser opens it again, and a forgotten page cannot keep its slot
	// for good; 10m when zero.
	MaxStreamAge time.Duration
	// Hosts are the DNS names the console answers to besides IP literals,
	// localhost and *.localhost (HostsSetting): any other Host header
	// gets 421, so that a page whose name was rebound to the console's
	// address reads nothing.
	Hosts []string
	// Logger logs the console's errors; none when nil.
	Logger *zap.Logger
}

func (c *Config) setDefaults() {
	if c.SampleEvery <= 0 {
		c.SampleEvery = 2 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Minute
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 16
	}
	if c.MaxStreamAge <= 0 {
		c.MaxStreamAge = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Labels == nil {
		c.Labels = func() LabelLister { return nil }
	}
}

// Console serves the console's pages; Run samples the metrics it shows.
type Console struct {
	cfg     Config
	mux     *http.ServeMux
	pages   map[string]*template.Template
	sampler *sampler
	streams *liveSlots
	hosts   hostCheck
	// stopped is closed when Run returns: live views end then, so that
	// the admin server's shutdown does not wait for them.
	stopped chan struct{}
	// tokenSum is the token's SHA-256: compared in constant time whatever
	// the length of what a request sends.
	tokenSum [sha256.Size]byte
}

// New returns the console for cfg; it is mounted at Prefix.
func New(cfg Config) (*Console, error) {
	cfg.setDefaults()
	hosts, err := newHostCheck(cfg.Hosts)
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, mux: http.NewServeMux(), sampler: newSampler(cfg.Gatherer, cfg.Channels, cfg.SampleEvery, cfg.Window),
		streams: newLiveSlots(cfg.MaxStreams), hosts: hosts, stopped: make(chan struct{})}
	if cfg.Token != "" {
		c.tokenSum = sha256.Sum256([]byte(cfg.Token))
	}
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c.mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET "+Prefix+"{$}", c.serveOverview)
	c.mux.HandleFunc("GET "+Prefix+"overview/live", c.live(c.serveOverviewLive))
	c.mux.HandleFunc("GET "+Prefix+"labels", c.serveLabels)
	if cfg.Events != nil {
		c.mux.HandleFunc("GET "+Prefix+"tail", c.serveTail)
		c.mux.HandleFunc("GET "+Prefix+"tail/live", c.live(c.serveTailLive))
		c.mux.HandleFunc("GET "+Prefix+"event", c.serveEvent)
		c.mux.HandleFunc("GET "+Prefix+"chat", c.serveChat)
	}
	if cfg.Events != nil && cfg.Redriver != nil {
		c.mux.HandleFunc("GET "+Prefix+"deadletters", c.serveDeadLetters)
		c.mux.HandleFunc("POST "+Prefix+"deadletters/redrive", c.serveRedrive)
	}
	return c, nil
}

// Run samples the metrics until ctx ends.
func (c *Console) Run(ctx context.Context) error {
	defer close(c.stopped)
	c.sampler.sample(time.Now())
	t := time.NewTicker(c.cfg.SampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			c.sampler.sample(now)
		}
	}
}

// ServeHTTP serves the console's pages with headers that keep it in its
// own origin: no framing, no inline scripts, no referrer sent on. Only
// requests for a host it answers to are served (Config.Hosts).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if !c.hosts.allowed(r.Host) {
		refuseHost(w, r.Host)
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/live") {
		// The server's write timeout does not end a handler: a page's
		// broker reads would go on for a client that stopped reading.
		ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	c.mux.ServeHTTP(w, r)
}

// pageTimeout bounds a page (its queries, a redrive), under the admin
// listener's write timeout; live views have their own bounds.
const pageTimeout = 30 * time.Second

// authorized reports whether r carries the token in its
// X-Wahook-Console-Token header: a header only the page's script sends, so
// another site cannot make a browser send it (no cookie, no form field).
func (c *Console) authorized(r *http.Request) bool {
	if c.cfg.Token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(r.Header.Get("X-Wahook-Console-Token")))
	return subtle.ConstantTimeCompare(sum[:], c.tokenSum[:]) == 1
}

// page is what every page's layout needs.
type page struct {
	Title   string
	Service string
	Build   admin.Build
	Nav     string
	Writes  bool // a token is configured: actions are offered
	Events  bool // the event pages are served
	Dead    bool // the dead letters page is served
	Data    any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, name, title string, data any) {
	t := c.pages[name]
	var buf bytes.Buffer
	err := t.ExecuteTemplate(&buf, "layout", page{Title: title, Service: c.cfg.Service, Build: admin.ReadBuild(),
		Nav: name, Writes: c.cfg.Token != "", Events: c.cfg.Events != nil,
		Dead: c.cfg.Events != nil && c.cfg.Redriver != nil, Data: data})
	if err != nil {
		c.cfg.Logger.Error("render console page", zap.String("page", name), zap.Error(err))
		http.Error(w, "page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}

func (c *Console) serveOverview(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, "overview", "Overview", c.overview(r.Context()))
}

// liveWrite bounds one write of a live stream: the admin server's write
// timeout would end the stream otherwise.
const liveWrite = 30 * time.Second

// heartbeat keeps a quiet live stream's connection open through proxies.
const heartbeat = 15 * time.Second

// live serves a live view with h: it takes one of MaxStreams slots, or
// answers 503 with the seconds until the oldest view ends as Retry-After,
// and ends the view's request after MaxStreamAge, or when Run returns.
func (c *Console) live(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		end := time.Now().Add(c.cfg.MaxStreamAge)
		release, wait, ok := c.streams.take(end)
		if !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			http.Error(w, "console: every live view is taken; the oldest ends within the Retry-After seconds", http.StatusServiceUnavailable)
			return
		}
		defer release()
		ctx, cancel := context.WithDeadline(r.Context(), end)
		defer cancel()
		go func() {
			select {
			case <-c.stopped:
				cancel()
			case <-ctx.Done():
			}
		}()
		h(w, r.WithContext(ctx))
	}
}

// sse is one server-sent event. ID, when set, is what the browser sends
// back as Last-Event-ID when it opens the view again.
type sse struct {
	Event, ID string
	Data      []byte
}

// stream serves server-sent events until the request ends: next blocks
// until it has an event (or its context ends) and returns it. Ending at
// the request's deadline (live) is a clean end of the stream: the browser
// opens it again.
func (c *Console) stream(w http.ResponseWriter, r *http.Request, next func(ctx context.Context) (sse, error)) {
	rctx := r.Context()
	rc := http.NewResponseController(w)
	// The server's read timeout would end the stream (and cancel its
	// context) while the client only listens; the heartbeat's writes
	// notice a client that went away.
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	for {
		_ = rc.SetWriteDeadline(time.Now().Add(liveWrite))
		if err := rc.Flush(); err != nil {
			return
		}
		ctx, cancelBeat := context.WithTimeout(rctx, heartbeat)
		ev, err := next(ctx)
		quiet := ctx.Err() != nil
		cancelBeat()
		if rctx.Err() != nil {
			return
		}
		_ = rc.SetWriteDeadline(time.Now().Add(liveWrite))
		switch {
		case err != nil && quiet:
			_, err = fmt.Fprint(w, ": heartbeat\n\n")
		case err != nil:
			// The browser opens the view again a few seconds later.
			c.cfg.Logger.Warn("console live view", zap.Error(err))
			_, _ = fmt.Fprintf(w, "event: failed\ndata: %s\n\n", strings.ReplaceAll(sseNewline.Replace(err.Error()), "\n", " "))
			_ = rc.Flush()
			return
		default:
			_, err = fmt.Fprintf(w, "event: %s\n", ev.Event)
			if err == nil && ev.ID != "" {
				_, err = fmt.Fprintf(w, "id: %s\n", strings.NewReplacer("\r", "", "\n", "", "\x00", "").Replace(ev.ID))
			}
			for line := range strings.SplitSeq(sseNewline.Replace(string(ev.Data)), "\n") {
				if err == nil {
					_, err = fmt.Fprintf(w, "data: %s\n", line)
				}
			}
			if err == nil {
				_, err = fmt.Fprint(w, "\n")
			}
		}
		if err != nil {
			return
		}
	}
}

// sseNewline makes every line end of an event stream a LF: a browser ends a
// field at a lone CR too, so a CR in event data (payloads are the sender's)
// would start a field of the sender's choosing.
var sseNewline = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// serveOverviewLive sends the overview's body again at every sample.
func (c *Console) serveOverviewLive(w http.ResponseWriter, r *http.Request) {
	first := true
	c.stream(w, r, func(ctx context.Context) (sse, error) {
		if !first {
			select {
			case <-c.sampler.wait():
			case <-ctx.Done():
				return sse{}, ctx.Err()
			}
		}
		first = false
		var buf bytes.Buffer
		if err := c.pages["overview"].ExecuteTemplate(&buf, "overview-body", c.overview(ctx)); err != nil {
			return sse{}, err
		}
		return sse{Event: "overview", Data: buf.Bytes()}, nil
	})
}

var funcs = template.FuncMap{
	"rate": func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) },
	"num":  func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) },
	"bytes": func(v float64) string {
		return bytesText(v)
	},
	"pct": func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + "%" },
	"age": func(seconds float64) string {
		return (time.Duration(math.Round(seconds)) * time.Second).String()
	},
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"swatch": swatchColor,
	"ref":    func(link bool, id string) eventRef { return eventRef{Link: link, ID: id} },
}

// eventRef is an event id, linked to its page when the pages are served.
type eventRef struct {
	Link bool
	ID   string
}

// parsePages parses each page with the layout.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// Flags are the services' console settings.
type Flags struct {
	Enabled bool
	Token   string
	Hosts   []string // checked as they are parsed
}

// RegisterFlags declares -console, -console-token and -console-hosts on fs
// (with ff, also WAHOOK_CONSOLE, WAHOOK_CONSOLE_TOKEN and
// WAHOOK_CONSOLE_HOSTS).
func (f *Flags) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&f.Enabled, "console", true, "serve the web console on the admin listener under /console/ (it shows event contents to whoever reaches that listener: keep it private)")
	fs.StringVar(&f.Token, "console-token", "", "token the console asks for before an action that changes something (redrive); empty: read-only. Prefer the WAHOOK_CONSOLE_TOKEN variable to the flag")
	fs.Func("console-hosts", "comma-separated host names the console answers to besides IP addresses, localhost and *.localhost (the name in the browser's address bar, without port); other names get 421, against DNS rebinding", func(s string) error {
		f.Hosts = nil
		for n := range strings.SplitSeq(s, ",") {
			if n = strings.TrimSpace(n); n == "" {
				continue
			}
			name, err := canonicalName(n)
			if err != nil {
				return err
			}
			f.Hosts = append(f.Hosts, name)
		}
		return nil
	})
}
