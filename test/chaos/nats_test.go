package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
)

// TestChaosNATS runs the pipeline on a nats-server process with the
// ingress and one deriver as processes of their own, and under load kills
// the broker (SIGKILL) and restarts it on its store, stops it (SIGTERM)
// and restarts it, and kills the deriver (SIGKILL) while it holds raw
// events unacknowledged and restarts it: once each in the short variant,
// twice each (and a deriver SIGTERM) in the long one.
func TestChaosNATS(t *testing.T) {
	if !*longRun {
		t.Parallel()
	}
	h := newHarness(t, "nats")
	ctx := t.Context()
	srv := h.natsServer()
	if err := srv.start(ctx); err != nil {
		t.Fatal(err)
	}
	b := &natsBackend{srv: srv}
	_, url := h.startIngress(ctx, b)
	der := h.derivers(ctx, b, 1)[0]

	brokerKill := fault{"broker SIGKILL", nil, func(ctx context.Context) (string, error) {
		srv.svc.current().kill()
		return srv.restart(ctx, url)
	}}
	brokerStop := fault{"broker SIGTERM", nil, func(ctx context.Context) (string, error) {
		if err := srv.svc.current().stop(time.Minute); err != nil {
			return "", err
		}
		return srv.restart(ctx, url)
	}}
	deriverKill := fault{"deriver SIGKILL", nil, func(ctx context.Context) (string, error) {
		held, err := b.busy(ctx, der.current())
		if err != nil {
			return "", err
		}
		der.current().kill()
		der.start()
		if err := der.up(ctx); err != nil {
			return "", err
		}
		return fmt.Sprintf(" holding %s unacknowledged, restarted at once", held), nil
	}}
	deriverStop := fault{"deriver SIGTERM", nil, func(ctx context.Context) (string, error) {
		began := time.Now()
		if err := der.current().stop(time.Minute); err != nil {
			return "", err
		}
		stopped := time.Since(began)
		der.start()
		if err := der.up(ctx); err != nil {
			return "", err
		}
		return fmt.Sprintf(", stopped in %.1fs, restarted", stopped.Seconds()), nil
	}}
	faults := []fault{brokerKill, deriverKill, brokerStop}
	if *longRun {
		faults = []fault{brokerKill, deriverKill, brokerStop, deriverStop, brokerKill, deriverKill, brokerStop}
	}
	h.run(ctx, b, url, faults)
	h.finish(srv.svc)
}

// natsServer is a nats-server process with JetStream, restarted on the
// same port and store.
type natsServer struct {
	h     *harness
	svc   *service
	port  int
	store string
	// password is the wahook user's: the server refuses anonymous
	// clients, as in production.
	password string
}

func (h *harness) natsServer() *natsServer {
	h.t.Helper()
	s := &natsServer{h: h, port: freePort(h.t), store: filepath.Join(h.dir, "jetstream"), password: nuid.Next()}
	conf := filepath.Join(h.dir, "nats-server.conf")
	// The server as make run embeds it: JetStream on files with
	// nats-server's default sync interval, whose writes survive a crash
	// of the process (not a power loss), payloads up to 8 MiB, and a login.
	text := fmt.Sprintf("server_name: wahook-chaos\nlisten: 127.0.0.1:%d\nmax_payload: 8MB\n"+
		"authorization {\n  user: wahook\n  password: %q\n}\njetstream {\n  store_dir: %q\n}\n", s.port, s.password, s.store)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
	s.svc = h.service("nats-server", h.bins.natsServer, []string{"-c", conf}, nil)
	return s
}

