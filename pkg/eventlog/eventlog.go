// Package eventlog reads wahook's streams as stored by the broker: the raw
// events, the derived ones and the dead letters, on NATS JetStream or
// Kafka. Query reads a bounded range of history and never follows; Follow
// reads from now (or replays from a time) and then follows the live
// events. Both read only what a read-only subscriber may: NATS direct gets
// and plain subscriptions, Kafka partition reads outside any consumer
// group, so reading moves nothing and commits nothing.
package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/envelope"
)

// Stream is one of wahook's streams.
type Stream string

// wahook's streams.
const (
	Raw        Stream = "raw"
	Derived    Stream = "derived"
	DeadLetter Stream = "deadletter"
)

// Streams lists every stream, in the order Query reads them when their
// events share a time.
var Streams = []Stream{Raw, Derived, DeadLetter}

// Record is one event as the broker stored it.
type Record struct {
	Stream Stream
	// Subject is the NATS subject, or the Kafka topic.
	Subject string
	// Position is "WAHOOK_DERIVED/123" (stream/sequence) on NATS,
	// "wahook.call/2/1234" (topic/partition/offset) on Kafka.
	Position string
	// Stored is the broker's time of the message.
	Stored time.Time
	// Event is decoded with the broker's binding, its ce-* headers
	// percent-decoded.
	Event cloudevents.Event

	msg     broker.Message
	binding envelope.Binding
}

// Message is the record as the broker holds it, and the binding to decode
// it with: what pkg/envelope's dead-letter functions read (parts, notes).
func (r Record) Message() (broker.Message, envelope.Binding) { return r.msg, r.binding }

// Query selects stored events. Filters of different fields all apply; the
// values of one field are alternatives.
type Query struct {
	// Streams are the streams read; empty: all three.
	Streams []Stream
	// Provider narrows NATS subjects (wahook.ingress.{provider}.>,
	// wahook.*.{provider}.>, wahook.deadletter.{provider}) and, on Kafka,
	// the events' provider extension.
	Provider string
	// Channel narrows as Provider does, by the channel's subject token (or
	// its channel extension); the dead letters, whose subjects have no
	// channel, by their channel extension.
	Channel string
	// Types are CloudEvent types, exact or path.Match globs
	// (io.wahook.label.*).
	Types []string
	// Chats are chat ids in any form, canonicalised with chatid.ID: a raw
	// event's subject, a derived event's data chat_id or chat_lid.
	Chats []string
	// IDs are CloudEvent ids.
	IDs []string
	// CausationID selects the events whose causationid is this: those
	// derived from that raw event, and the dead letters of the consumers
	// that could not interpret it, so that a raw event's whole chain is
	// one query. The raw stream, whose events have no cause, is not
	// read.
	CausationID string
	// RequestID selects the raw events whose requestid is this: those of
	// one delivery.
	RequestID string
	// Since and Until bound the stored time, both included, to the
	// broker's precision (Kafka's is the millisecond: a record stored in
	// Since's millisecond but before it is left out); zero is unbounded
	// on that side (Until zero: the end when the call starts).
	Since, Until time.Time
	// Limit is how many matches Query returns: DefaultLimit when zero, at
	// most MaxLimit.
	Limit int
	// MaxScan is how many messages Query reads: DefaultMaxScan when zero,
	// at most MaxMaxScan. Follow, when it is set, reads at most this many
	// of its replay (see Follow).
	MaxScan int
	// OnSkip, when set, is told how many messages Follow's replay passed
	// over at MaxScan (see Follow). Query and Scan ignore it.
	OnSkip func(skipped int64)
	// Newest makes Query return the newest Limit matches of the range,
	// reading from its end, instead of the oldest. The page is still in
	// stored order, oldest first, ties in Streams order, as without
	// Newest: the order Follow then adds to, so a "latest N" view that
	// goes live appends and never re-sorts.
	Newest bool
	// After continues a query from where a page of it ended: its
	// Page.Next. The query must be the same but for After (Limit and
	// MaxScan may differ); each page is bounded as the first. With
	// Newest, the pages read nothing stored after the first page, in
	// any source it read (see Page.Next); forward, they read each source
	// up to its end at the time of the page.
	After Position
	// NoNext is for a caller that reads one page and does not page on (a
	// lookup): the read ends once it has Limit matches instead of looking
	// for one more, and Page.Next is nil unless the read stopped at
	// MaxScan.
	NoNext bool
}

