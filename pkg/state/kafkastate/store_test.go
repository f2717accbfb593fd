package kafkastate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"

	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/state/kafkastate"
)

var (
	a1 = fact.Label{ID: "1", Name: "New order", Color: "gold"}
	a2 = fact.Label{ID: "1", Name: "Order complete", Color: "lightsteelblue", ColorHex: "#B0C4DE"}
	b1 = fact.Label{ID: "2", Name: "Pending payment", Color: "salmon"}
)

func firstSeen(t *testing.T, s *kafkastate.Store, chat, ev string, want bool) {
	t.Helper()
	got, err := s.Chats().FirstSeen(testCtx(t), prov, chan1, chat, ev)
	if err != nil {
		t.Fatalf("FirstSeen(%s, %s): %v", chat, ev, err)
	}
	if got != want {
		t.Errorf("FirstSeen(%s, %s) = %v, want %v", chat, ev, got, want)
	}
}

func upsert(t *testing.T, s *kafkastate.Store, l fact.Label, ev string, wantCreated bool, wantPrev fact.Label) {
	t.Helper()
	created, prev, err := s.Labels().Upsert(testCtx(t), prov, chan1, l, ev)
	if err != nil {
		t.Fatalf("Upsert(%s, %s): %v", l.ID, ev, err)
	}
	if created != wantCreated {
		t.Errorf("Upsert(%s, %s) created = %v, want %v", l.ID, ev, created, wantCreated)
	}
	if diff := cmp.Diff(wantPrev, prev); diff != "" {
		t.Errorf("Upsert(%s, %s) previous mismatch (-want +got):\n%s", l.ID, ev, diff)
	}
}

func del(t *testing.T, s *kafkastate.Store, ref fact.LabelRef, ev string, want fact.Label, wantKnown bool) {
	t.Helper()
	l, known, err := s.Labels().Delete(testCtx(t), prov, chan1, ref, ev)
	if err != nil {
		t.Fatalf("Delete(%+v, %s): %v", ref, ev, err)
	}
	if known != wantKnown {
		t.Errorf("Delete(%+v, %s) known = %v, want %v", ref, ev, known, wantKnown)
	}
	if diff := cmp.Diff(want, l); known && diff != "" {
		t.Errorf("Delete(%+v, %s) mismatch (-want +got):\n%s", ref, ev, diff)
	}
}

func lookup(t *testing.T, s *kafkastate.Store, id string, want fact.Label, wantKnown bool) {
	t.Helper()
	l, known, err := s.Labels().Lookup(testCtx(t), prov, chan1, id)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", id, err)
	}
	if known != wantKnown {
		t.Errorf("Lookup(%s) known = %v, want %v", id, known, wantKnown)
	}
	if diff := cmp.Diff(want, l); known && diff != "" {
		t.Errorf("Lookup(%s) mismatch (-want +got):\n%s", id, diff)
	}
}

func TestRestoreAfterRestart(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	s1 := open(t, cfg)
	upsert(t, s1, a1, "ev1", true, fact.Label{})
	upsert(t, s1, a2, "ev2", false, a1)
	upsert(t, s1, b1, "ev3", true, fact.Label{})
	del(t, s1, fact.LabelRef{Name: b1.Name}, "ev4", b1, true)
	firstSeen(t, s1, "1@s.whatsapp.net", "ev5", true)
	firstSeen(t, s1, "2@g.us", "ev6", true)
	closeStore(t, s1)

	s2 := open(t, cfg)
	lookup(t, s2, "1", a2, true)
	lookup(t, s2, "2", b1, true)
	// Replays answer as the first time; new events see the restored state.
	upsert(t, s2, a1, "ev1", true, fact.Label{})
	upsert(t, s2, a2, "ev2", false, a1)
	del(t, s2, fact.LabelRef{Name: b1.Name}, "ev4", b1, true)
	upsert(t, s2, b1, "ev7", true, fact.Label{}) // a deleted label set again is a creation
	firstSeen(t, s2, "1@s.whatsapp.net", "ev5", true)
	firstSeen(t, s2, "1@s.whatsapp.net", "ev8", false)
	firstSeen(t, s2, "2@g.us", "ev6", true)
	firstSeen(t, s2, "3@g.us", "ev9", true)
}