func (s *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// env is how wahook's services reach the server.
func (s *natsServer) env() []string {
	return []string{"WAHOOK_BROKER=nats", "WAHOOK_NATS_URL=" + s.url(), "WAHOOK_NATS_USER=wahook", "WAHOOK_NATS_PASSWORD=" + s.password}
}

// connect opens the checker's own connection.
func (s *natsServer) connect() (*nats.Conn, error) {
	return nats.Connect(s.url(), nats.Name("wahook-chaos-checker"), nats.UserInfo("wahook", s.password), nats.Timeout(2*time.Second),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
}

func (s *natsServer) start(ctx context.Context) error {
	s.svc.start()
	return s.waitReady(ctx)
}

// waitReady polls until JetStream answers.
func (s *natsServer) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for {
		if s.svc.current().exited() {
			return fmt.Errorf("nats-server exited: %v\n%s", s.svc.current().err, tail(s.svc.current().log, 30))
		}
		nc, err := s.connect()
		if err == nil {
			js, jerr := jetstream.New(nc)
			if jerr == nil {
				_, jerr = js.AccountInfo(ctx)
			}
			nc.Close()
			if jerr == nil {
				return nil
			}
			err = jerr
		}
		last = err
		if pause(ctx, 100*time.Millisecond) != nil {
			return fmt.Errorf("nats-server not ready within a minute: %v\n%s", last, tail(s.svc.current().log, 30))
		}
	}
}

// restart starts the server again after the outage and waits until the
// ingress is ready again.
func (s *natsServer) restart(ctx context.Context, ingressURL string) (string, error) {
	down := time.Now()
	if err := pause(ctx, s.h.plan.outage); err != nil {
		return "", err
	}
	if err := s.start(ctx); err != nil {
		return "", err
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := waitReady(rctx, ingressURL); err != nil {
		return "", fmt.Errorf("ingress after the broker's restart: %w", err)
	}
	return fmt.Sprintf(", ingress ready again %.1fs later", time.Since(down).Seconds()), nil
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// busyEvents is the backlog of label-changed raw events a deriver is made
// to take in before it is killed: labels are the state whose outcome
// depends most on order, and at 5 events/s per channel a backlog of 30
// keeps a deriver busy for a while.
const busyEvents = 30

// busy makes the deriver hold raw events unacknowledged, so that a kill
// hits work in flight rather than an idle process: it freezes the deriver
// (SIGSTOP) until a backlog of label-changed events builds up, lets it go
// on (SIGCONT) and returns as soon as the server has delivered it the
// whole backlog, saying what it then holds unacknowledged. Each step polls
// with a deadline; the last condition stays true once reached.
func (b *natsBackend) busy(ctx context.Context, p *proc) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return "", err
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	label, err := natsbroker.ConsumerName("wahook-"+derive.LabelChanged, 0, 1)
	if err != nil {
		return "", err
	}
	var backlog uint64
	if err := b.poll(ctx, func(infos map[string]*jetstream.ConsumerInfo) bool {
		i := infos[label]
		backlog = i.Delivered.Stream + i.NumPending
		return i.NumPending+uint64(i.NumAckPending) >= busyEvents
	}); err != nil {
		return "", fmt.Errorf("no backlog while the deriver was stopped: %w", err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return "", err
	}
	resumed = true
	var held map[string]*jetstream.ConsumerInfo
	if err := b.poll(ctx, func(infos map[string]*jetstream.ConsumerInfo) bool {
		held = infos
		return infos[label].Delivered.Stream >= backlog
	}); err != nil {
		return "", fmt.Errorf("the deriver did not take its backlog in: %w", err)
	}
	var parts []string
	for _, st := range derive.Streams {
		name, _ := natsbroker.ConsumerName("wahook-"+st, 0, 1)
		parts = append(parts, fmt.Sprintf("%s %d", st, held[name].NumAckPending))
	}
	return strings.Join(parts, ", "), nil
}

// poll reads the derived streams' consumers until done holds of them.
func (b *natsBackend) poll(ctx context.Context, done func(map[string]*jetstream.ConsumerInfo) bool) error {
	nc, js, err := b.js()
	if err != nil {
		return err
	}
	defer nc.Close()
	for {
		infos := map[string]*jetstream.ConsumerInfo{}
		for _, st := range derive.Streams {
			name, err := natsbroker.ConsumerName("wahook-"+st, 0, 1)
			if err != nil {
				return err
			}
			c, err := js.Consumer(ctx, natsbroker.IngressStream, name)
			if err == nil {
				infos[name], err = c.Info(ctx)
			}
			if err != nil {
				return fmt.Errorf("consumer %s: %w", name, err)
			}
		}
		if done(infos) {
			return nil
		}
		if err := pause(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

// natsBackend checks a run on NATS through a connection of its own.
type natsBackend struct {
	srv *natsServer
}

func (b *natsBackend) env() []string             { return b.srv.env() }
func (b *natsBackend) binding() envelope.Binding { return envelope.NATS }
func (b *natsBackend) atLeastOnce() bool         { return false }

func (b *natsBackend) js() (*nats.Conn, jetstream.JetStream, error) {
	nc, err := b.srv.connect()
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// behind: what the derived streams' durable consumers have pending or
// delivered unacknowledged.
func (b *natsBackend) behind(ctx context.Context) (int64, string, error) {
	var left int64
	var where []string
	err := b.poll(ctx, func(infos map[string]*jetstream.ConsumerInfo) bool {
		for _, st := range derive.Streams {
			name, _ := natsbroker.ConsumerName("wahook-"+st, 0, 1)
			i := infos[name]
			if n := int64(i.NumPending) + int64(i.NumAckPending); n > 0 {
				left += n
				where = append(where, fmt.Sprintf("%s: %d pending, %d unacknowledged (%d redelivered)",
					name, i.NumPending, i.NumAckPending, i.NumRedelivered))
			}
		}
		return true
	})
	return left, strings.Join(where, "; "), err
}

func (b *natsBackend) derivedCount(ctx context.Context) (int64, error) {
	nc, js, err := b.js()
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	s, err := js.Stream(ctx, natsbroker.DerivedStream)
	if err != nil {
		return 0, err
	}
	return int64(s.CachedInfo().State.Msgs), nil
}

// read returns every message of a stream in sequence order.
func (b *natsBackend) read(ctx context.Context, name string) ([]jetstream.Msg, error) {
	nc, js, err := b.js()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	var out []jetstream.Msg
	for {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("stream %s: %w", name, err)
			}
			out = append(out, m)
			if md.Sequence.Stream >= st.LastSeq {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("stream %s: read %d of %d messages: %w", name, len(out), st.Msgs, err)
		}
	}
}

func message(m jetstream.Msg) (record, error) {
	md, err := m.Metadata()
	if err != nil {
		return record{}, err
	}
	h := broker.Header(m.Headers())
	return record{
		pos:   int(md.Sequence.Stream),
		where: fmt.Sprintf("seq %d", md.Sequence.Stream),
		msg: broker.Message{Subject: m.Subject(), Key: broker.UnescapeHeader(h.Get(natsbroker.KeyHeader)),
			Header: h, Data: m.Data()},
	}, nil
}

func (b *natsBackend) raw(ctx context.Context) ([]record, error) {
	msgs, err := b.read(ctx, natsbroker.IngressStream)
	if err != nil {
		return nil, err
	}
	out := make([]record, 0, len(msgs))
	for _, m := range msgs {
		r, err := message(m)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (b *natsBackend) derived(ctx context.Context) ([]derivedRecord, error) {
	msgs, err := b.read(ctx, natsbroker.DerivedStream)
	if err != nil {
		return nil, err
	}
	out := make([]derivedRecord, 0, len(msgs))
	for _, m := range msgs {
		r, err := message(m)
		if err != nil {
			return nil, err
		}
		ev, err := envelope.Decode(r.msg, envelope.NATS)
		if err != nil {
			return nil, fmt.Errorf("derived %s on %s is not a CloudEvent: %w", r.where, r.msg.Subject, err)
		}
		out = append(out, derivedRecord{record: r, stream: strings.Split(r.msg.Subject, ".")[1], event: ev})
	}
	return out, nil
}

func (b *natsBackend) deadLetters(ctx context.Context) ([]string, error) {
	msgs, err := b.read(ctx, natsbroker.DeadLetterStream)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range msgs {
		r, err := message(m)
		if err != nil {
			return nil, err
		}
		out = append(out, deadLetter(r, envelope.NATS))
	}
	return out, nil
}