// Position is where a page ended in each source it read, by source: a
// NATS stream's name, or a Kafka topic and partition ("wahook.call/2").
// Each value is the last sequence or offset passed in the page's
// direction: the next page reads the messages after it (before it with
// Newest).
type Position map[string]int64

// Bounds of a Query.
const (
	DefaultLimit   = 100
	MaxLimit       = 1000
	DefaultMaxScan = 10_000
	MaxMaxScan     = 200_000
	// MaxFilterLen bounds the bytes of one filter value, MaxFilterValues
	// the values of one list (Types, Chats, IDs).
	MaxFilterLen    = 256
	MaxFilterValues = 100
	// MaxPositions bounds the sources of a Query.After.
	MaxPositions = 10_000
)

// ErrQuery is what a query that cannot be run wraps.
var ErrQuery = errors.New("eventlog: bad query")

// Page is what Query found: the records in stored order (oldest first,
// with Newest too), how many messages it read (the match past Limit, see
// Next, too), and whether it stopped at MaxScan before the range's end.
//
// Next, when matches of the range are left, is where a next page starts
// (Query.After), and that page starts with the first of them: Query reads
// one match past Limit to know, and leaves it to the next page. Next is
// nil when the range holds no match past the page's records. When the
// read stopped at MaxScan with messages of the range left (Truncated),
// Next is where it stopped, whether or not they hold a match. A
// newest-first page's Next has every source the query found (a NATS
// stream, a partition of an existing Kafka topic), those with nothing in
// range or no match too, at the end it had when the first page was read:
// older pages never list what was stored since, out of order. A forward
// page's Next has only the sources with messages in range, and the next
// page reads every source up to its present end, so that paging forward
// reaches the events stored meanwhile.
type Page struct {
	Records   []Record
	Scanned   int
	Truncated bool
	Next      Position
}

// Log reads wahook's streams on one broker.
type Log struct {
	b    backend
	opts options
}

// Option tunes a Log.
type Option func(*options)

type options struct {
	// batch is how many messages one read asks for.
	batch int
	// clientID names the Kafka connections.
	clientID string
	// kafkaOffset, when 0 or more, is where Kafka reads start.
	kafkaOffset int64
	// natsSubject and kafkaTopics, when set, are what is read instead of
	// a query's streams.
	natsSubject string
	kafkaTopics []string
	// readTimeout bounds one read (a direct get's batch, a Kafka fetch)
	// when ctx has no earlier deadline: a reply lost, say to a NATS
	// reconnect, would otherwise hold a Follow, whose ctx has none, for
	// ever.
	readTimeout time.Duration
	// maxPartitions bounds the Kafka partitions one read opens.
	maxPartitions int
	// maxBytes bounds the message bytes one cursor holds: a read past
	// it keeps the part nearest the cursor's start and reads the rest
	// again next time.
	maxBytes int
	// afterBatch, when set, runs after each batch a follow reads (tests).
	afterBatch func()
}

// WithBatch sets how many messages one read asks the broker for (a NATS
// direct get's batch, a Kafka window), 256 by default.
func WithBatch(n int) Option { return func(o *options) { o.batch = n } }

// MaxPartitions is how many Kafka partitions one Query or Follow reads by
// default: each holds a batch in a Query and a reader (a connection, its
// goroutines and buffers) in a Follow.
const MaxPartitions = 512

// WithMaxPartitions bounds the Kafka partitions one Query or Follow reads,
// MaxPartitions by default: a read of more is refused (ErrQuery), so that
// callers narrow it to fewer streams or topics. NATS reads ignore it.
func WithMaxPartitions(n int) Option { return func(o *options) { o.maxPartitions = n } }

// WithClientID sets the client id the Kafka brokers see, "wahook-eventlog"
// by default.
func WithClientID(id string) Option { return func(o *options) { o.clientID = id } }

// WithKafkaOffset makes the Log's reads of Kafka start at this offset in
// every partition (the first one kept when it is gone) instead of at
// Query.Since: for tools that replay by offset. NATS reads ignore it.
func WithKafkaOffset(offset int64) Option { return func(o *options) { o.kafkaOffset = offset } }

