// Command tail prints wahook's events as they arrive, or replays them from
// the stream, one CloudEvent per line in the JSON event format: a way to
// watch the raw, derived and dead-letter streams without any other tool.
package main

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/peterbourgon/ff/v3"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "tail:", err)
		os.Exit(1)
	}
}

type config struct {
	url     string
	ctxFile string
	dataDir string
	auth    natsbroker.Auth
	subject string
	since   time.Duration
	all     bool
	count   int
	pretty  bool

	// historyBatch is how many stored events one direct get returns,
	// defaultHistoryBatch when zero.
	historyBatch int
	// seamBytes bounds the live events held while the history is read,
	// maxSeamBytes when zero.
	seamBytes int
	// afterBatch, when set, runs after each batch of history is printed,
	// and atSeam once the history is read, before the live events held.
	afterBatch, atSeam func()
}

func run(ctx context.Context, args []string, out io.Writer) error {
	c, err := parse(args)
	if err != nil {
		return err
	}
	return c.tail(ctx, out)
}

func parse(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.StringVar(&c.url, "nats-url", "", "NATS server URL (default: the context file's, else nats://127.0.0.1:4222)")
	fs.StringVar(&c.ctxFile, "nats-context", "", "nats CLI context file to connect with (default: <data-dir>/"+natsbroker.ContextFile+" when -nats-url is empty)")
	fs.StringVar(&c.dataDir, "data-dir", "./data", "data dir of the embedded server of `make run`, whose context file logs in")
	c.auth.RegisterFlags(fs, "NATS user, e.g. a read-only subscriber")
	fs.StringVar(&c.subject, "subject", "wahook.>", "subject to watch, e.g. 'wahook.ingress.>' or 'wahook.label-changed.>'")
	fs.DurationVar(&c.since, "since", 0, "replay stored events newer than this (e.g. 1h) before following")
	fs.BoolVar(&c.all, "all", false, "replay every stored event before following")
	fs.IntVar(&c.count, "count", 0, "stop after this many events (0: never)")
	fs.BoolVar(&c.pretty, "pretty", false, "indent the JSON")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WAHOOK")); err != nil {
		return c, err
	}
	return c, c.login()
}

// tail prints events until ctx ends or c.count are printed.
func (c config) tail(ctx context.Context, out io.Writer) error {
	opts, err := c.auth.Options()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(c.url, append(opts, nats.Name("wahook-tail"))...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", c.url, err)
	}
	defer nc.Close()

	msgs := make(chan *nats.Msg, 256)
	failed := make(chan error, 1)
	if c.all || c.since > 0 {
		rctx, stop := context.WithCancel(ctx)
		r, err := startReplay(rctx, nc, c)
		if err != nil {
			stop()
			return err
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := r.run(rctx, msgs); err != nil && rctx.Err() == nil {
				failed <- err
			}
		}()
		defer func() { stop(); <-done }()
	} else {
		sub, err := nc.ChanSubscribe(c.subject, msgs)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", c.subject, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}

	enc := json.NewEncoder(out)
	if c.pretty {
		enc.SetIndent("", "  ")
	}
	p := &printer{enc: enc}
	for n := 0; c.count == 0 || n < c.count; n++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-failed:
			return err
		case m := <-msgs:
			if err := p.print(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// login fills the URL and credentials: the flags', else a nats context
// file's (the one `make run` writes into its data dir by default).
func (c *config) login() error {
	path := c.ctxFile
	if path == "" && c.url == "" && c.auth.IsZero() {
		if p := filepath.Join(c.dataDir, natsbroker.ContextFile); fileExists(p) {
			path = p
		}
	}
	if path != "" {
		url, a, err := natsbroker.LoadContext(path)
		if err != nil {
			return err
		}
		if c.url == "" {
			c.url = url
		}
		if c.auth.IsZero() {
			c.auth = a
		}
	}
	if c.url == "" {
		c.url = "nats://127.0.0.1:4222"
	}
	return nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

const (
	// defaultHistoryBatch is how many stored events one direct get asks
	// for; historyMaxBytes stops a batch early (one event always comes).
	defaultHistoryBatch = 256
	historyMaxBytes     = 16 << 20
	// maxSeamBytes bounds the live events held while the history is read.
	maxSeamBytes = 64 << 20
)

// replayer prints the stored events matching a subject, stream by stream,
// then the live ones. Subscribers may not create consumers (README,
// Security), so it reads the history with direct gets and follows with a
// plain subscription, made before the history is read: what is published
// meanwhile arrives live and is held (seam) until the history is read to
// its end. An event both read in the history and received live is printed
// once, from the history, whichever copy comes first (seam.printed). An
// event published just before the subscription is in the history unless
// the stream has not stored it yet when the history ends.
type replayer struct {
	nc      *nats.Conn
	c       config
	streams []string
	// base is each stream's last sequence before the subscription: what
	// it stored up to there cannot arrive live.
	base map[string]uint64
	seam *seam
	sub  *nats.Subscription
}

// startReplay finds the streams holding c.subject and subscribes to the
// live events.
func startReplay(ctx context.Context, nc *nats.Conn, c config) (*replayer, error) {
	limit := c.seamBytes
	if limit == 0 {
		limit = maxSeamBytes
	}
	r := &replayer{nc: nc, c: c, base: map[string]uint64{}, seam: newSeam(limit)}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	lister := js.StreamNames(ctx, jetstream.WithStreamListSubject(c.subject))
	for name := range lister.Name() {
		r.streams = append(r.streams, name)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("streams holding %s: %w", c.subject, err)
	}
	if len(r.streams) == 0 {
		return nil, fmt.Errorf("no stream holds %s", c.subject)
	}
	for _, name := range r.streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("replay %s: %w", name, err)
		}
		r.base[name] = s.CachedInfo().State.LastSeq
	}
	if r.sub, err = nc.Subscribe(c.subject, r.seam.add); err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", c.subject, err)
	}
	// The seam bounds what is held, not nats.go's pending limits.
	if err := r.sub.SetPendingLimits(-1, -1); err != nil {
		_ = r.sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %s: %w", c.subject, err)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		_ = r.sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %s: %w", c.subject, err)
	}
	return r, nil
}