func TestClosedStore(t *testing.T) {
	c := newCluster(t)
	s := open(t, freshConfig(c))
	closeStore(t, s)
	if _, err := s.Chats().FirstSeen(testCtx(t), prov, chan1, "1@s.whatsapp.net", "ev1"); !errors.Is(err, kafkastate.ErrClosed) {
		t.Errorf("FirstSeen after Close: error %v, want ErrClosed", err)
	}
	if _, _, err := s.Labels().Lookup(testCtx(t), prov, chan1, "1"); !errors.Is(err, kafkastate.ErrClosed) {
		t.Errorf("Lookup after Close: error %v, want ErrClosed", err)
	}
	if err := s.Dedup().Mark(testCtx(t), "s", "id"); !errors.Is(err, kafkastate.ErrClosed) {
		t.Errorf("Mark after Close: error %v, want ErrClosed", err)
	}
}

// Two stores on the same topics stand for two processes: what one writes,
// the other's next call on that key sees, with no wait in between.
func TestTwoStoresSeeEachOther(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	s1, s2 := open(t, cfg), open(t, cfg)
	for i := range 20 { // repeated, so that a lagging tailer would show
		chat := fmt.Sprintf("%d@s.whatsapp.net", i)
		first, other := fmt.Sprintf("ev%d", i), fmt.Sprintf("other%d", i)
		firstSeen(t, s1, chat, first, true)
		firstSeen(t, s2, chat, other, false)
		firstSeen(t, s2, chat, first, true)
	}
	upsert(t, s1, a1, "l1", true, fact.Label{})
	lookup(t, s2, "1", a1, true)
	upsert(t, s2, a2, "l2", false, a1)
	lookup(t, s1, "1", a2, true)
	upsert(t, s1, a2, "l2", false, a1) // s2's update, reprocessed by s1
	del(t, s1, fact.LabelRef{Name: a2.Name}, "l3", a2, true)
	del(t, s2, fact.LabelRef{Name: a2.Name}, "l3", a2, true)
	upsert(t, s2, a1, "l4", true, fact.Label{})

	ctx := testCtx(t)
	if err := s1.Dedup().Mark(ctx, "label-changed", "ce1"); err != nil {
		t.Fatalf("Mark: %v", err)
	}
	if seen, err := s2.Dedup().Seen(ctx, "label-changed", "ce1"); err != nil || !seen {
		t.Errorf("Seen on the other store = %v, %v; want true", seen, err)
	}
}

// Both stores see each chat for the first time at once, with different
// events: for each chat exactly one of them is first, both agree on it
// whenever either is asked again, and so does a store restored after
// compaction, which keeps only each key's last record.
func TestFirstSeenRaceAcrossStores(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	s1, s2 := open(t, cfg), open(t, cfg)
	const chats = 40
	name := func(i int) string { return fmt.Sprintf("%d@s.whatsapp.net", i) }
	winners := raceFirstSeen(t, s1, s2, chats, name)
	agree := func(what string, s *kafkastate.Store) { agreeOnWinners(t, what, s, winners, name, "a", "b") }
	agree("store 1", s1)
	agree("store 2", s2)

	// Every chat's last record names its winner, so compaction keeps it.
	races := 0
	for key, recs := range topicRecords(t, c, cfg.ChatsTopic) {
		if len(recs) > 1 {
			races++
		}
		last := recs[len(recs)-1].Value
		i := 0
		if _, err := fmt.Sscanf(key, prov+"."+chan1+".%d", &i); err != nil {
			t.Fatalf("chat key %q: %v", key, err)
		}
		if last["first_event"] != winners[i] {
			t.Errorf("chat %d: last record %v, want first_event %q", i, last, winners[i])
		}
	}
	t.Logf("%d of %d chats were claimed by both stores", races, chats)
	c.Compact()
	agree("a store restored after compaction", open(t, cfg))
}

