// Package chaos is wahook's fault-injection test: the broker, the ingress
// and the deriver run as separate processes, senders that behave like
// providers keep posting webhooks (each a distinct body, retried with the
// same body until it is answered 200), and the harness kills and restarts
// the broker and the deriver under that load. Afterwards it reads the
// streams back with a client of its own and checks outcomes: every
// delivery answered 200 is in the raw stream, byte for byte; the derived
// streams hold, for every raw event, exactly the events wahook's own
// derivation gives when the raw stream is taken in order without a crash
// (with the reference registries of package derivetest for state), and
// nothing else; no derived id is stored twice; derived events of a key are
// stored in raw order; nothing is left pending; nothing was dead-lettered.
//
// `go test` runs a short variant on each broker (on NATS one fault of each
// kind, on Kafka one kill and rebalance); `make chaos` (-chaos.long) runs
// the long one and prints its figures.
package chaos

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
)

var (
	longRun = flag.Bool("chaos.long", false, "run the long fault-injection variant (make chaos): minutes of load, every fault twice")
	keepDir = flag.String("chaos.dir", "", "keep the processes' logs, the broker's store and the report in this directory")
	seed    = flag.Uint64("chaos.seed", 1, "seed of the workload's deliveries")
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "wahook-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// plan is how long a run loads and how it paces its faults.
type plan struct {
	variant string
	load    loadConfig
	// warmup is the load before the first fault, gap between two faults,
	// tail after the last one.
	warmup, gap, tail time.Duration
	// outage is how long a killed or stopped broker stays down.
	outage time.Duration
	// drain bounds the wait for the consumers to finish after the load;
	// stall is how long they may make no progress at all before the wait
	// ends early: longer than a crashed consumer's events take to come
	// back (the NATS ack wait, the Kafka session timeout, both 30s) plus a
	// rebalance.
	drain, stall time.Duration
}

func shortPlan() plan {
	return plan{
		variant: "short",
		load:    loadConfig{rate: 120, labelSenders: 6, chatSenders: 10, labelEvery: 200 * time.Millisecond, giveUp: 90 * time.Second},
		warmup:  3 * time.Second, gap: 3 * time.Second, tail: 2 * time.Second,
		outage: time.Second,
		drain:  3 * time.Minute, stall: 75 * time.Second,
	}
}

func longPlan() plan {
	return plan{
		variant: "long",
		load:    loadConfig{rate: 150, labelSenders: 12, chatSenders: 24, labelEvery: 250 * time.Millisecond, giveUp: 2 * time.Minute},
		warmup:  10 * time.Second, gap: 15 * time.Second, tail: 10 * time.Second,
		outage: 3 * time.Second,
		drain:  15 * time.Minute, stall: 90 * time.Second,
	}
}

func currentPlan() plan {
	if *longRun {
		return longPlan()
	}
	return shortPlan()
}

// backend is the broker of a run as the services and the checker see it.
type backend interface {
	// env configures a service to use the broker.
	env() []string
	binding() envelope.Binding
	// atLeastOnce says the broker stores a provider's retry again and a
	// consumer that dies between publishing and committing publishes again
	// (Kafka, as docs/kafka.md says): repeated ids are then counted and must
	// be exact copies. Otherwise (NATS, whose duplicate window drops them)
	// a repeated id is a failure.
	atLeastOnce() bool
	// behind counts the raw events the derived streams' consumers have not
	// finished (summed over the streams) and says where they are.
	behind(ctx context.Context) (int64, string, error)
	// derivedCount is how many messages the derived streams hold.
	derivedCount(ctx context.Context) (int64, error)
	// raw, derived and deadLetters read the streams back in stream order.
	raw(ctx context.Context) ([]record, error)
	derived(ctx context.Context) ([]derivedRecord, error)
	deadLetters(ctx context.Context) ([]string, error)
}

// fault is one injected failure. ready, when set, waits until the
// system is in the state the fault is meant for (the groups whole again);
// run injects it and returns what happened ("back in 1.2s").
type fault struct {
	name  string
	ready func(ctx context.Context) error
	run   func(ctx context.Context) (string, error)
}

// harness is one run: its processes, its directory and what happened.
type harness struct {
	t    *testing.T
	name string
	dir  string
	bins binaries
	plan plan
	sec  secrets

	services []*service
	faults   []string
	// created is when the run began: startup is measured from it.
	created time.Time
	// settle, when set, is a last check after the drain (the Kafka groups
	// whole again); what it returns is a line of the report.
	settle func(ctx context.Context) (string, error)
}

func newHarness(t *testing.T, name string) *harness {
	t.Helper()
	h := &harness{t: t, name: name, plan: currentPlan(), sec: newSecrets(), created: time.Now()}
	h.bins = build(t)
	if *keepDir != "" {
		h.dir = filepath.Join(*keepDir, name)
		if err := os.RemoveAll(h.dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(h.dir, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		dir, err := os.MkdirTemp("", "wahook-chaos-"+name+"-")
		if err != nil {
			t.Fatal(err)
		}
		h.dir = dir
		// Registered first, so it runs after every process is gone.
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("logs and stores kept in %s", dir)
				return
			}
			_ = os.RemoveAll(dir)
		})
	}
	return h
}

