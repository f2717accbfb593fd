package kafkastate_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/state"
	"github.com/wahook/wahook/pkg/state/kafkastate"
)

// ttlConfig is a fresh configuration whose chats expire after ttl by clk.
func ttlConfig(t *testing.T, ttl time.Duration) (kafkastate.Config, *clock, *kfake.Cluster) {
	t.Helper()
	c := newCluster(t)
	cfg := freshConfig(c)
	clk := newClock(time.Now())
	cfg.ChatsTTL, cfg.Now = ttl, clk.Now
	return cfg, clk, c
}

// chatKey is the chats topic's key of chat on prov/chan1.
func chatKey(chat string) string { return state.EntryKey(prov, chan1, chat) }

// A chat is answered from memory until it expires; seen again after, it is
// claimed again: the new event is first, the old one no longer is.
func TestChatsExpire(t *testing.T) {
	cfg, clk, c := ttlConfig(t, time.Hour)
	start := clk.Now()
	s := open(t, cfg)
	const chat = "1@s.whatsapp.net"
	firstSeen(t, s, chat, "ev1", true)
	clk.Add(time.Hour - time.Nanosecond)
	firstSeen(t, s, chat, "ev1", true)
	firstSeen(t, s, chat, "ev2", false)
	clk.Add(time.Nanosecond) // the expiry
	firstSeen(t, s, chat, "ev2", true)
	firstSeen(t, s, chat, "ev1", false)
	firstSeen(t, s, chat, "ev2", true)

	recs := topicRecords(t, c, cfg.ChatsTopic)[chatKey(chat)]
	if len(recs) != 2 {
		t.Fatalf("%d records of the chat, want 2: %v", len(recs), recs)
	}
	at := func(d time.Duration) string { return start.Add(d).UTC().Format(time.RFC3339Nano) }
	want := []map[string]any{
		{"first_event": "ev1", "first_seen_at": at(0), "expires_at": at(time.Hour), "version": 1.0},
		{"first_event": "ev2", "first_seen_at": at(time.Hour), "expires_at": at(2 * time.Hour), "version": 1.0},
	}
	for i, r := range recs {
		if diff := cmp.Diff(want[i], r.Value); diff != "" {
			t.Errorf("record %d mismatch (-want +got):\n%s", i, diff)
		}
	}
}

// Chats claimed without a TTL carry no expiry and are never claimed again,
// whatever the time.
func TestChatsWithoutTTL(t *testing.T) {
	cfg, clk, c := ttlConfig(t, 0)
	s := open(t, cfg)
	firstSeen(t, s, "1@s.whatsapp.net", "ev1", true)
	clk.Add(100 * 365 * 24 * time.Hour)
	firstSeen(t, s, "1@s.whatsapp.net", "ev2", false)
	recs := topicRecords(t, c, cfg.ChatsTopic)[chatKey("1@s.whatsapp.net")]
	if len(recs) != 1 || recs[0].Value["expires_at"] != nil {
		t.Errorf("records %v, want one without expires_at", recs)
	}
}

// Two stores see the same expired chats again at once, with different
// events: for each chat exactly one of them is first, both agree, the old
// first event is first for neither, and a store restored after compaction
// agrees too.
func TestChatsReclaimRaceAcrossStores(t *testing.T) {
	cfg, clk, c := ttlConfig(t, time.Hour)
	s1, s2 := open(t, cfg), open(t, cfg)
	const chats = 20
	name := func(i int) string { return fmt.Sprintf("%d@s.whatsapp.net", i) }
	for i := range chats {
		firstSeen(t, s1, name(i), "old", true)
	}
	clk.Add(time.Hour + time.Second)
	winners := raceFirstSeen(t, s1, s2, chats, name)
	agree := func(what string, s *kafkastate.Store) { agreeOnWinners(t, what, s, winners, name, "old", "a", "b") }
	agree("store 1", s1)
	agree("store 2", s2)
	for i := range chats {
		recs := topicRecords(t, c, cfg.ChatsTopic)[chatKey(name(i))]
		if last := recs[len(recs)-1].Value; last["first_event"] != winners[i] {
			t.Errorf("chat %d: last record %v, want first_event %q", i, last, winners[i])
		}
	}
	c.Compact()
	agree("a store restored after compaction", open(t, cfg))
}

