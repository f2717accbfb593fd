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
	"github.com/wahook/wahook/pkg/redrive"
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

// redrive redrives the dead letters selected (pkg/redrive), and prints
// what it did with each one, one JSON line each.
func (c redriveConfig) redrive(ctx context.Context, out io.Writer) error {
	l, closeLog, err := c.eventLog()
	if err != nil {
		return fmt.Errorf("dead letters: %w", err)
	}
	defer closeLog()
	cfg := redrive.Config{Log: l, MaxItems: c.maxItems, Now: c.now}
	if !c.dryRun {
		p, closePub, err := c.publisher(ctx)
		if err != nil {
			return err
		}
		defer closePub()
		cfg.Publisher = p
	}
	r, err := redrive.New(cfg)
	if err != nil {
		return err
	}
	sel := redrive.Selection{IDs: c.ids, Provider: c.provider, Count: c.count, DryRun: c.dryRun, Force: c.force}
	if c.since > 0 {
		sel.Since = time.Now().Add(-c.since)
	}
	if c.until != "" {
		sel.Until, _ = time.Parse(time.RFC3339, c.until)
	}
	enc := json.NewEncoder(out)
	sum, err := r.Run(ctx, sel, func(res redrive.Result) error { return enc.Encode(res) })
	if err != nil {
		return err
	}
	if sum.Refused > 0 {
		return fmt.Errorf("%d dead letters refused (see each line's why)", sum.Refused)
	}
	return nil
}

// publisher connects to the broker to publish, as the ingress does.
func (c redriveConfig) publisher(ctx context.Context) (broker.Publisher, func(), error) {
	if c.broker == "kafka" {
		cfg, err := c.kafkaSecurity.Config(c.brokers(), "wahook-redrive")
		if err != nil {
			return nil, nil, err
		}
		kb, err := kafkabroker.Connect(ctx, cfg)
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