// service is a program the harness starts, kills and restarts; each run
// logs to its own file.
type service struct {
	h         *harness
	name, bin string
	args      []string
	env       []string
	runs      []*proc
}

func (h *harness) service(name, bin string, args, env []string) *service {
	s := &service{h: h, name: name, bin: bin, args: args, env: env}
	h.services = append(h.services, s)
	return s
}

func (s *service) start() *proc {
	s.h.t.Helper()
	log := filepath.Join(s.h.dir, fmt.Sprintf("%s.%d.log", s.name, len(s.runs)+1))
	p := start(s.h.t, fmt.Sprintf("%s (run %d)", s.name, len(s.runs)+1), s.bin, s.args, s.env, log)
	s.runs = append(s.runs, p)
	return p
}

func (s *service) current() *proc { return s.runs[len(s.runs)-1] }

// serviceEnv is what every wahook process of a run gets: the broker's
// settings and JSON logs at info level (one line per delivery: the
// evidence of a failed check).
func serviceEnv(b backend, extra ...string) []string {
	env := append([]string{"WAHOOK_LOG_FORMAT=json", "WAHOOK_LOG_LEVEL=info", "WAHOOK_HTTP_ADDR=127.0.0.1:0", "WAHOOK_ADMIN_ADDR=127.0.0.1:0"}, b.env()...)
	return append(env, extra...)
}

// startIngress starts the ingress and returns its URL once it is ready.
func (h *harness) startIngress(ctx context.Context, b backend) (*service, string) {
	h.t.Helper()
	s := h.service("ingress", h.bins.ingress, nil, serviceEnv(b, append(h.sec.env(), "WAHOOK_DERIVE=")...))
	p := s.start()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	addr, err := logField(ctx, p, "ingress listening", "addr")
	if err != nil {
		h.t.Fatal(err)
	}
	url := "http://" + addr
	if err := waitReady(ctx, url); err != nil {
		h.t.Fatalf("ingress: %v; last lines:\n%s", err, tail(p.log, 30))
	}
	return s, url
}

// waitReady polls an ingress's /readyz until it answers 200.
func waitReady(ctx context.Context, url string) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := pause(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("%s/readyz not 200: %w", url, err)
		}
	}
}

// derivers starts n deriver processes running every derived stream and
// waits until each runs them.
func (h *harness) derivers(ctx context.Context, b backend, n int) []*service {
	h.t.Helper()
	var out []*service
	for i := range n {
		name := "deriver"
		if n > 1 {
			name = fmt.Sprintf("deriver-%c", 'a'+i)
		}
		// Debug logs say when each raw event was derived (lines "derived"):
		// the report's evidence of an out-of-order outcome.
		s := h.service(name, h.bins.deriver, nil, serviceEnv(b, "WAHOOK_DERIVE=all", "WAHOOK_LOG_LEVEL=debug"))
		s.start()
		out = append(out, s)
	}
	for _, s := range out {
		if err := s.up(ctx); err != nil {
			h.t.Fatal(err)
		}
	}
	return out
}

// up waits until a deriver's current run has subscribed every derived
// stream. A deriver that cannot reach the broker while it starts exits
// (a supervisor restarts it): faults wait for this so that they hit a
// running deriver.
func (s *service) up(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return waitLogged(ctx, s.current(), "subscription started", len(derive.Streams))
}