// A repair of an expired epoch written after the new epoch's claim (a
// writer that read the chat just before it expired) loses whatever its
// version, and the next call repairs the new epoch, so that compaction
// keeps it.
func TestChatsLateRepairOfOldEpoch(t *testing.T) {
	cfg, clk, c := ttlConfig(t, time.Hour)
	start := clk.Now().UTC()
	s1 := open(t, cfg)
	const chat = "1@s.whatsapp.net"
	firstSeen(t, s1, chat, "old", true)
	clk.Add(time.Hour)
	firstSeen(t, s1, chat, "new", true)
	produce(t, c, cfg.ChatsTopic, chatKey(chat), map[string]any{
		"first_event": "old", "first_seen_at": start, "expires_at": start.Add(time.Hour), "version": 7,
	})

	s2 := open(t, cfg) // restored with the late repair as the last record
	firstSeen(t, s2, chat, "new", true)
	firstSeen(t, s2, chat, "old", false)
	recs := topicRecords(t, c, cfg.ChatsTopic)[chatKey(chat)]
	if last := recs[len(recs)-1].Value; last["first_event"] != "new" || last["version"] != 2.0 {
		t.Fatalf("last record after the repair %v, want first_event new at version 2; records %v", last, recs)
	}
	c.Compact()
	for _, s := range []*kafkastate.Store{s1, open(t, cfg)} {
		firstSeen(t, s, chat, "new", true)
		firstSeen(t, s, chat, "old", false)
	}
}

// A store opened after chats expired holds none of those gone (an hour
// after their expiry) and answers as the store that saw them live does.
func TestChatsRestoreAfterExpiry(t *testing.T) {
	cfg, clk, _ := ttlConfig(t, time.Hour)
	s1 := open(t, cfg)
	firstSeen(t, s1, "a@s.whatsapp.net", "a1", true)
	firstSeen(t, s1, "b@s.whatsapp.net", "b1", true)
	clk.Add(90 * time.Minute)
	firstSeen(t, s1, "c@s.whatsapp.net", "c1", true)
	clk.Add(time.Hour) // a and b are gone, c expired half an hour ago
	firstSeen(t, s1, "a@s.whatsapp.net", "a2", true)

	s2 := open(t, cfg)
	if got := s2.Chats().Held(); got != 2 {
		t.Errorf("restored store holds %d chats, want 2 (a's new epoch, c expired)", got)
	}
	for _, s := range []*kafkastate.Store{s2, s1} {
		firstSeen(t, s, "a@s.whatsapp.net", "a1", false)
		firstSeen(t, s, "a@s.whatsapp.net", "a2", true)
	}
	firstSeen(t, s2, "c@s.whatsapp.net", "c2", true) // expired: a new epoch
	firstSeen(t, s2, "b@s.whatsapp.net", "b2", true) // gone: the key's first again
	for _, s := range []*kafkastate.Store{s1, open(t, cfg)} {
		firstSeen(t, s, "b@s.whatsapp.net", "b1", false)
		firstSeen(t, s, "b@s.whatsapp.net", "b2", true)
		firstSeen(t, s, "c@s.whatsapp.net", "c1", false)
		firstSeen(t, s, "c@s.whatsapp.net", "c2", true)
	}
}