// Both stores create the same labels at once with different events: each
// label is created once, the other event is an update of it, and both
// stores tell every event the same when it is reprocessed.
func TestLabelCreationRaceAcrossStores(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	s1, s2 := open(t, cfg), open(t, cfg)
	const labels = 10
	type result struct {
		created bool
		prev    fact.Label
	}
	res := make([][2]result, labels)
	var wg sync.WaitGroup
	errs := make(chan error, 2*labels)
	for i := range labels {
		la := fact.Label{ID: fmt.Sprint(i), Name: "A", Color: "gold"}
		lb := fact.Label{ID: fmt.Sprint(i), Name: "B", Color: "salmon"}
		start := make(chan struct{})
		for j, s := range []*kafkastate.Store{s1, s2} {
			l := []fact.Label{la, lb}[j]
			wg.Go(func() {
				<-start
				created, prev, err := s.Labels().Upsert(testCtx(t), prov, chan1, l, fmt.Sprintf("ev%d-%d", i, j))
				res[i][j] = result{created, prev}
				errs <- err
			})
		}
		close(start)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Upsert: %v", err)
		}
	}
	for i, r := range res {
		la := fact.Label{ID: fmt.Sprint(i), Name: "A", Color: "gold"}
		lb := fact.Label{ID: fmt.Sprint(i), Name: "B", Color: "salmon"}
		if r[0].created == r[1].created {
			t.Fatalf("label %d: created = %v and %v, want exactly one", i, r[0].created, r[1].created)
		}
		creator, want := 0, la
		if r[1].created {
			creator, want = 1, lb
		}
		if diff := cmp.Diff(want, r[1-creator].prev); diff != "" {
			t.Errorf("label %d: the update's previous mismatch (-want +got):\n%s", i, diff)
		}
		for _, s := range []*kafkastate.Store{s1, s2} {
			for j, l := range []fact.Label{la, lb} {
				prev := fact.Label{}
				if j != creator {
					prev = want
				}
				upsert(t, s, l, fmt.Sprintf("ev%d-%d", i, j), j == creator, prev)
			}
		}
	}
}

// A claim that lost and was never repaired (its writer crashed) is its
// chat's last record; the next call on the chat, by any store, repairs
// it, so that a store restored after compaction still knows the winner.
func TestLostClaimRepairedByNextCall(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	s1 := open(t, cfg)
	const chat = "5544999999999@s.whatsapp.net"
	firstSeen(t, s1, chat, "winner", true)
	key := prov + "." + chan1 + ".5544999999999_40s_2Ewhatsapp_2Enet"
	produce(t, c, cfg.ChatsTopic, key, map[string]any{"first_event": "loser", "first_seen_at": time.Now().UTC(), "version": 1})

	s2 := open(t, cfg) // restored with the lost claim as the last record
	firstSeen(t, s2, chat, "loser", false)
	recs := topicRecords(t, c, cfg.ChatsTopic)[key]
	if got := recs[len(recs)-1].Value["first_event"]; got != "winner" {
		t.Fatalf("last record after the repair names %v, want winner; records %v", got, recs)
	}
	c.Compact()
	s3 := open(t, cfg)
	firstSeen(t, s3, chat, "winner", true)
	firstSeen(t, s3, chat, "loser", false)
}