// WithNATSSubject makes the Log read this subject, in the streams that
// hold it, instead of a query's streams, provider and channel: for tools
// that watch any part of wahook's subjects (wahook.label-changed.>). The
// records' Stream is the stream's, as Query names it, else its JetStream
// name.
func WithNATSSubject(subject string) Option { return func(o *options) { o.natsSubject = subject } }

// WithKafkaTopics makes the Log read these topics instead of a query's
// streams.
func WithKafkaTopics(topics ...string) Option { return func(o *options) { o.kafkaTopics = topics } }

func newOptions(opts []Option) (options, error) {
	o := options{batch: 256, clientID: "wahook-eventlog", kafkaOffset: -1, maxPartitions: MaxPartitions, readTimeout: 10 * time.Second,
		maxBytes: maxBatchBytes}
	for _, f := range opts {
		f(&o)
	}
	if o.batch < 1 || o.batch > 10_000 {
		return o, fmt.Errorf("eventlog: batch %d: want 1 to 10000", o.batch)
	}
	if o.maxPartitions < 1 {
		return o, fmt.Errorf("eventlog: max partitions %d: want 1 or more", o.maxPartitions)
	}
	return o, nil
}

// backend is how a Log reads one broker.
type backend interface {
	// cursors opens a cursor for each source of q (a NATS stream, a Kafka
	// partition), reading forward or, with newest, backward.
	cursors(ctx context.Context, q Query, newest bool) ([]cursor, error)
	// follow passes fn the messages of q's sources from q.Since (from now
	// when zero), then the live ones, until ctx ends or fn fails. With a
	// replay budget it reads at most that many messages stored before
	// the call, passes over the rest and tells skipped how many, both on
	// fn's goroutine.
	follow(ctx context.Context, q Query, replay *budget, fn func(entry) error, skipped func(int64)) error
	binding() envelope.Binding
	close() error
}

// entry is a message read, before it is decoded.
type entry struct {
	stream   Stream
	subject  string
	position string
	// seq is the NATS sequence or the Kafka offset.
	seq     int64
	stored  time.Time
	msg     broker.Message
	binding envelope.Binding
}