// Expired chats leave memory at the next sweep once they are gone.
func TestChatsHeldDropsAfterSweep(t *testing.T) {
	cfg, clk, _ := ttlConfig(t, 2*time.Second) // a sweep every 500ms
	s := open(t, cfg)
	for i := range 10 {
		firstSeen(t, s, fmt.Sprintf("%d@s.whatsapp.net", i), "ev", true)
	}
	clk.Add(time.Hour)
	firstSeen(t, s, "kept@s.whatsapp.net", "ev", true)
	if got := s.Chats().Held(); got != 11 {
		t.Fatalf("Held() = %d, want 11", got)
	}
	clk.Add(2 * time.Second) // the first ten are gone; the last expired, but is kept an hour
	deadline := time.Now().Add(10 * time.Second)
	for s.Chats().Held() != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := s.Chats().Held(); got != 1 {
		t.Errorf("Held() after expiry and a sweep = %d, want 1", got)
	}
	firstSeen(t, s, "kept@s.whatsapp.net", "other", true)
	firstSeen(t, s, "0@s.whatsapp.net", "other", true)
	if got := s.Chats().Held(); got != 2 {
		t.Errorf("Held() after two claims = %d, want 2", got)
	}
}

// describeTopics returns the named configs of topics.
func describeTopics(t *testing.T, c *kfake.Cluster, names []string, topics ...string) map[string]map[string]string {
	t.Helper()
	req := &kafka.DescribeConfigsRequest{}
	for _, topic := range topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: names})
	}
	resp, err := client(c).DescribeConfigs(testCtx(t), req)
	if err != nil {
		t.Fatalf("DescribeConfigs: %v", err)
	}
	got := map[string]map[string]string{}
	for _, r := range resp.Resources {
		if r.Error != nil {
			t.Fatalf("DescribeConfigs(%s): %v", r.ResourceName, r.Error)
		}
		got[r.ResourceName] = map[string]string{}
		for _, e := range r.ConfigEntries {
			got[r.ResourceName][e.ConfigName] = e.ConfigValue
		}
	}
	return got
}

func TestOpenCreatesChatsTopicWithTTL(t *testing.T) {
	cfg, _, c := ttlConfig(t, 48*time.Hour)
	open(t, cfg)
	got := describeTopics(t, c, []string{"cleanup.policy", "retention.ms", "min.compaction.lag.ms"}, cfg.ChatsTopic)[cfg.ChatsTopic]
	want := map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "176400000", "min.compaction.lag.ms": "3600000"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chats topic configs mismatch (-want +got):\n%s", diff)
	}
	cfg.ChatsTTL = 24 * time.Hour // another process, a shorter TTL: the topic keeps them long enough
	open(t, cfg)
}

// A chats topic that deletes records by age is refused unless chats expire
// no sooner; a labels topic that does is always refused.
func TestOpenRefusesChatsTopicThatDeletes(t *testing.T) {
	for name, tt := range map[string]struct {
		labels  bool
		configs map[string]string
		ttl     time.Duration
		wantErr string
	}{
		"chats without a TTL":      {false, map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "-1"}, 0, "cleanup.policy=compact,delete"},
		"chats kept shorter":       {false, map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "3600000"}, time.Hour, "retention.ms=3600000"},
		"chats kept long enough":   {false, map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "7200000"}, time.Hour, ""},
		"chats compacted with TTL": {false, map[string]string{"cleanup.policy": "compact"}, time.Hour, ""},
		"labels deleted":           {true, map[string]string{"cleanup.policy": "delete,compact", "retention.ms": "-1"}, time.Hour, "cleanup.policy=delete,compact"},
		"labels compacted":         {true, map[string]string{"cleanup.policy": "compact"}, 0, ""},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, _, c := ttlConfig(t, tt.ttl)
			topic := cfg.ChatsTopic
			if tt.labels {
				topic = cfg.LabelsTopic
			}
			if err := c.CreateTopic(topic, 2, tt.configs); err != nil {
				t.Fatalf("CreateTopic: %v", err)
			}
			s, err := kafkastate.Open(testCtx(t), cfg)
			if err == nil {
				closeStore(t, s)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Open: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Open error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
