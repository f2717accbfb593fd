// Command tail prints wahook's events as they arrive, or replays them from
// the stream, one CloudEvent per line in the JSON event format: a way to
// watch the raw, derived and dead-letter streams without any other tool.
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
	"path/filepath"
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
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var c config
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.StringVar(&c.url, "nats-url", "", "NATS server URL (default: the context file's, else nats://127.0.0.1:4222)")
	fs.StringVar(&c.ctxFile, "nats-context", "", "nats CLI context file to connect with (default: <data-dir>/"+natsbroker.ContextFile+" when -nats-url is empty)")
	fs.StringVar(&c.dataDir, "data-dir", "./data", "data dir of the embedded server of `make run`, whose context file logs in")
	fs.StringVar(&c.auth.User, "nats-user", "", "NATS user, e.g. a read-only subscriber")
	fs.StringVar(&c.auth.Password, "nats-password", "", "password of -nats-user")
	fs.StringVar(&c.auth.Token, "nats-token", "", "NATS authorization token")
	fs.StringVar(&c.auth.CredsFile, "nats-creds", "", "NATS creds file")
	fs.StringVar(&c.auth.NKeyFile, "nats-nkey", "", "file holding an nkey seed")
	fs.StringVar(&c.auth.TLSCA, "nats-tls-ca", "", "PEM file of the CAs of the server's certificate (turns TLS on)")
	fs.StringVar(&c.auth.TLSCert, "nats-tls-cert", "", "client certificate (PEM)")
	fs.StringVar(&c.auth.TLSKey, "nats-tls-key", "", "client key (PEM)")
	fs.StringVar(&c.subject, "subject", "wahook.>", "subject to watch, e.g. 'wahook.ingress.>' or 'wahook.label-changed.>'")
	fs.DurationVar(&c.since, "since", 0, "replay stored events newer than this (e.g. 1h) before following")
	fs.BoolVar(&c.all, "all", false, "replay every stored event before following")
	fs.IntVar(&c.count, "count", 0, "stop after this many events (0: never)")
	fs.BoolVar(&c.pretty, "pretty", false, "indent the JSON")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WAHOOK")); err != nil {
		return err
	}
	if err := c.login(); err != nil {
		return err
	}
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
	if c.all || c.since > 0 {
		stop, err := replay(ctx, nc, c, msgs)
		if err != nil {
			return err
		}
		defer stop()
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

// replay feeds msgs from an ordered consumer on every stream holding
// subjects that match, starting at the requested point and then following
// new events; events of different streams interleave.
func replay(ctx context.Context, nc *nats.Conn, c config, msgs chan<- *nats.Msg) (func(), error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	var names []string
	lister := js.StreamNames(ctx, jetstream.WithStreamListSubject(c.subject))
	for name := range lister.Name() {
		names = append(names, name)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("streams holding %s: %w", c.subject, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no stream holds %s", c.subject)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{c.subject}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !c.all {
		start := time.Now().Add(-c.since)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	var stops []func()
	stop := func() {
		for _, s := range stops {
			s()
		}
	}
	for _, name := range names {
		cons, err := js.OrderedConsumer(ctx, name, cfg)
		if err != nil {
			stop()
			return nil, fmt.Errorf("replay %s: %w", name, err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			select {
			case msgs <- &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}:
			case <-ctx.Done():
			}
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("replay %s: %w", name, err)
		}
		stops = append(stops, cc.Stop)
	}
	return stop, nil
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
