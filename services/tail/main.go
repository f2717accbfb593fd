// Command tail prints wahook's events as they arrive, or replays them from
// the stream, one CloudEvent per line in the JSON event format: a way to
// watch the raw, derived and dead-letter streams without any other tool,
// on NATS or Kafka. `tail redrive` publishes dead-lettered deliveries
// again (see redrive.go).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/peterbourgon/ff/v3"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "tail:", err)
		os.Exit(1)
	}
}

// conn is how tail and redrive reach the broker: the services' own
// settings (WAHOOK_BROKER, WAHOOK_NATS_*, WAHOOK_KAFKA_*).
type conn struct {
	broker  string
	url     string
	ctxFile string
	dataDir string
	auth    natsbroker.Auth

	kafkaBrokers  string
	kafkaSecurity kafkabroker.Security
}

func (c *conn) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.broker, "broker", "nats", "event broker: nats or kafka")
	fs.StringVar(&c.url, "nats-url", "", "NATS server URL (default: the context file's, else nats://127.0.0.1:4222)")
	fs.StringVar(&c.ctxFile, "nats-context", "", "nats CLI context file to connect with (default: <data-dir>/"+natsbroker.ContextFile+" when -nats-url is empty)")
	fs.StringVar(&c.dataDir, "data-dir", "./data", "data dir of the embedded server of `make run`, whose context file logs in")
	c.auth.RegisterFlags(fs, "NATS user, e.g. a read-only subscriber")
	fs.StringVar(&c.kafkaBrokers, "kafka-brokers", "", "Kafka bootstrap brokers, comma-separated (with -broker kafka)")
	c.kafkaSecurity.RegisterFlags(fs)
}

func (c *conn) check() error {
	switch c.broker {
	case "nats":
		return c.login()
	case "kafka":
		if len(c.brokers()) == 0 {
			return errors.New("-broker kafka needs -kafka-brokers (WAHOOK_KAFKA_BROKERS)")
		}
		return nil
	}
	return fmt.Errorf("broker %q: want nats or kafka", c.broker)
}

