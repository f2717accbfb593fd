package chaos

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/all"
)

// The checks of the harness itself, without processes: on a stream made
// as the ingress makes it and derived in order, nothing is reported; each
// kind of damage a crash can do is reported, on the key it hits.

// simulated is a run without faults: deliveries from the workload's
// senders taken in turn, acknowledged with their ids, raw records as the
// ingress publishes them.
func simulated(t *testing.T, rounds int) ([]*delivery, []record) {
	t.Helper()
	w := newWorkload(7)
	var sources []source
	for i := range 3 {
		sources = append(sources, w.labelChannel(i))
	}
	for i := range 4 {
		sources = append(sources, w.chatSender(i))
	}
	providers := map[string]provider.Provider{}
	for _, p := range all.Providers() {
		providers[p.Name()] = p
	}
	var recs []record
	received := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for range rounds {
		for _, src := range sources {
			d := src.next()
			items, err := providers[d.provider].Split(d.body, provider.Delivery{Method: http.MethodPost})
			if err != nil || len(items) != 1 {
				t.Fatalf("%s: %d items, %v", d.what, len(items), err)
			}
			it := items[0]
			id, err := provider.EventID(d.provider, it)
			if err != nil {
				t.Fatal(err)
			}
			at := it.Time
			if at.IsZero() {
				at = received
			}
			msg := envelope.Ingress(envelope.Raw{ID: id, Provider: d.provider, Channel: it.Channel, Kind: it.Kind,
				Chat: chatid.ID(it.Chat), Time: at, Data: it.Data}, envelope.NATS)
			if msg.Key != d.key {
				t.Fatalf("%s: key %q, the workload says %q", d.what, msg.Key, d.key)
			}
			d.acked, d.ids, d.attempts = true, []string{id}, 1
			recs = append(recs, record{pos: len(recs) + 1, where: fmt.Sprintf("seq %d", len(recs)+1), msg: msg})
		}
	}
	return w.deliveries(), recs
}

// derivedFrom is what consumers store when they process raws in the given
// order: the crash-free derivation of that order, in that order.
func derivedFrom(t *testing.T, raws []record) []derivedRecord {
	t.Helper()
	tr, err := crashFree(t.Context(), raws, envelope.NATS)
	if err != nil {
		t.Fatal(err)
	}
	var out []derivedRecord
	for _, re := range tr.raws {
		for _, e := range re.events {
			out = append(out, derivedRecord{record: record{pos: len(out) + 1, where: fmt.Sprintf("seq %d", len(out)+1)},
				stream: e.stream, event: e.event})
		}
	}
	return out
}

func checked(t *testing.T, ds []*delivery, raws []record, derived []derivedRecord) *outcome {
	t.Helper()
	tr, err := crashFree(t.Context(), raws, envelope.NATS)
	if err != nil {
		t.Fatal(err)
	}
	o, err := check(ds, tr, derived, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.model) > 0 {
		t.Fatalf("the workload's model and the oracle disagree:\n%s", strings.Join(o.model, "\n"))
	}
	return o
}

func TestCheckerCleanRun(t *testing.T) {
	ds, raws := simulated(t, 40)
	o := checked(t, ds, raws, derivedFrom(t, raws))
	if o.acked != len(ds) || o.expected == 0 || o.stored != o.expected {
		t.Errorf("acked %d of %d, expected %d, stored %d", o.acked, len(ds), o.expected, o.stored)
	}
	if n := len(o.lost) + len(o.badAcks) + o.missing + o.unexpected + o.wrong + o.dupIDs + o.inversions + len(o.keys); n != 0 {
		t.Errorf("a clean run reports %d findings: %+v", n, o)
	}
	types := map[string]int{}
	for _, d := range ds {
		for _, w := range d.want {
			types[w]++
		}
	}
	for _, typ := range []string{typeLabelCreated, typeLabelUpdated, typeLabelDeleted, typeChatCreated, typeCallMissed, typeCallOffered, typeGroupJoined, typeGroupAdded, typeGroupPromote} {
		if types[typ] == 0 {
			t.Errorf("the workload makes no %s", typ)
		}
	}
}

// swapFirst swaps the first two raw records of a key whose deliveries'
// wanted types are a and b, as a consumer that took the second before the
// first would have processed them, and returns the key.
func swapFirst(t *testing.T, ds []*delivery, raws []record, a, b string) ([]record, string) {
	t.Helper()
	want := map[string][]string{}
	for _, d := range ds {
		want[d.ids[0]] = d.want
	}
	byKey := map[string][]int{}
	for i, r := range raws {
		byKey[r.msg.Key] = append(byKey[r.msg.Key], i)
	}
	for i, r := range raws {
		idx := byKey[r.msg.Key]
		id := r.msg.ID
		if slices.Contains(want[id], a) {
			for _, j := range idx {
				if j > i && slices.Contains(want[raws[j].msg.ID], b) {
					out := slices.Clone(raws)
					out[i], out[j] = out[j], out[i]
					return out, r.msg.Key
				}
			}
		}
	}
	t.Fatalf("no key with %s followed by %s", a, b)
	return nil, ""
}