// alive fails the test for every process that exited without being told
// to.
func (h *harness) alive() {
	for _, s := range h.services {
		for _, p := range s.runs {
			if bad, why := p.unexpectedExit(); bad {
				h.t.Error(why)
			}
		}
	}
}

// run loads the ingress at url, injects the faults one after the other,
// waits for the consumers to drain, then checks what the broker holds.
func (h *harness) run(ctx context.Context, b backend, url string, faults []fault) {
	t := h.t
	w := newWorkload(*seed)
	l := startLoad(ctx, url, h.sec, w, h.plan.load)
	began := time.Now()
	startup := began.Sub(h.created)
	mon := watch(ctx, b, began)
	stopped := false
	defer func() {
		if !stopped {
			l.finish()
		}
	}()
	if err := pause(ctx, h.plan.warmup); err != nil {
		t.Fatal(err)
	}
	for i, f := range faults {
		if i > 0 {
			if err := pause(ctx, h.plan.gap); err != nil {
				t.Fatal(err)
			}
		}
		if f.ready != nil {
			if err := f.ready(ctx); err != nil {
				t.Errorf("fault %d (%s): %v", i+1, f.name, err)
				h.faults = append(h.faults, fmt.Sprintf("%s NOT READY", f.name))
				break
			}
		}
		at := time.Since(began)
		desc, err := f.run(ctx)
		if err != nil {
			t.Errorf("fault %d (%s at %.1fs): %v", i+1, f.name, at.Seconds(), err)
			h.faults = append(h.faults, fmt.Sprintf("%s at %.1fs FAILED", f.name, at.Seconds()))
			break
		}
		h.faults = append(h.faults, fmt.Sprintf("%s at %.1fs%s", f.name, at.Seconds(), desc))
		h.alive()
	}
	if err := pause(ctx, h.plan.tail); err != nil {
		t.Fatal(err)
	}
	l.finish()
	stopped = true
	loadTime := time.Since(began)
	ended := time.Now()

	dr := h.drain(ctx, b, ended)
	drainTime := time.Since(ended)
	pauseLine := mon.stop()
	settled, settleErr := "", error(nil)
	if h.settle != nil {
		settled, settleErr = h.settle(ctx)
		if settleErr != nil {
			t.Error(settleErr)
			settled = "FAILED: " + settleErr.Error()
		}
		settled = fmt.Sprintf("%s, %.1fs after the load ended", settled, time.Since(ended).Seconds())
	}
	h.alive()
	// The services stop before the streams are read, so that what is read
	// is all they did.
	h.stopServices()

	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	raws, err := b.raw(rctx)
	if err != nil {
		t.Fatalf("read the raw stream: %v", err)
	}
	derived, err := b.derived(rctx)
	if err != nil {
		t.Fatalf("read the derived streams: %v", err)
	}
	dead, err := b.deadLetters(rctx)
	if err != nil {
		t.Fatalf("read the dead letters: %v", err)
	}
	tr, err := crashFree(rctx, raws, b.binding())
	if err != nil {
		t.Fatal(err)
	}
	handled := map[string][]string{}
	for _, s := range h.services {
		if s.bin == h.bins.deriver {
			for _, p := range s.runs {
				derivedLog(p.log, p.name, handled)
			}
		}
	}
	o, err := check(w.deliveries(), tr, derived, dead, handled)
	if err != nil {
		t.Fatal(err)
	}

	rep := h.report(o, l, startup, loadTime, dr, drainTime, pauseLine, settled)
	t.Log("\n" + rep)
	if err := os.WriteFile(filepath.Join(h.dir, "report.txt"), []byte(rep), 0o644); err != nil {
		t.Error(err)
	}
	h.verdict(o, b.atLeastOnce(), dr)
}

// monitor samples, every second from the start of the load, whether the
// derived streams grow while raw events wait: the longest time they did
// not is how long derivation stood still (a fault's outage, a rebalance,
// a stall).
type monitor struct {
	done   chan struct{}
	result chan string
}