func (c *conn) brokers() []string {
	var out []string
	for _, b := range strings.Split(c.kafkaBrokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// eventLog opens the streams for reading, with opts.
func (c *conn) eventLog(opts ...eventlog.Option) (*eventlog.Log, func(), error) {
	if c.broker == "kafka" {
		l, err := eventlog.NewKafka(c.brokers(), c.kafkaSecurity, append([]eventlog.Option{eventlog.WithClientID("wahook-tail")}, opts...)...)
		if err != nil {
			return nil, nil, err
		}
		return l, func() { _ = l.Close() }, nil
	}
	nopts, err := c.auth.Options()
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(c.url, append(nopts, nats.Name("wahook-tail"))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", c.url, err)
	}
	l, err := eventlog.NewNATS(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return l, func() {
		_ = l.Close()
		nc.Close()
	}, nil
}

// kafkaTopics are wahook's event topics (not its state topics).
func kafkaTopics() []string {
	t := []string{envelope.IngressTopic, envelope.DeadLetterTopic}
	for _, s := range derive.Streams {
		t = append(t, envelope.DerivedTopic(s))
	}
	return t
}

// multiFlag is a flag that may be given several times.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type config struct {
	conn
	subject string
	topics  string
	since   time.Duration
	all     bool
	stored  bool
	offset  int64
	count   int
	idle    time.Duration
	pretty  bool
	data    bool
	types   multiFlag
	chats   multiFlag
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && args[0] == "redrive" {
		return runRedrive(ctx, args[1:], out)
	}
	c, err := parse(args)
	if err != nil {
		return err
	}
	return c.tail(ctx, out)
}

func parse(args []string) (config, error) {
	c := config{offset: -1}
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	c.conn.registerFlags(fs)
	fs.StringVar(&c.subject, "subject", "wahook.>", "NATS: subject to watch, e.g. 'wahook.ingress.>' or 'wahook.label-changed.>'")
	fs.StringVar(&c.topics, "topic", strings.Join(kafkaTopics(), ","), "Kafka: topics to watch, comma-separated")
	fs.DurationVar(&c.since, "since", 0, "replay stored events newer than this (e.g. 1h) before following")
	fs.BoolVar(&c.all, "all", false, "replay every stored event before following")
	fs.BoolVar(&c.stored, "stored", false, "print the stored events (from -since, else every one kept) page by page, at most "+strconv.Itoa(maxStored)+", then stop instead of following")
	fs.Int64Var(&c.offset, "offset", -1, "Kafka: start at this offset in every partition (the first one kept when it is gone)")
	fs.IntVar(&c.count, "count", 0, "stop after this many events printed (0: never)")
	fs.IntVar(&c.count, "n", 0, "short for -count")
	fs.DurationVar(&c.idle, "idle", 0, "stop when no event has come for this long (0: never)")
	fs.BoolVar(&c.pretty, "pretty", false, "indent the JSON")
	fs.BoolVar(&c.data, "data", false, "print only each event's data, one JSON value per line")
	fs.Var(&c.types, "type", "print only events of this CloudEvent type, exact or a glob (io.wahook.label.*); repeatable")
	fs.Var(&c.chats, "chat", "print only events about this chat (raw events' subject, derived events' chat_id), canonicalised as wahook does (+55 11 9..., ...@c.us); repeatable")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WAHOOK")); err != nil {
		return c, err
	}
	if c.offset >= 0 && c.broker != "kafka" {
		return c, errors.New("-offset applies to Kafka; on NATS use -since or -all")
	}
	for _, t := range c.types {
		if _, err := path.Match(t, ""); err != nil {
			return c, fmt.Errorf("-type %q: %w", t, err)
		}
	}
	return c, c.conn.check()
}

// source sends the events to msgs until ctx ends, or, reading what is
// stored (-stored), until there is no more.
type source func(ctx context.Context, msgs chan<- eventlog.Record) error

// maxStored bounds the events -stored reads: its pages go on from one
// another's end (eventlog.Page.Next) up to it.
const maxStored = 100_000

// open starts following as configured: from a time (-since, -all), an
// offset (-offset) or now. Every event read is sent: -type and -chat are the
// printer's, which holds dead letters' parts whatever they select.
func (c config) open() (source, func(), error) {
	opts := []eventlog.Option{eventlog.WithNATSSubject(c.subject)}
	if c.broker == "kafka" {
		var topics []string
		for _, t := range strings.Split(c.topics, ",") {
			if t = strings.TrimSpace(t); t != "" {
				topics = append(topics, t)
			}
		}
		if len(topics) == 0 {
			return nil, nil, errors.New("no topic to read")
		}
		opts = []eventlog.Option{eventlog.WithKafkaTopics(topics...)}
		if c.offset >= 0 {
			opts = append(opts, eventlog.WithKafkaOffset(c.offset))
		}
	}
	l, closeLog, err := c.eventLog(opts...)
	if err != nil {
		return nil, nil, err
	}
	var q eventlog.Query
	switch {
	case c.all:
		q.Since = time.Unix(0, 0) // before anything kept
	case c.since > 0:
		q.Since = time.Now().Add(-c.since)
	}
	send := func(ctx context.Context, msgs chan<- eventlog.Record, r eventlog.Record) error {
		select {
		case msgs <- r:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if c.stored {
		return func(ctx context.Context, msgs chan<- eventlog.Record) error {
			q.Limit = eventlog.MaxLimit
			return pages(ctx, l, q, maxStored, func(r eventlog.Record) error { return send(ctx, msgs, r) })
		}, closeLog, nil
	}
	return func(ctx context.Context, msgs chan<- eventlog.Record) error {
		return l.Follow(ctx, q, func(r eventlog.Record) error { return send(ctx, msgs, r) })
	}, closeLog, nil
}

// pages passes fn the events q selects, a page of q.Limit at a time, each
// page going on from the last one's end, until the range's end or bound
// events.
func pages(ctx context.Context, l *eventlog.Log, q eventlog.Query, bound int, fn func(eventlog.Record) error) error {
	for n := 0; n < bound; {
		q.Limit = min(q.Limit, bound-n)
		p, err := l.Query(ctx, q)
		if err != nil {
			return err
		}
		for _, r := range p.Records {
			if err := fn(r); err != nil {
				return err
			}
		}
		n += len(p.Records)
		if p.Next == nil {
			return nil
		}
		q.After = p.Next
	}
	return fmt.Errorf("stopped after %d stored events: narrow -since", bound)
}

// tail prints events until ctx ends, c.count are printed or nothing came
// for c.idle.
func (c config) tail(ctx context.Context, out io.Writer) error {
	src, closeSrc, err := c.open()
	if err != nil {
		return err
	}
	defer closeSrc()
	sctx, stop := context.WithCancel(ctx)
	msgs := make(chan eventlog.Record, 256)
	failed := make(chan error, 1)
	done := make(chan struct{})
	// ended is closed when the source stops on its own (-stored): once
	// its events are printed, so is tail.
	ended := make(chan struct{})
	go func() {
		defer close(done)
		if err := src(sctx, msgs); err != nil && sctx.Err() == nil {
			failed <- err
			return
		}
		close(ended)
	}()
	defer func() { stop(); <-done }()

	enc := json.NewEncoder(out)
	if c.pretty {
		enc.SetIndent("", "  ")
	}
	p := &printer{enc: enc, data: c.data, match: c.filter()}
	var idle <-chan time.Time
	var timer *time.Timer
	if c.idle > 0 {
		timer = time.NewTimer(c.idle)
		defer timer.Stop()
		idle = timer.C
	}
	finished := false
	for n := 0; c.count == 0 || n < c.count; {
		if finished && len(msgs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-failed:
			return err
		case <-idle:
			return nil
		case <-ended:
			ended, finished = nil, true // its events are all in msgs
		case m := <-msgs:
			printed, err := p.print(m)
			if err != nil {
				return err
			}
			if printed {
				n++
			}
			if timer != nil {
				timer.Reset(c.idle)
			}
		}
	}
	return nil
}

// filter is what -type and -chat select, given an event's type and the
// chats it names (subject, chat_id); nil selects everything.
func (c config) filter() func(typ string, chats ...string) bool {
	if len(c.types) == 0 && len(c.chats) == 0 {
		return nil
	}
	chats := map[string]bool{}
	for _, ch := range c.chats {
		chats[chatid.ID(ch)] = true
		chats[ch] = true
	}
	return func(typ string, about ...string) bool {
		if len(c.types) > 0 {
			ok := false
			for _, t := range c.types {
				if m, _ := path.Match(t, typ); m || t == typ {
					ok = true
					break
				}
			}
			if !ok {
				return false
			}
		}
		if len(chats) == 0 {
			return true
		}
		for _, ch := range about {
			if ch != "" && chats[ch] {
				return true
			}
		}
		return false
	}
}

// login fills the URL and credentials: the flags', else a nats context
// file's (the one `make run` writes into its data dir by default).
func (c *conn) login() error {
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
