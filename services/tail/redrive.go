package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/all"
)

// redriveConfig is what `tail redrive` reads and does.
type redriveConfig struct {
	conn
	since    time.Duration
	until    string
	ids      multiFlag
	provider string
	count    int
	maxItems int
	dryRun   bool
	force    bool
	// now is the clock of the redrive notes; time.Now when nil.
	now func() time.Time
}

// redriveLine is what redrive did with one dead letter.
type redriveLine struct {
	DeadLetterID string    `json:"deadletter_id"`
	Provider     string    `json:"provider"`
	Channel      string    `json:"channel,omitempty"`
	Reason       string    `json:"reason"`
	ReceivedAt   time.Time `json:"received_at"`
	// Action is redriven, would_redrive (-dry-run), already_redriven
	// (a note says so; -force redrives it again) or refused.
	Action string   `json:"action"`
	Why    string   `json:"why,omitempty"`
	IDs    []string `json:"ids,omitempty"`
}

func parseRedrive(args []string) (redriveConfig, error) {
	var c redriveConfig
	fs := flag.NewFlagSet("tail redrive", flag.ContinueOnError)
	c.conn.registerFlags(fs)
	fs.DurationVar(&c.since, "since", 0, "dead letters stored this long ago or later (0: every one kept)")
	fs.StringVar(&c.until, "until", "", "dead letters received at this RFC 3339 time or before")
	fs.Var(&c.ids, "id", "only the dead letter with this id (its CloudEvent id); repeatable")
	fs.StringVar(&c.provider, "provider", "", "only this provider's dead letters")
	fs.IntVar(&c.count, "n", 100, "redrive at most this many dead letters")
	fs.IntVar(&c.maxItems, "max-items", 1000, "most items in one delivery, as the ingress's WAHOOK_MAX_ITEMS")
	fs.BoolVar(&c.dryRun, "dry-run", false, "say what would be published, publish nothing")
	fs.BoolVar(&c.force, "force", false, "redrive dead letters a redrive note says were redriven already")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WAHOOK")); err != nil {
		return c, err
	}
	if c.count < 1 {
		return c, fmt.Errorf("-n %d: want 1 or more", c.count)
	}
	if c.until != "" {
		if _, err := time.Parse(time.RFC3339, c.until); err != nil {
			return c, fmt.Errorf("-until: %w", err)
		}
	}
	return c, c.conn.check()
}

func runRedrive(ctx context.Context, args []string, out io.Writer) error {
	c, err := parseRedrive(args)
	if err != nil {
		return err
	}
	return c.redrive(ctx, out)
}

// candidate is a dead-letter record read, with its whole body when it
// could be put together.
type candidate struct {
	id      string
	d       envelope.DeadLetter
	body    []byte
	bodyErr error
}