func watch(ctx context.Context, b backend, began time.Time) *monitor {
	m := &monitor{done: make(chan struct{}), result: make(chan string, 1)}
	go func() {
		var last int64 = -1
		var grew, longestAt time.Time
		var longest time.Duration
		samples, failed := 0, 0
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-m.done:
				at := "never"
				if longest > 0 {
					at = fmt.Sprintf("%.1fs, from %.1fs into the load", longest.Seconds(), longestAt.Sub(began).Seconds())
				}
				m.result <- fmt.Sprintf("longest time the derived streams did not grow while raw events waited: %s (%d samples a second apart, %d failed: broker down)",
					at, samples, failed)
				return
			case <-tick.C:
			}
			samples++
			n, err := b.derivedCount(ctx)
			left, _, berr := b.behind(ctx)
			now := time.Now()
			if err != nil || berr != nil {
				failed++
				continue
			}
			if n > last || left == 0 {
				last, grew = n, now
				continue
			}
			if d := now.Sub(grew); d > longest {
				longest, longestAt = d, grew
			}
		}
	}()
	return m
}

func (m *monitor) stop() string {
	close(m.done)
	return <-m.result
}

// drainResult is how the consumers finished after the load.
type drainResult struct {
	done bool
	// why says how they failed to: stalled (no progress for plan.stall)
	// or still busy at plan.drain, and where they are.
	why          string
	longestStall time.Duration
}

// drain polls until the consumers have nothing left, nothing drains for
// plan.stall (stalled: a liveness failure), or plan.drain has passed since
// the load ended.
func (h *harness) drain(ctx context.Context, b backend, ended time.Time) drainResult {
	var r drainResult
	best, since := int64(-1), time.Now()
	for {
		left, where, err := b.behind(ctx)
		now := time.Now()
		if err != nil {
			where = err.Error()
		} else {
			if left == 0 {
				r.done = true
				return r
			}
			if best < 0 || left < best {
				best, since = left, now
			}
		}
		r.longestStall = max(r.longestStall, now.Sub(since))
		switch {
		case now.Sub(since) > h.plan.stall:
			r.why = fmt.Sprintf("STALLED: no progress for %s, %d raw events left: %s", h.plan.stall, best, where)
			return r
		case now.Sub(ended) > h.plan.drain:
			r.why = fmt.Sprintf("still %d raw events left %s after the load (progressing): %s", left, h.plan.drain, where)
			return r
		}
		if err := pause(ctx, 200*time.Millisecond); err != nil {
			r.why = err.Error()
			return r
		}
	}
}

