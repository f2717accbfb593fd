package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/admin"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/envelope/envelopetest"
	"github.com/wahook/wahook/pkg/gctune"
)

// The reference's stream and subject.
const (
	referenceStream  = "LOADGEN_REFERENCE"
	referenceSubject = "loadgen.reference"
)

// reference serves the baseline: read the body, publish it to JetStream,
// wait for the PubAck, answer 200. Nothing else. With -headers it publishes
// what the contract puts on every raw event too (the ce-* headers,
// content-type and a unique Nats-Msg-Id): the limit of any ingress that
// follows the contract.
func reference(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reference", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	url := fs.String("nats-url", "", "NATS server (default: the context file's)")
	ctxFile := fs.String("nats-context", "", "nats CLI context file that logs in, e.g. <data-dir>/"+natsbroker.ContextFile+" of the embedded server")
	headers := fs.Bool("headers", false, "publish with the contract's headers and a unique Nats-Msg-Id")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file, to set the ingress's beside")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		stop, err := admin.StartCPUProfile(*cpuProfile, zap.NewNop())
		if err != nil {
			return err
		}
		defer stop()
	}
	// The services' garbage collector pacing, so that the ratios compare
	// the work done and not the pacing.
	if _, err := gctune.Apply(os.Getenv, memlimit.FromCgroup); err != nil {
		return err
	}
	var auth natsbroker.Auth
	if *ctxFile != "" {
		u, a, err := natsbroker.LoadContext(*ctxFile)
		if err != nil {
			return err
		}
		auth = a
		if *url == "" {
			*url = u
		}
	}
	if *url == "" {
		*url = "nats://127.0.0.1:4222"
	}
	opts, err := auth.Options()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(*url, append(opts, nats.Name("wahook-loadgen-reference"))...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", *url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: referenceStream, Subjects: []string{referenceSubject}, Storage: jetstream.FileStorage, MaxAge: time.Hour,
	}); err != nil {
		return fmt.Errorf("reference stream: %w", err)
	}
	// Ids are unique to this process: runs against one server stay
	// distinct within its duplicate window.
	run, n := rand.Uint64(), atomic.Int64{}
	// The ingress's own timeouts, so that both sides are measured alike.
	srv := admin.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		msg := &nats.Msg{Subject: referenceSubject, Data: body}
		var opts []jetstream.PublishOpt
		if *headers {
			id := envelopetest.ID(run, n.Add(1))
			msg.Header = nats.Header(envelopetest.Reference(id, body, envelope.NATS).Header)
			opts = append(opts, jetstream.WithMsgID(id))
		}
		if _, err := js.PublishMsg(r.Context(), msg, opts...); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}), admin.WebhookTimeouts, nil)
	srv.Addr = *addr
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
