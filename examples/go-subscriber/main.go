// Command go-subscriber reads one of wahook's derived streams with
// pkg/subscribe, from NATS (the durable consumer wahook keeps for the
// subscriber) or Kafka (a consumer group of its own), and prints each event
// on one line: its type, id, subject and typed data.
//
//	go run ./examples/go-subscriber -nats-user reader -nats-password ... -consumer sub-reader-labels
//	go run ./examples/go-subscriber -broker kafka -kafka-brokers 127.0.0.1:9092 -stream label-changed -group billing
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/wahook/wahook/pkg/subscribe"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("go-subscriber", flag.ContinueOnError)
	brk := fs.String("broker", "nats", "nats or kafka")
	natsURL := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server")
	user := fs.String("nats-user", "", "NATS user (a subscriber of WAHOOK_NATS_SUBSCRIBERS)")
	pass := fs.String("nats-password", os.Getenv("NATS_PASSWORD"), "its password (default $NATS_PASSWORD)")
	consumer := fs.String("consumer", "", "NATS durable consumer to bind to, e.g. sub-reader-labels")
	brokers := fs.String("kafka-brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	stream := fs.String("stream", "label-changed", "Kafka: the derived stream to read")
	group := fs.String("group", "go-subscriber", "Kafka consumer group")
	count := fs.Int("count", 0, "stop after this many events (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var printed atomic.Int64
	handle := func(_ context.Context, ev event.Event) error {
		data, err := subscribe.Data(ev)
		if err != nil {
			return err // retried: a newer schema needs a newer subscriber
		}
		line, err := json.Marshal(struct {
			Type    string `json:"type"`
			ID      string `json:"id"`
			Subject string `json:"subject,omitempty"`
			Data    any    `json:"data"`
		}{ev.Type(), ev.ID(), ev.Subject(), data})
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(out, "%s\n", line); err != nil {
			return err
		}
		if n := printed.Add(1); *count > 0 && n >= int64(*count) {
			cancel()
		}
		return nil
	}
	onError := func(where string, err error) { log.Printf("%s: %v", where, err) }

	switch *brk {
	case "nats":
		nc, err := nats.Connect(*natsURL, nats.UserInfo(*user, *pass), nats.Name("go-subscriber"))
		if err != nil {
			return fmt.Errorf("connect %s: %w", *natsURL, err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		return subscribe.NATS{JS: js, Consumer: *consumer, OnError: onError}.Run(ctx, handle)
	case "kafka":
		return subscribe.Kafka{
			Reader:  kafka.ReaderConfig{Brokers: strings.Split(*brokers, ","), GroupID: *group, Topic: subscribe.Topic(*stream)},
			OnError: onError,
		}.Run(ctx, handle)
	}
	return fmt.Errorf("unknown broker %q", *brk)
}