// redrive reads the dead letters stored up to now, then publishes again,
// through the ingress's own path, those selected and not redriven yet,
// leaving a note beside each so that a later run passes it over.
func (c redriveConfig) redrive(ctx context.Context, out io.Writer) error {
	cands, noted, err := c.read(ctx)
	if err != nil {
		return err
	}
	var pub broker.Publisher
	if !c.dryRun {
		p, closePub, err := c.publisher(ctx)
		if err != nil {
			return err
		}
		defer closePub()
		pub = p
	}
	providers := map[string]provider.Provider{}
	for _, p := range all.Providers() {
		providers[p.Name()] = p
	}
	enc := json.NewEncoder(out)
	now := c.now
	if now == nil {
		now = time.Now
	}
	done, refused := 0, 0
	for _, k := range cands {
		if done >= c.count {
			break
		}
		l := redriveLine{DeadLetterID: k.id, Provider: k.d.Provider, Channel: k.d.Channel, Reason: k.d.Reason, ReceivedAt: k.d.ReceivedAt}
		msgs, ids, err := c.build(providers, k)
		switch {
		case noted[k.id] && !c.force:
			l.Action, l.Why = "already_redriven", "a redrive note says so; -force redrives it again"
		case err != nil:
			l.Action, l.Why = "refused", err.Error()
			refused++
		case c.dryRun:
			l.Action, l.IDs = "would_redrive", ids
			done++
		default:
			if err := pub.Publish(ctx, msgs...); err != nil {
				return fmt.Errorf("redrive %s: %w", k.id, err)
			}
			note, err := envelope.RedrivenMessage(k.d, envelope.Redriven{DeadLetterID: k.id, IDs: ids, RedrivenAt: now().UTC()}, c.binding())
			if err == nil {
				err = pub.Publish(ctx, note)
			}
			if err != nil {
				return fmt.Errorf("redrive %s: raw events published, note not stored (a later run publishes them again, with the same ids): %w", k.id, err)
			}
			l.Action, l.IDs = "redriven", ids
			done++
		}
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	if refused > 0 {
		return fmt.Errorf("%d dead letters refused (see each line's why)", refused)
	}
	return nil
}

// build turns a dead letter into the raw events its delivery gives, or
// says why it cannot.
func (c redriveConfig) build(providers map[string]provider.Provider, k candidate) ([]broker.Message, []string, error) {
	if k.bodyErr != nil {
		return nil, nil, fmt.Errorf("%w: body incomplete, so the delivery would not be the one received: %w", ingress.ErrNotRedeliverable, k.bodyErr)
	}
	if k.d.SourceEventID != "" {
		// Redeliver says why, whatever the provider (a consumer names
		// "unknown" when the raw event named none).
		if p := providers[k.d.Provider]; p != nil {
			return ingress.Redeliver(p, k.d, k.body, c.maxItems, c.binding())
		}
		return nil, nil, fmt.Errorf("%w: a consumer's dead letter of raw event %s, which is in the raw stream: re-derive it by replaying the stream",
			ingress.ErrNotRedeliverable, k.d.SourceEventID)
	}
	p := providers[k.d.Provider]
	if p == nil {
		return nil, nil, fmt.Errorf("%w: no provider %q", ingress.ErrNotRedeliverable, k.d.Provider)
	}
	return ingress.Redeliver(p, k.d, k.body, c.maxItems, c.binding())
}

// read collects the selected dead-letter records stored up to now, in the
// order they were stored, and the ids of those a note says were redriven.
func (c redriveConfig) read(ctx context.Context) ([]candidate, map[string]bool, error) {
	tc := config{conn: c.conn, history: true, all: c.since == 0, since: c.since, offset: -1,
		subject: envelope.DeadLetterTopic + ".>", topics: envelope.DeadLetterTopic}
	if c.provider != "" {
		tc.subject = envelope.DeadLetterSubject(c.provider)
	}
	var until time.Time
	if c.until != "" {
		until, _ = time.Parse(time.RFC3339, c.until)
	}
	want := map[string]bool{}
	for _, id := range c.ids {
		want[id] = true
	}
	src, closeSrc, err := tc.open(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("dead letters: %w", err)
	}
	defer closeSrc()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	msgs := make(chan item, 256)
	failed := make(chan error, 1)
	go func() {
		if err := src(sctx, msgs); err != nil && sctx.Err() == nil {
			failed <- err
		}
	}()
	var held parts
	var cands []candidate
	noted := map[string]bool{}
	b := c.binding()
	for {
		var it item
		var ok bool
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case err := <-failed:
			return nil, nil, fmt.Errorf("dead letters: %w", err)
		case it, ok = <-msgs:
		}
		if !ok {
			return cands, noted, nil
		}
		m := it.msg
		if _, ok := envelope.DeadLetterPart(m, b); ok {
			held.hold(m, b)
			continue
		}
		if id, ok := envelope.DeadLetterRedriven(m, b); ok {
			noted[id] = true
			continue
		}
		id, d, err := envelope.DecodeDeadLetter(m, b)
		if err != nil {
			continue // not a record: nothing to redrive
		}
		if len(want) > 0 && !want[id] || c.provider != "" && d.Provider != c.provider ||
			!until.IsZero() && d.ReceivedAt.After(until) {
			continue
		}
		k := candidate{id: id, d: d}
		if d.BodyParts != nil {
			k.body, k.bodyErr = held.body(id, d, b)
		} else {
			k.body, k.bodyErr = envelope.DeadLetterBody(id, d, nil, b)
		}
		cands = append(cands, k)
	}
}

// publisher connects to the broker to publish, as the ingress does.
func (c redriveConfig) publisher(ctx context.Context) (broker.Publisher, func(), error) {
	if c.broker == "kafka" {
		tlsCfg, err := c.kafkaSecurity.TLSConfig()
		if err != nil {
			return nil, nil, err
		}
		mech, err := c.kafkaSecurity.SASLMechanism()
		if err != nil {
			return nil, nil, err
		}
		kb, err := kafkabroker.Connect(ctx, kafkabroker.Config{Brokers: c.brokers(), ClientID: "wahook-redrive", TLS: tlsCfg, SASL: mech})
		if err != nil {
			return nil, nil, fmt.Errorf("kafka: %w", err)
		}
		return kb, func() { _ = kb.Close(context.Background()) }, nil
	}
	nb, err := natsbroker.Connect(ctx, natsbroker.Config{URL: c.url, Auth: c.auth, Name: "wahook-redrive"})
	if err != nil {
		return nil, nil, fmt.Errorf("nats: %w", err)
	}
	return nb, func() { _ = nb.Close(context.Background()) }, nil
}
