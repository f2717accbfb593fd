package chaos

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Derived event types the workload expects.
const (
	typeLabelCreated = "io.wahook.label.created"
	typeLabelUpdated = "io.wahook.label.updated"
	typeLabelDeleted = "io.wahook.label.deleted"
	typeChatCreated  = "io.wahook.chat.created"
	typeCallMissed   = "io.wahook.call.missed"
	typeCallOffered  = "io.wahook.call.offered"
	typeGroupJoined  = "io.wahook.group.joined"
	typeGroupAdded   = "io.wahook.group.participants.added"
	typeGroupPromote = "io.wahook.group.participants.promoted"
)

// delivery is one webhook as a provider sends it: a body no other delivery
// has, with one item, posted until it is answered 200.
type delivery struct {
	provider string
	body     []byte
	// key is the item's partition key: {provider}/{channel}[/{chat}].
	key string
	// what says what the item is, for reports ("labels.post 7 \"L7 g0 v1\"").
	what string
	// want are the types of the events a crash-free run derives from the
	// item, in any order: the workload's own model, checked against the
	// oracle so that a mistake in either shows.
	want []string

	// item is the delivery's one item as the provider's package splits it:
	// what the raw event must hold, byte for byte.
	item []byte

	// Set by the sender.
	ids      []string
	attempts int
	acked    bool
	// failure says why the delivery was never answered 200 (a 4xx, or it
	// gave up retrying).
	failure string
}

func (d *delivery) path() string { return "/v1/webhooks/" + d.provider }

// workload makes the deliveries of the senders. Each sender owns its keys,
// so a key's deliveries are sent one after the other and land in the raw
// stream in the order the model assumes.
type workload struct {
	seed uint64

	mu   sync.Mutex
	all  []*delivery
	seqs atomic.Int64 // chat sequences started, for unique chats
}

func newWorkload(seed uint64) *workload { return &workload{seed: seed} }

func (w *workload) record(d *delivery) *delivery {
	w.mu.Lock()
	w.all = append(w.all, d)
	w.mu.Unlock()
	return d
}

// deliveries returns every delivery made so far.
func (w *workload) deliveries() []*delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*delivery(nil), w.all...)
}

// source yields a sender's deliveries one at a time.
type source interface {
	next() *delivery
}

// labelChannel is the label registry of one Whapi channel as the provider
// changes it: labels created, edited (labels.post) and deleted by name
// (labels.delete), and deleted ids created again. Every label event of a
// channel has the channel's key, so they are all in order.
type labelChannel struct {
	w       *workload
	rng     *rand.Rand
	channel string
	nextID  int
	// live maps a live label id to its name; deleted ids wait for re-use.
	live    map[int]string
	order   []int // live ids, for a deterministic choice
	deleted []int
	gen     map[int]int // generation of each id (recreations)
	ver     map[int]int // edits of the current generation
}

func (w *workload) labelChannel(i int) *labelChannel {
	return &labelChannel{
		w: w, rng: rand.New(rand.NewPCG(w.seed, uint64(1000+i))),
		channel: fmt.Sprintf("CHAOS-L%d", i),
		live:    map[int]string{}, gen: map[int]int{}, ver: map[int]int{},
	}
}

var labelColors = []string{"gold", "salmon", "lightsteelblue", "mediumseagreen", "orchid"}

func (c *labelChannel) next() *delivery {
	d := &delivery{provider: "whapi", key: "whapi/" + c.channel}
	r := c.rng.IntN(10)
	switch {
	case len(c.live) == 0 || len(c.live) < 4 && r < 3:
		id := c.nextID
		if len(c.deleted) > 0 && c.rng.IntN(2) == 0 {
			id, c.deleted = c.deleted[0], c.deleted[1:]
			c.gen[id]++
		} else {
			c.nextID++
		}
		c.ver[id] = 0
		name := c.name(id)
		c.live[id] = name
		c.order = append(c.order, id)
		d.body = c.post(id, name)
		d.what = fmt.Sprintf("labels.post %d %q (new)", id, name)
		d.want = []string{typeLabelCreated}
	case r < 8:
		id := c.order[c.rng.IntN(len(c.order))]
		c.ver[id]++
		name := c.name(id)
		c.live[id] = name
		d.body = c.post(id, name)
		d.what = fmt.Sprintf("labels.post %d %q (edit)", id, name)
		d.want = []string{typeLabelUpdated}
	default:
		k := c.rng.IntN(len(c.order))
		id := c.order[k]
		name := c.live[id]
		c.order = append(c.order[:k], c.order[k+1:]...)
		delete(c.live, id)
		c.deleted = append(c.deleted, id)
		d.body = []byte(fmt.Sprintf(`{"labels_removed":[%q],"event":{"type":"labels","event":"delete"},"channel_id":%q}`, name, c.channel))
		d.what = fmt.Sprintf("labels.delete %q (label %d)", name, id)
		d.want = []string{typeLabelDeleted}
	}
	return c.w.record(d)
}

// name is unique per label, generation and edit, so every labels.post
// body differs and a deletion by name means one label.
func (c *labelChannel) name(id int) string {
	return fmt.Sprintf("L%d g%d v%d", id, c.gen[id], c.ver[id])
}

func (c *labelChannel) post(id int, name string) []byte {
	return []byte(fmt.Sprintf(`{"labels":[{"id":"%d","name":%q,"color":%q}],"event":{"type":"labels","event":"post"},"channel_id":%q}`,
		id, name, labelColors[c.rng.IntN(len(labelColors))], c.channel))
}

// chatSender makes chats of new contacts and groups, two or three events
// each, sent in order: Z-API and WAHA have no chat-created event, so the
// first event of each chat announces it.
type chatSender struct {
	w     *workload
	rng   *rand.Rand
	index int
	queue []*delivery
}