func TestCheckerReportsOutOfOrderLabels(t *testing.T) {
	ds, raws := simulated(t, 40)
	swapped, key := swapFirst(t, ds, raws, typeLabelCreated, typeLabelUpdated)
	o := checked(t, ds, raws, derivedFrom(t, swapped))
	if len(o.keys) != 1 || o.keys[0].key != key {
		t.Fatalf("keys reported %+v; want only %s", o.keys, key)
	}
	report := strings.Join(o.keys[0].lines, "\n")
	for _, s := range []string{"label.created", "stored as label.updated", "label.updated", "stored as label.created"} {
		if !strings.Contains(report, s) {
			t.Errorf("the report of %s does not say %q:\n%s", key, s, report)
		}
	}
	if o.wrong < 2 || o.inversions == 0 {
		t.Errorf("wrong %d, inversions %d; want the creation and the edit wrong and stored out of order", o.wrong, o.inversions)
	}
}

func TestCheckerReportsChatCreatedByALaterMessage(t *testing.T) {
	ds, raws := simulated(t, 40)
	// The first message of a chat swapped with its second: chat.created
	// comes from the second, under another id.
	want := map[string][]string{}
	for _, d := range ds {
		want[d.ids[0]] = d.want
	}
	var swapped []record
	var key string
	for i, r := range raws {
		if !slices.Equal(want[r.msg.ID], []string{typeChatCreated}) {
			continue
		}
		for j := i + 1; j < len(raws); j++ {
			if raws[j].msg.Key == r.msg.Key {
				swapped = slices.Clone(raws)
				swapped[i], swapped[j] = swapped[j], swapped[i]
				key = r.msg.Key
				break
			}
		}
		if swapped != nil {
			break
		}
	}
	o := checked(t, ds, raws, derivedFrom(t, swapped))
	if o.missing != 1 || o.unexpected != 1 || len(o.keys) != 1 || o.keys[0].key != key {
		t.Fatalf("missing %d, unexpected %d, keys %+v; want one chat.created missing and one unexpected on %s", o.missing, o.unexpected, o.keys, key)
	}
	report := strings.Join(o.keys[0].lines, "\n")
	if !strings.Contains(report, "event 1 of") || !strings.Contains(report, "missing chat.created") ||
		!strings.Contains(report, "event 2 of") || !strings.Contains(report, "unexpected chat.created") {
		t.Errorf("the report does not place the chat.created:\n%s", report)
	}
}

func TestCheckerReportsLossAndDuplicates(t *testing.T) {
	ds, raws := simulated(t, 20)
	derived := derivedFrom(t, raws)
	// One acknowledged delivery missing from the raw stream, one derived
	// event stored twice, once with other data.
	lost := raws[5]
	kept := slices.Delete(slices.Clone(raws), 5, 6)
	copyOf := derived[3]
	changed := derived[4]
	changed.event = changed.event.Clone()
	if err := changed.event.SetData("application/json", map[string]string{"other": "data"}); err != nil {
		t.Fatal(err)
	}
	derived = append(derived, copyOf, changed)
	tr, err := crashFree(t.Context(), kept, envelope.NATS)
	if err != nil {
		t.Fatal(err)
	}
	o, err := check(ds, tr, derived, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.lost) != 1 || !strings.Contains(o.lost[0], lost.msg.ID) {
		t.Errorf("lost %v; want %s", o.lost, lost.msg.ID)
	}
	if o.dupIDs != 2 || len(o.dupDiffer) != 1 {
		t.Errorf("duplicate ids %d, differing %v; want 2 and 1", o.dupIDs, o.dupDiffer)
	}
}

// TestCleanupKillsProcessGroups: when a test ends, however it ends, the
// processes it started are gone, children of theirs included.
func TestCleanupKillsProcessGroups(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	var p *proc
	t.Run("a test that starts a process and fails to stop it", func(t *testing.T) {
		p = start(t, "sh", "/bin/sh", []string{"-c", `sleep 300 & echo $! > "$0"; wait`, pidFile}, nil, filepath.Join(dir, "sh.log"))
		for ctx := t.Context(); ; {
			if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
				break
			}
			if err := pause(ctx, 10*time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
	})
	if !p.exited() {
		t.Errorf("the process still runs after its test ended")
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The orphaned child is killed at once and reaped by init soon after.
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(child, 0) == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("the process's child %d still runs 10s after the test ended", child)
		}
		if err := pause(t.Context(), 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
}
