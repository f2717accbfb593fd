package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
)

// serveKafka serves a Kafka-protocol broker (kfake, one broker, in memory)
// on addr until ctx ends: no Kafka can be installed here, and kfake is what
// the tests use. It measures what wahook adds on Kafka, not a Kafka
// cluster.
func serveKafka(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("kafka", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9092", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(kafkabroker.DefaultPartitions),
		// kfake listens on 127.0.0.1 and a port of its choosing otherwise.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, *addr) }),
	)
	if err != nil {
		return fmt.Errorf("kfake on %s: %w", *addr, err)
	}
	defer c.Close()
	fmt.Fprintln(out, "kafka (kfake) listening on", c.ListenAddrs()[0])
	<-ctx.Done()
	return nil
}