// run sends msgs the history, then the live events, until ctx ends.
func (r *replayer) run(ctx context.Context, msgs chan<- *nats.Msg) error {
	defer func() { _ = r.sub.Unsubscribe() }()
	send := func(m *nats.Msg) error {
		select {
		case msgs <- m:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	batch := r.c.historyBatch
	if batch == 0 {
		batch = defaultHistoryBatch
	}
	for _, stream := range r.streams {
		req := natsbroker.DirectRequest{Seq: 1, NextBySubject: r.c.subject, Batch: batch, MaxBytes: historyMaxBytes}
		if !r.c.all {
			start := time.Now().Add(-r.c.since)
			req.Seq, req.StartTime = 0, &start
		}
		for {
			last, pending, err := natsbroker.DirectBatch(ctx, r.nc, stream, req, func(sm natsbroker.StoredMsg) error {
				m := &nats.Msg{Subject: sm.Subject, Header: sm.Header, Data: sm.Data}
				r.seam.printed(seamKey(m), sm.Sequence > r.base[stream])
				return send(m)
			})
			if err != nil {
				return fmt.Errorf("replay %s: %w", stream, err)
			}
			if r.c.afterBatch != nil {
				r.c.afterBatch()
			}
			if pending == 0 || last == 0 {
				break
			}
			req = natsbroker.DirectRequest{Seq: last + 1, NextBySubject: r.c.subject, Batch: batch, MaxBytes: historyMaxBytes}
		}
	}
	if r.c.atSeam != nil {
		r.c.atSeam()
	}
	for {
		m, err := r.seam.next(ctx)
		if err != nil {
			return err
		}
		if err := send(m); err != nil {
			return err
		}
	}
}

// seamKey tells an event apart from others on its subject: its
// Nats-Msg-Id, which every wahook event has, else its CloudEvent id, else
// its data.
func seamKey(m *nats.Msg) string {
	id := m.Header.Get(jetstream.MsgIDHeader)
	if id == "" {
		id = m.Header.Get("ce-id")
	}
	if id == "" {
		sum := sha256.Sum256(m.Data)
		id = "sha256:" + hex.EncodeToString(sum[:])
	}
	return m.Subject + "\x00" + id
}

// maxRecent bounds the keys of events the history printed that may still
// arrive live.
const maxRecent = 1 << 16

// seam holds live events in arrival order, up to limit bytes (the oldest
// go first: they are in the stream, which the history reads to its end),
// and drops those the history printed.
type seam struct {
	mu    sync.Mutex
	limit int
	bytes int
	queue *list.List // of *nats.Msg
	index map[string][]*list.Element
	added chan struct{}
	// recent are the keys of events stored after the subscription that
	// the history printed, oldest first: their live copies may come
	// later (nats.go hands the history and the live events to different
	// goroutines; in a cluster they take different routes).
	recent     map[string]bool
	recentFIFO []string
}

func newSeam(limit int) *seam {
	return &seam{limit: limit, queue: list.New(), index: map[string][]*list.Element{}, added: make(chan struct{}, 1),
		recent: map[string]bool{}}
}

func msgBytes(m *nats.Msg) int { return len(m.Subject) + len(m.Data) }

// add holds m, unless the history printed it; it is the subscription's
// handler.
func (s *seam) add(m *nats.Msg) {
	s.mu.Lock()
	k := seamKey(m)
	if s.recent[k] {
		s.mu.Unlock()
		return
	}
	s.index[k] = append(s.index[k], s.queue.PushBack(m))
	s.bytes += msgBytes(m)
	for s.bytes > s.limit && s.queue.Len() > 1 {
		s.remove(s.queue.Front())
	}
	s.mu.Unlock()
	select {
	case s.added <- struct{}{}:
	default:
	}
}

// remove drops e; s.mu is held.
func (s *seam) remove(e *list.Element) {
	m := s.queue.Remove(e).(*nats.Msg)
	s.bytes -= msgBytes(m)
	k := seamKey(m)
	rest := s.index[k][:0]
	for _, o := range s.index[k] {
		if o != e {
			rest = append(rest, o)
		}
	}
	if len(rest) == 0 {
		delete(s.index, k)
	} else {
		s.index[k] = rest
	}
}

// printed drops the held copies of the event with key k, which the
// history printed, and, when it was stored after the subscription, any
// copy still to come.
func (s *seam) printed(k string, recent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.index[k]) > 0 {
		s.remove(s.index[k][0])
	}
	if !recent || s.recent[k] {
		return
	}
	s.recent[k] = true
	s.recentFIFO = append(s.recentFIFO, k)
	if len(s.recentFIFO) > maxRecent {
		delete(s.recent, s.recentFIFO[0])
		s.recentFIFO = s.recentFIFO[1:]
	}
}

// next takes the oldest held event, waiting for one.
func (s *seam) next(ctx context.Context) (*nats.Msg, error) {
	for {
		s.mu.Lock()
		if e := s.queue.Front(); e != nil {
			m := e.Value.(*nats.Msg)
			s.remove(e)
			s.mu.Unlock()
			return m, nil
		}
		s.mu.Unlock()
		select {
		case <-s.added:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// line is one printed event: the subject it came on and the CloudEvent.
// A part of a dead letter's body is printed without its data, as Part; a
// dead-letter record whose body is in parts gets the body reassembled from
// the parts printed before it, in Body or BodyBase64.
type line struct {
	Subject    string          `json:"subject"`
	Event      json.RawMessage `json:"event,omitempty"`
	Part       *partLine       `json:"part,omitempty"`
	Body       *string         `json:"body,omitempty"`
	BodyBase64 string          `json:"body_base64,omitempty"`
	Error      string          `json:"error,omitempty"`
	Data       string          `json:"data,omitempty"`
}

type partLine struct {
	DeadLetterID string `json:"deadletter_id"`
	Bytes        int    `json:"bytes"`
}

// maxHeldParts bounds the bytes of dead-letter parts held until their
// record comes; the oldest go first.
const maxHeldParts = 64 << 20

// printer prints events and holds the parts of dead letters until their
// record comes.
type printer struct {
	enc   *json.Encoder
	parts []broker.Message
	held  int
}

func (p *printer) print(m *nats.Msg) error {
	l := line{Subject: m.Subject}
	bm := broker.Message{Header: broker.Header(m.Header), Data: m.Data}
	ev, err := envelope.Decode(bm, envelope.NATS)
	switch {
	case err != nil:
		l.Error, l.Data = err.Error(), string(m.Data)
		return p.enc.Encode(l)
	case ev.Type() == envelope.DeadLetterPartType:
		id, _ := envelope.DeadLetterPart(bm, envelope.NATS)
		p.hold(bm)
		l.Part = &partLine{DeadLetterID: id, Bytes: len(m.Data)}
		ev.DataEncoded = nil
	case ev.Type() == envelope.DeadLetterType:
		p.reassemble(&l, bm)
	}
	if l.Event, err = json.Marshal(ev); err != nil {
		l.Error, l.Data = err.Error(), string(m.Data)
	}
	return p.enc.Encode(l)
}

func (p *printer) hold(m broker.Message) {
	p.parts = append(p.parts, m)
	p.held += len(m.Data)
	for p.held > maxHeldParts {
		p.held -= len(p.parts[0].Data)
		p.parts = p.parts[1:]
	}
}

// reassemble puts the body of a record whose body is in parts into l, and
// lets the parts go.
func (p *printer) reassemble(l *line, m broker.Message) {
	id, d, err := envelope.DecodeDeadLetter(m, envelope.NATS)
	if err != nil || d.BodyParts == nil {
		return
	}
	raw, err := envelope.DeadLetterBody(id, d, p.parts, envelope.NATS)
	if err != nil {
		l.Error = "body in parts: " + err.Error()
		return
	}
	d.SetBody(raw)
	l.Body, l.BodyBase64 = d.Body, d.BodyBase64
	kept := p.parts[:0]
	p.held = 0
	for _, pm := range p.parts {
		if rid, _ := envelope.DeadLetterPart(pm, envelope.NATS); rid != id {
			kept = append(kept, pm)
			p.held += len(pm.Data)
		}
	}
	p.parts = kept
}