// report renders the figures and the details of a run.
func (h *harness) report(o *outcome, l *load, startup, loadTime time.Duration, dr drainResult, drainTime time.Duration, pauseLine, settled string) string {
	var b strings.Builder
	race := "without"
	if h.bins.race {
		race = "with"
	}
	fmt.Fprintf(&b, "chaos %s, %s variant, seed %d, services built %s the race detector\n", h.name, h.plan.variant, *seed, race)
	fmt.Fprintf(&b, "  startup         %.1fs (build, broker, services ready)\n", startup.Seconds())
	fmt.Fprintf(&b, "  load            %.1fs, at most %d new deliveries/s, %d label channels, %d chat senders\n",
		loadTime.Seconds(), h.plan.load.rate, h.plan.load.labelSenders, h.plan.load.chatSenders)
	fmt.Fprintf(&b, "  deliveries      %d sent, %d acknowledged (200), %d never acknowledged; %d attempts (%s)\n",
		o.sent, o.acked, len(o.failed), o.attempts, l.answers())
	fmt.Fprintf(&b, "  raw stream      %d events, %d lost (answered 200, not stored), %d stored twice, %d wrong acknowledgements\n",
		o.rawStored, len(o.lost), o.rawRepeats, len(o.badAcks))
	fmt.Fprintf(&b, "  derived         %d expected, %d stored; %d missing, %d unexpected, %d wrong; %d ids stored twice (%d extra copies, %d differing)\n",
		o.expected, o.stored, o.missing, o.unexpected, o.wrong, o.dupIDs, o.dupExtra, len(o.dupDiffer))
	fmt.Fprintf(&b, "  out of order    %d keys with outcomes differing from the crash-free run; %d derived events stored after a later raw event's (%d keys)\n",
		len(o.keys), o.inversions, len(o.invKeys))
	fmt.Fprintf(&b, "  dead letters    %d\n", len(o.deadLetter))
	fmt.Fprintf(&b, "  faults          %d: %s\n", len(h.faults), strings.Join(h.faults, "; "))
	if dr.done {
		fmt.Fprintf(&b, "  drain           %.1fs after the load ended (longest time without progress %.1fs)\n",
			drainTime.Seconds(), dr.longestStall.Seconds())
	} else {
		fmt.Fprintf(&b, "  drain           NOT drained %.1fs after the load ended: %s\n", drainTime.Seconds(), dr.why)
	}
	fmt.Fprintf(&b, "  liveness        %s\n", pauseLine)
	if settled != "" {
		fmt.Fprintf(&b, "  settled         %s\n", settled)
	}
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(&b, "%s (%d):\n", title, len(lines))
		for _, l := range lines {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	section("deliveries never acknowledged", o.failed)
	section("lost", o.lost)
	section("wrong acknowledgements", o.badAcks)
	section("workload model and oracle disagree (a harness bug)", o.model)
	section("dead letters", o.deadLetter)
	section("derived ids stored twice with different content", o.dupDiffer)
	section("keys whose derived events are stored out of raw order", o.invKeys)
	if len(o.keys) > 0 {
		fmt.Fprintf(&b, "keys whose derived events differ from the crash-free run (%d):\n", len(o.keys))
		for _, k := range o.keys {
			fmt.Fprintf(&b, "  %s\n", k.key)
			for _, l := range k.lines {
				fmt.Fprintf(&b, "    %s\n", l)
			}
		}
	}
	return b.String()
}

// verdict fails the test for every check that does not hold.
func (h *harness) verdict(o *outcome, atLeastOnce bool, dr drainResult) {
	t := h.t
	if len(o.model) > 0 {
		t.Errorf("the workload's model and the oracle disagree on %d raw events (a harness bug): %s", len(o.model), o.model[0])
	}
	if len(o.failed) > 0 {
		t.Errorf("%d of %d deliveries were never answered 200: %s", len(o.failed), o.sent, o.failed[0])
	}
	if len(o.lost) > 0 {
		t.Errorf("%d deliveries answered 200 are not in the raw stream: %s", len(o.lost), o.lost[0])
	}
	if len(o.badAcks) > 0 {
		t.Errorf("%d acknowledgements do not match what was delivered: %s", len(o.badAcks), o.badAcks[0])
	}
	if !dr.done {
		t.Errorf("the consumers did not finish after the load: %s", dr.why)
	}
	if o.missing+o.unexpected+o.wrong > 0 {
		t.Errorf("derived events differ from the crash-free run on %d keys: %d missing, %d unexpected, %d wrong (details in the report above)",
			len(o.keys), o.missing, o.unexpected, o.wrong)
	}
	if !atLeastOnce && o.rawRepeats > 0 {
		t.Errorf("%d raw events are stored twice: the duplicate window must drop a provider's retry", o.rawRepeats)
	}
	if !atLeastOnce && o.dupIDs > 0 {
		t.Errorf("%d derived ids are stored more than once (%d extra copies): the duplicate window must drop them", o.dupIDs, o.dupExtra)
	}
	if len(o.dupDiffer) > 0 {
		t.Errorf("%d derived ids are stored twice with different content: %s", len(o.dupDiffer), o.dupDiffer[0])
	}
	if o.inversions > 0 {
		t.Errorf("%d derived events are stored after events of a later raw event of their key (%d keys): %s", o.inversions, len(o.invKeys), o.invKeys[0])
	}
	if len(o.deadLetter) > 0 {
		t.Errorf("%d dead letters, none expected: %s", len(o.deadLetter), o.deadLetter[0])
	}
}

// stopServices stops every wahook service with SIGTERM and fails the test
// for one that does not exit cleanly.
func (h *harness) stopServices() {
	h.t.Helper()
	for _, s := range h.services {
		if s.bin == h.bins.natsServer || s.current().exited() {
			continue
		}
		if err := s.current().stop(45 * time.Second); err != nil {
			h.t.Error(err)
		}
	}
}

// finish stops the broker, if it is a process, and fails the test for a
// data race or a panic in any run of any process.
func (h *harness) finish(broker *service) {
	h.t.Helper()
	if broker != nil && !broker.current().exited() {
		if err := broker.current().stop(45 * time.Second); err != nil {
			h.t.Error(err)
		}
	}
	for _, s := range h.services {
		for _, p := range s.runs {
			for _, r := range raceReports(p.log) {
				h.t.Errorf("%s: %s", p.name, r)
			}
		}
	}
}
