package consumer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/call"
	"github.com/wahook/wahook/pkg/derive/chat"
	"github.com/wahook/wahook/pkg/derive/group"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/tracing"
)

// Streams says which derived streams a process runs and how.
type Streams struct {
	// Names are derived stream names; "all" means every stream.
	Names []string
	// GroupPrefix names the durable consumers: GroupPrefix + stream.
	// A new prefix with a StartTime replays the raw stream from then on.
	GroupPrefix string
	StartTime   time.Time
	Concurrency int
	// Partition and Partitions split the chats among instances.
	Partition, Partitions int
	// MaxAttempts: see Config.MaxAttempts.
	MaxAttempts int
}

// ParseNames reads a comma-separated stream list ("all" for every stream).
func ParseNames(s string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
			continue
		case n == "all":
			names = append([]string(nil), derive.Streams...)
			return names, nil
		}
		known := false
		for _, s := range derive.Streams {
			known = known || s == n
		}
		if !known {
			return nil, fmt.Errorf("unknown derived stream %q (want %s or all)", n, strings.Join(derive.Streams, ", "))
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names, nil
}

// Deps are what the consumers of a process share.
type Deps struct {
	Subscriber broker.Subscriber
	Publisher  broker.Publisher
	Binding    envelope.Binding
	Labels     derive.LabelRegistry
	Chats      derive.ChatRegistry
	// Aliases ties contacts' LIDs to their phone-number ids; every stream
	// learns the pairs of the raw events it reads.
	Aliases derive.AliasRegistry
	// Dedup is set on brokers without a duplicate window.
	Dedup Dedup
	// Times fixes the time of raw events stamped at receipt.
	Times     derive.TimeRegistry
	Providers []provider.Provider
	Metrics   *Metrics
	Logger    *zap.Logger
	// Tracer traces the consumers' work; nil is tracing off.
	Tracer *tracing.Tracer
}

// Deriver returns the deriver of a stream.
func (d Deps) Deriver(stream string) (derive.Deriver, error) {
	switch stream {
	case derive.LabelChanged:
		return label.Deriver{Registry: d.Labels, Aliases: d.Aliases}, nil
	case derive.ChatCreated:
		return chat.Deriver{Registry: d.Chats, Aliases: d.Aliases}, nil
	case derive.Call:
		return call.Deriver{Aliases: d.Aliases}, nil
	case derive.GroupNotification:
		return group.Deriver{Aliases: d.Aliases}, nil
	}
	return nil, fmt.Errorf("unknown derived stream %q", stream)
}

// Run runs every stream of s until ctx is done; each is its own durable
// consumer, so each keeps its own position, retries and replays alone.
func (s Streams) Run(ctx context.Context, d Deps) error {
	d = d.observe()
	consumers := make([]*Consumer, 0, len(s.Names))
	for _, name := range s.Names {
		dr, err := d.Deriver(name)
		if err != nil {
			return err
		}
		c, err := New(Config{
			Deriver:     dr,
			Providers:   d.Providers,
			Subscriber:  d.Subscriber,
			Publisher:   d.Publisher,
			Binding:     d.Binding,
			Group:       s.GroupPrefix + name,
			StartTime:   s.StartTime,
			Concurrency: s.Concurrency,
			Partition:   s.Partition,
			Partitions:  s.Partitions,
			MaxAttempts: s.MaxAttempts,
			Dedup:       d.Dedup,
			Times:       d.Times,
			Metrics:     d.Metrics,
			Logger:      d.Logger,
			Tracer:      d.Tracer,
		})
		if err != nil {
			return err
		}
		consumers = append(consumers, c)
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, c := range consumers {
		g.Go(func() error { return c.Run(ctx) })
	}
	return g.Wait()
}