// Query reads the events q selects in its range, stored up to the time of
// the call, within q's bounds. It never waits for new events.
func (l *Log) Query(ctx context.Context, q Query) (Page, error) {
	q, err := q.normalize()
	if err != nil {
		return Page{}, err
	}
	m := newMatcher(q)
	var page Page
	page.Scanned, page.Truncated, page.Next, err = l.scan(ctx, q, q.Newest, q.MaxScan, func(e entry) (bool, error) {
		if q.NoNext && len(page.Records) == q.Limit {
			return true, nil
		}
		r, ok := m.record(e)
		if !ok {
			return false, nil
		}
		if len(page.Records) == q.Limit {
			return true, nil // the next page's first
		}
		page.Records = append(page.Records, r)
		return false, nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("eventlog: query: %w", err)
	}
	if q.NoNext && !page.Truncated {
		page.Next = nil
	}
	if q.Newest {
		slices.Reverse(page.Records)
	}
	return page, nil
}

// Scan passes fn, in stored order, every event q selects in its range up
// to the end it has at the time of the call, whatever q.Limit, holding one
// batch at a time: for tools that read a whole range (tail, redrive). It
// reads at most q.MaxScan messages when that is set, and every one of the
// range otherwise. It stops at the first error of fn, and returns a Page
// without records.
func (l *Log) Scan(ctx context.Context, q Query, fn func(Record) error) (Page, error) {
	maxScan := q.MaxScan
	q, err := q.normalize()
	if err != nil {
		return Page{}, err
	}
	if maxScan > 0 {
		maxScan = q.MaxScan
	}
	m := newMatcher(q)
	var page Page
	page.Scanned, page.Truncated, page.Next, err = l.scan(ctx, q, false, maxScan, func(e entry) (bool, error) {
		if r, ok := m.record(e); ok {
			return false, fn(r)
		}
		return false, nil
	})
	if err != nil {
		return page, fmt.Errorf("eventlog: scan: %w", err)
	}
	return page, nil
}

// Binding is the CloudEvents binding of the Log's broker: what messages
// published beside the records read are encoded with.
func (l *Log) Binding() envelope.Binding { return l.b.binding() }

// Follow passes fn the events q selects from q.Since, or from now when it
// is zero, then the live ones as they are stored, until ctx ends (it
// returns ctx's error) or fn fails (it returns fn's error). q.Until,
// q.Limit and q.Newest do not apply. The events of one NATS stream or one
// Kafka partition come in stored order, each once.
//
// The replay is the messages from q.Since stored before the call. With
// q.MaxScan set (at most MaxMaxScan), Follow reads at most that many of
// them in total, over all its sources, whatever the filters select: a
// caller that follows again and again from a past time then reads no more
// than a Query would. Once the budget is spent, each source with replay
// left goes on from its live end, the messages between passed over, and
// q.OnSkip is called with how many that source passed over (on fn's
// goroutine, never while fn runs): Kafka counts the offsets passed (more
// than the records, in a compacted topic), NATS the stream sequences from
// the first one passed that q's subjects hold (with the stream's messages
// of other subjects in between, when q's provider or channel narrows the
// subjects). Without MaxScan the whole replay is read.
func (l *Log) Follow(ctx context.Context, q Query, fn func(Record) error) error {
	maxScan := q.MaxScan
	q, err := q.normalize()
	if err != nil {
		return err
	}
	var replay *budget
	if maxScan > 0 && !q.Since.IsZero() {
		replay = &budget{left: q.MaxScan}
	}
	onSkip := q.OnSkip
	if onSkip == nil {
		onSkip = func(int64) {}
	}
	q.Until = time.Time{}
	m := newMatcher(q)
	errFn := errors.New("fn failed")
	var fnErr error
	err = l.b.follow(ctx, q, replay, func(e entry) error {
		if r, ok := m.record(e); ok {
			if fnErr = fn(r); fnErr != nil {
				return errFn
			}
		}
		return nil
	}, onSkip)
	switch {
	case fnErr != nil:
		return fnErr
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("eventlog: follow: %w", err)
	}
	return nil
}

// budget is what is left of a follow's replay bound, shared by the
// readers of its sources.
type budget struct {
	mu   sync.Mutex
	left int
}

// take reserves up to n messages of the budget and returns how many it
// got, 0 once it is spent.
func (b *budget) take(n int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = max(min(n, b.left), 0)
	b.left -= n
	return n
}

// give returns n messages reserved but not read.
func (b *budget) give(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.left += n
}

// Close releases what the Log holds. A NATS connection given to NewNATS
// stays open: it is the caller's.
func (l *Log) Close() error { return l.b.close() }

// scan reads q's range merged across its sources in stored order (newest
// first with newest), at most maxScan messages (no bound when 0), and
// passes fn each one before it takes it, until fn says stop: the message
// fn stops at is read but not taken, and the next page starts with it. It
// reports how many it read, whether messages of the range were left at
// maxScan, and, when it stopped with messages left, where each source
// stands (next).
func (l *Log) scan(ctx context.Context, q Query, newest bool, maxScan int, fn func(entry) (stop bool, err error)) (scanned int, truncated bool, next Position, err error) {
	curs, err := l.b.cursors(ctx, q, newest)
	if err != nil {
		return 0, false, nil, err
	}
	defer func() {
		for _, c := range curs {
			c.close()
		}
	}()
	for maxScan == 0 || scanned < maxScan {
		var pick cursor
		var head *entry
		for _, c := range curs {
			e, err := c.peek(ctx)
			if err != nil {
				return scanned, false, nil, err
			}
			if e == nil {
				continue
			}
			// Ties go to the first source forward and to the last one
			// backward: reversed, a Newest page orders them as a forward
			// one does.
			if head == nil || newest && !e.stored.Before(head.stored) || !newest && e.stored.Before(head.stored) {
				pick, head = c, e
			}
		}
		if head == nil {
			return scanned, false, nil, nil
		}
		scanned++
		stop, err := fn(*head)
		if err != nil {
			return scanned, false, nil, err
		}
		if stop {
			return scanned, false, positions(q.After, curs), nil
		}
		pick.pop()
	}
	for _, c := range curs {
		e, err := c.peek(ctx)
		if err != nil {
			return scanned, false, nil, err
		}
		if e != nil {
			return scanned, true, positions(q.After, curs), nil
		}
	}
	return scanned, false, nil, nil
}

// positions is where each of curs stands, over after: a source the page
// did not read keeps its place from the page before, since read again
// from its start it would repeat.
func positions(after Position, curs []cursor) Position {
	p := maps.Clone(after)
	if p == nil {
		p = Position{}
	}
	for _, c := range curs {
		if key, seq := c.position(); key != "" {
			p[key] = seq
		}
	}
	return p
}

// keepNewest appends es, read forward, to out, and drops from out's
// start what passes maxBytes (never the last one), so that a backward read
// holds at most that much. It returns the seq of the newest dropped, -1
// when none was: where the next backward read ends.
func keepNewest(out []entry, es []entry, maxBytes int, dropped int64) ([]entry, int64) {
	size := 0
	for _, e := range out {
		size += len(e.msg.Data)
	}
	for _, e := range es {
		out = append(out, e)
		size += len(e.msg.Data)
		for size > maxBytes && len(out) > 1 {
			size -= len(out[0].msg.Data)
			dropped = out[0].seq
			out[0] = entry{} // let its body go
			out = out[1:]
		}
	}
	return out, dropped
}

// cursor reads one source in one direction.
type cursor interface {
	// peek returns the next message, nil at the end.
	peek(ctx context.Context) (*entry, error)
	pop()
	close()
	// position is the cursor's source and the last sequence or offset
	// it passed (Position).
	position() (source string, seq int64)
}

// endCursor is a backward cursor over a source with nothing in range: it
// reads nothing, and its position is the end the range had, so that the
// pages after it read nothing stored since.
func endCursor(source string, end int64) *bufCursor {
	return &bufCursor{done: true, source: source, passed: end}
}

// bufCursor is a cursor over batches that fill reads.
type bufCursor struct {
	// fill reads the next batch, in the cursor's order, and tells
	// whether it was the last.
	fill    func(ctx context.Context) ([]entry, bool, error)
	closeFn func()
	buf     []entry
	done    bool
	// source names the cursor's source in a Position; passed is the
	// last sequence popped, before any the one before the first.
	source string
	passed int64
}

func (c *bufCursor) peek(ctx context.Context) (*entry, error) {
	for len(c.buf) == 0 && !c.done {
		var err error
		if c.buf, c.done, err = c.fill(ctx); err != nil {
			return nil, err
		}
	}
	if len(c.buf) == 0 {
		return nil, nil
	}
	return &c.buf[0], nil
}

func (c *bufCursor) pop() {
	c.passed = c.buf[0].seq
	c.buf = c.buf[1:]
}

func (c *bufCursor) position() (string, int64) { return c.source, c.passed }

func (c *bufCursor) close() {
	if c.closeFn != nil {
		c.closeFn()
	}
}

// Check tells whether Query would refuse q (ErrQuery), without reading.
func (q Query) Check() error {
	_, err := q.normalize()
	return err
}

// normalize checks q's filters and bounds and fills the defaults.
func (q Query) normalize() (Query, error) {
	if len(q.Streams) == 0 {
		q.Streams = Streams
	}
	var streams []Stream
	for _, s := range Streams {
		if slices.Contains(q.Streams, s) {
			streams = append(streams, s)
		}
	}
	for _, s := range q.Streams {
		if !slices.Contains(Streams, s) {
			return q, fmt.Errorf("%w: stream %q: want raw, derived or deadletter", ErrQuery, s)
		}
	}
	if q.CausationID != "" {
		// Raw events have no cause: reading them would only spend
		// MaxScan.
		streams = slices.DeleteFunc(streams, func(s Stream) bool { return s == Raw })
	}
	q.Streams = streams
	for name, v := range map[string]string{"provider": q.Provider, "channel": q.Channel, "causation id": q.CausationID, "request id": q.RequestID} {
		if len(v) > MaxFilterLen {
			return q, fmt.Errorf("%w: %s of %d bytes, at most %d", ErrQuery, name, len(v), MaxFilterLen)
		}
	}
	for name, vs := range map[string][]string{"type": q.Types, "chat": q.Chats, "id": q.IDs} {
		if len(vs) > MaxFilterValues {
			return q, fmt.Errorf("%w: %d %s filters, at most %d", ErrQuery, len(vs), name, MaxFilterValues)
		}
		for _, v := range vs {
			if len(v) > MaxFilterLen {
				return q, fmt.Errorf("%w: %s filter of %d bytes, at most %d", ErrQuery, name, len(v), MaxFilterLen)
			}
		}
	}
	for _, t := range q.Types {
		if _, err := path.Match(t, ""); err != nil {
			return q, fmt.Errorf("%w: type %q: %w", ErrQuery, t, err)
		}
	}
	if len(q.After) > MaxPositions {
		return q, fmt.Errorf("%w: a position of %d sources, at most %d", ErrQuery, len(q.After), MaxPositions)
	}
	for src, seq := range q.After {
		if len(src) > MaxFilterLen || seq < -1 {
			return q, fmt.Errorf("%w: position %.64q: %d", ErrQuery, src, seq)
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return q, fmt.Errorf("%w: until %s before since %s", ErrQuery, q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	switch {
	case q.Limit < 0:
		return q, fmt.Errorf("%w: limit %d", ErrQuery, q.Limit)
	case q.Limit == 0:
		q.Limit = DefaultLimit
	case q.Limit > MaxLimit:
		q.Limit = MaxLimit
	}
	switch {
	case q.MaxScan < 0:
		return q, fmt.Errorf("%w: max scan %d", ErrQuery, q.MaxScan)
	case q.MaxScan == 0:
		q.MaxScan = DefaultMaxScan
	case q.MaxScan > MaxMaxScan:
		q.MaxScan = MaxMaxScan
	}
	return q, nil
}

// matcher decodes the messages read and selects the records q asks for.
type matcher struct {
	q     Query
	chats map[string]bool
	ids   map[string]bool
}

func newMatcher(q Query) *matcher {
	m := &matcher{q: q}
	if len(q.Chats) > 0 {
		m.chats = map[string]bool{}
		for _, c := range q.Chats {
			m.chats[c] = true
			m.chats[chatid.ID(c)] = true
		}
	}
	if len(q.IDs) > 0 {
		m.ids = map[string]bool{}
		for _, id := range q.IDs {
			m.ids[id] = true
		}
	}
	return m
}

// record decodes e and reports whether q selects it. A message that is not
// a CloudEvent is never selected.
func (m *matcher) record(e entry) (Record, bool) {
	// The brokers find a range's ends by time coarser than q's (Kafka's
	// milliseconds) or not at all (Kafka records out of time order): the
	// records in it are checked again.
	if !m.q.Since.IsZero() && e.stored.Before(m.q.Since) || !m.q.Until.IsZero() && e.stored.After(m.q.Until) {
		return Record{}, false
	}
	ev, err := envelope.Decode(e.msg, e.binding)
	if err != nil {
		return Record{}, false
	}
	q := m.q
	if q.Provider != "" && Extension(ev, envelope.ExtProvider) != q.Provider ||
		q.Channel != "" && Extension(ev, envelope.ExtChannel) != q.Channel ||
		m.ids != nil && !m.ids[ev.ID()] ||
		q.CausationID != "" && Extension(ev, envelope.ExtCausationID) != q.CausationID ||
		q.RequestID != "" && (e.stream != Raw || Extension(ev, envelope.ExtRequestID) != q.RequestID) {
		return Record{}, false
	}
	if len(q.Types) > 0 && !slices.ContainsFunc(q.Types, func(t string) bool {
		ok, _ := path.Match(t, ev.Type())
		return ok || t == ev.Type()
	}) {
		return Record{}, false
	}
	if m.chats != nil && !m.aboutChat(e.stream, ev) {
		return Record{}, false
	}
	return Record{Stream: e.stream, Subject: e.subject, Position: e.position, Stored: e.stored, Event: ev,
		msg: e.msg, binding: e.binding}, true
}

// aboutChat tells whether ev is about one of the chats asked for: its
// subject, and a derived event's chat_id or chat_lid.
func (m *matcher) aboutChat(s Stream, ev cloudevents.Event) bool {
	if ev.Subject() != "" && m.chats[ev.Subject()] {
		return true
	}
	data := ev.Data()
	if s != Derived || len(data) == 0 || data[0] != '{' {
		return false
	}
	var d struct {
		ChatID  string `json:"chat_id"`
		ChatLID string `json:"chat_lid"`
	}
	if json.Unmarshal(data, &d) != nil {
		return false
	}
	return d.ChatID != "" && m.chats[d.ChatID] || d.ChatLID != "" && m.chats[d.ChatLID]
}

// Extension is ev's extension name as a string, "" when unset.
func Extension(ev cloudevents.Event, name string) string {
	v, ok := ev.Extensions()[name]
	if !ok {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}