func TestOpenCreatesTopics(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	cfg.Partitions = 3
	cfg.DedupWindow = 2 * time.Hour
	cfg.TimesTTL = 30 * time.Minute
	open(t, cfg)
	ctx := testCtx(t)
	cl := client(c)
	meta, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.LabelsTopic, cfg.ChatsTopic, cfg.DedupTopic, cfg.TimesTopic}})
	if err != nil {
		t.Fatalf("Metadata: %v", err)
	}
	for _, tp := range meta.Topics {
		if len(tp.Partitions) != 3 {
			t.Errorf("topic %s has %d partitions, want 3", tp.Name, len(tp.Partitions))
		}
	}
	want := map[string]map[string]string{
		cfg.LabelsTopic: {"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"},
		cfg.ChatsTopic:  {"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"},
		cfg.DedupTopic:  {"cleanup.policy": "compact,delete", "retention.ms": "7200000", "segment.ms": "3600000"},
		cfg.TimesTopic:  {"cleanup.policy": "compact,delete", "retention.ms": "1800000", "segment.ms": "1800000"},
	}
	req := &kafka.DescribeConfigsRequest{}
	for name := range want {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: name})
	}
	resp, err := cl.DescribeConfigs(ctx, req)
	if err != nil {
		t.Fatalf("DescribeConfigs: %v", err)
	}
	for _, r := range resp.Resources {
		got := map[string]string{}
		for _, e := range r.ConfigEntries {
			if _, ok := want[r.ResourceName][e.ConfigName]; ok {
				got[e.ConfigName] = e.ConfigValue
			}
		}
		if diff := cmp.Diff(want[r.ResourceName], got); diff != "" {
			t.Errorf("configs of %s mismatch (-want +got):\n%s", r.ResourceName, diff)
		}
	}
	open(t, cfg) // a second Open finds the topics in place
}

func TestOpenRefusesTopicThatDeletes(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	if err := c.CreateTopic(cfg.ChatsTopic, 2, map[string]string{"cleanup.policy": "delete"}); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	s, err := kafkastate.Open(testCtx(t), cfg)
	if err == nil {
		closeStore(t, s)
		t.Fatalf("Open with a chats topic that deletes: no error")
	}
	if !strings.Contains(err.Error(), "cleanup.policy=delete") {
		t.Errorf("Open error %q does not name the policy", err)
	}
}

func TestOpenValidates(t *testing.T) {
	for name, cfg := range map[string]kafkastate.Config{
		"no brokers":   {},
		"same topics":  {Brokers: []string{"x:9092"}, LabelsTopic: "t", ChatsTopic: "t"},
		"short window": {Brokers: []string{"x:9092"}, DedupWindow: time.Millisecond},
		"times topic":  {Brokers: []string{"x:9092"}, TimesTopic: kafkastate.DefaultDedupTopic},
		"short TTL":    {Brokers: []string{"x:9092"}, TimesTTL: time.Millisecond},
		"times bound":  {Brokers: []string{"x:9092"}, TimesMaxIDs: -1},
		"negative TTL": {Brokers: []string{"x:9092"}, ChatsTTL: -time.Hour},
		"chats TTL":    {Brokers: []string{"x:9092"}, ChatsTTL: 500 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := kafkastate.Open(testCtx(t), cfg); err == nil {
				closeStore(t, s)
				t.Errorf("Open(%+v): no error", cfg)
			}
		})
	}
}

func TestOpenWithoutBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// A port nothing listens on: Open fails, at the latest when ctx ends.
	s, err := kafkastate.Open(ctx, kafkastate.Config{Brokers: []string{"127.0.0.1:1"}})
	if err == nil {
		closeStore(t, s)
		t.Fatalf("Open without a broker: no error")
	}
}

// Memory keeps a wahook id (32 lower-case hex digits) as its bytes and any
// other first event as it is: both answer alike, also once restored.
func TestChatsFirstEventForms(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	ids := map[string]string{
		"1@s.whatsapp.net": "0123456789abcdef0123456789abcdef",
		"2@s.whatsapp.net": "0123456789ABCDEF0123456789ABCDEF", // not lower case
		"3@s.whatsapp.net": "0123456789abcdef0123456789abcdeg", // not hex
		"4@s.whatsapp.net": "0123456789abcdef",
	}
	for _, s := range []*kafkastate.Store{open(t, cfg), nil} {
		if s == nil {
			s = open(t, cfg) // restored from the topic
		}
		for chat, ev := range ids {
			firstSeen(t, s, chat, ev, true)
			firstSeen(t, s, chat, strings.ToUpper(ev), ev == strings.ToUpper(ev))
			firstSeen(t, s, chat, "0123456789abcdef0123456789abcdee", false)
		}
	}
}
