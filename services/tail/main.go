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
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/peterbourgon/ff/v3"

	"github.com/wahook/wahook/pkg/broker"
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
	subject string
	since   time.Duration
	all     bool
	count   int
	pretty  bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var c config
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.StringVar(&c.url, "nats-url", "", "NATS server URL (default: the embedded server of `make run`, nats://127.0.0.1:4222)")
	fs.StringVar(&c.subject, "subject", "wahook.>", "subject to watch, e.g. 'wahook.ingress.>' or 'wahook.label-changed.>'")
	fs.DurationVar(&c.since, "since", 0, "replay stored events newer than this (e.g. 1h) before following")
	fs.BoolVar(&c.all, "all", false, "replay every stored event before following")
	fs.IntVar(&c.count, "count", 0, "stop after this many events (0: never)")
	fs.BoolVar(&c.pretty, "pretty", false, "indent the JSON")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WAHOOK")); err != nil {
		return err
	}
	if c.url == "" {
		c.url = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(c.url, nats.Name("wahook-tail"))
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
	for n := 0; c.count == 0 || n < c.count; n++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-msgs:
			if err := printMsg(enc, m); err != nil {
				return err
			}
		}
	}
	return nil
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
type line struct {
	Subject string          `json:"subject"`
	Event   json.RawMessage `json:"event,omitempty"`
	Error   string          `json:"error,omitempty"`
	Data    string          `json:"data,omitempty"`
}

func printMsg(enc *json.Encoder, m *nats.Msg) error {
	l := line{Subject: m.Subject}
	ev, err := envelope.Decode(broker.Message{Header: broker.Header(m.Header), Data: m.Data}, envelope.NATS)
	if err != nil {
		l.Error, l.Data = err.Error(), string(m.Data)
	} else if l.Event, err = json.Marshal(ev); err != nil {
		l.Error, l.Data = err.Error(), string(m.Data)
	}
	return enc.Encode(l)
}