func (w *workload) chatSender(i int) *chatSender {
	return &chatSender{w: w, rng: rand.New(rand.NewPCG(w.seed, uint64(2000+i))), index: i}
}

// Channels of the chat scenarios.
const (
	zapiChannel = "CHAOS-Z1"
	wahaChannel = "chaos-w1"
)

// baseTime is the provider time of the workload's messages; each gets its
// own second after it.
const baseTime = 1_760_000_000

func (s *chatSender) next() *delivery {
	if len(s.queue) == 0 {
		s.queue = s.chat()
	}
	d := s.queue[0]
	s.queue = s.queue[1:]
	return s.w.record(d)
}

// chat returns the deliveries of one new chat.
func (s *chatSender) chat() []*delivery {
	n := s.w.seqs.Add(1)
	events := 2 + s.rng.IntN(2)
	var out []*delivery
	switch s.rng.IntN(3) {
	case 0: // a Z-API contact: text messages, sometimes a missed call
		phone := fmt.Sprintf("5511%09d", n)
		key := "zapi/" + zapiChannel + "/" + phone + "@s.whatsapp.net"
		for e := range events {
			d := &delivery{provider: "zapi", key: key}
			at := (baseTime + n*10 + int64(e)) * 1000
			if e > 0 && s.rng.IntN(4) == 0 {
				call := fmt.Sprintf("CALL%d-%d", n, e)
				d.body = []byte(fmt.Sprintf(`{"type":"ReceivedCallback","instanceId":%q,"messageId":"ZC%d-%d","phone":%q,"fromMe":false,"momment":%d,"status":"RECEIVED","chatName":"Customer %d","isGroup":false,"isNewsletter":false,"notification":"CALL_MISSED_VOICE","notificationParameters":[],"callId":%q}`,
					zapiChannel, n, e, phone, at, n, call))
				d.what = "zapi missed call " + call
				d.want = []string{typeCallMissed}
			} else {
				fromMe := s.rng.IntN(3) == 0
				d.body = []byte(fmt.Sprintf(`{"type":"ReceivedCallback","instanceId":%q,"messageId":"ZM%d-%d","phone":%q,"fromMe":%t,"momment":%d,"status":"RECEIVED","chatName":"Customer %d","isGroup":false,"isNewsletter":false,"text":{"message":"message %d of chat %d"}}`,
					zapiChannel, n, e, phone, fromMe, at, n, e, n))
				d.what = fmt.Sprintf("zapi message %d of chat %d", e+1, n)
			}
			out = append(out, d)
		}
	case 1: // a WAHA contact: messages, sometimes a call
		phone := fmt.Sprintf("5521%09d", n)
		key := "waha/" + wahaChannel + "/" + phone + "@s.whatsapp.net"
		for e := range events {
			d := &delivery{provider: "waha", key: key}
			at := baseTime + n*10 + int64(e)
			if e > 0 && s.rng.IntN(4) == 0 {
				call := fmt.Sprintf("call-%d-%d", n, e)
				d.body = []byte(fmt.Sprintf(`{"id":"evt-call-%d-%d","timestamp":%d,"session":%q,"engine":"WEBJS","event":"call.received","payload":{"id":%q,"from":"%s@c.us","timestamp":%d,"isVideo":false,"isGroup":false}}`,
					n, e, at*1000, wahaChannel, call, phone, at))
				d.what = "waha call " + call
				d.want = []string{typeCallOffered}
			} else {
				fromMe := s.rng.IntN(3) == 0
				from, to := phone+"@c.us", "5521000000000@c.us"
				if fromMe {
					from, to = to, from
				}
				d.body = []byte(fmt.Sprintf(`{"id":"evt-msg-%d-%d","timestamp":%d,"session":%q,"engine":"WEBJS","event":"message","payload":{"id":"%t_%s_WM%d%d","timestamp":%d,"from":%q,"fromMe":%t,"to":%q,"body":"message %d of chat %d","hasMedia":false}}`,
					n, e, at*1000, wahaChannel, fromMe, phone+"@c.us", n, e, at, from, fromMe, to, e+1, n))
				d.what = fmt.Sprintf("waha message %d of chat %d", e+1, n)
			}
			out = append(out, d)
		}
	default: // a WAHA group joined, then participants added and promoted
		group := fmt.Sprintf("1203630%08d@g.us", n)
		key := "waha/" + wahaChannel + "/" + group
		for e := range events {
			d := &delivery{provider: "waha", key: key}
			at := baseTime + n*10 + int64(e)
			if e == 0 {
				d.body = []byte(fmt.Sprintf(`{"id":"evt-grp-%d-%d","timestamp":%d,"session":%q,"engine":"WEBJS","event":"group.v2.join","payload":{"group":{"id":%q,"subject":"Group %d"}}}`,
					n, e, at*1000, wahaChannel, group, n))
				d.what = fmt.Sprintf("waha group %s joined", group)
				d.want = []string{typeGroupJoined}
				out = append(out, d)
				continue
			}
			action, typ := "add", typeGroupAdded
			if e%2 == 0 {
				action, typ = "promote", typeGroupPromote
			}
			d.body = []byte(fmt.Sprintf(`{"id":"evt-grp-%d-%d","timestamp":%d,"session":%q,"engine":"WEBJS","event":"group.v2.participants","payload":{"chatId":%q,"action":%q,"participants":{"0":"5531%09d@c.us"}}}`,
				n, e, at*1000, wahaChannel, group, action, n*10+int64(e)))
			d.what = fmt.Sprintf("waha group %s %s", group, action)
			d.want = []string{typ}
			out = append(out, d)
		}
	}
	out[0].want = append(out[0].want, typeChatCreated)
	return out
}
