package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog"
	"github.com/wahook/wahook/pkg/state"
)

// Time ranges the event pages offer; the default is the first.
var ranges = []struct {
	Name string
	D    time.Duration
}{{"1h", time.Hour}, {"15m", 15 * time.Minute}, {"6h", 6 * time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}}

// pageLimit is how many events a page lists; listMaxScan how many messages
// one page's query may read.
const (
	pageLimit   = 100
	listMaxScan = 50_000
	// maxShownBody bounds the bytes of a body or data shown on a page.
	maxShownBody = 64 << 10
)

// filters are an event page's query string, checked.
type filters struct {
	Provider, Channel, Type, Chat, Range string
	Streams                              []string
	Since                                time.Time
}

func (f filters) Has(s string) bool { return slices.Contains(f.Streams, s) }

// Query is the query of the filters' events.
func (f filters) query() eventlog.Query {
	q := eventlog.Query{Provider: f.Provider, Channel: f.Channel, Since: f.Since, Limit: pageLimit, MaxScan: listMaxScan, Newest: true}
	for _, s := range f.Streams {
		q.Streams = append(q.Streams, eventlog.Stream(s))
	}
	if f.Type != "" {
		q.Types = []string{f.Type}
	}
	if f.Chat != "" {
		q.Chats = []string{f.Chat}
	}
	return q
}

// URL is the filters as a query string.
func (f filters) URL() string {
	v := make([]string, 0, 8)
	add := func(k, val string) {
		if val != "" {
			v = append(v, k+"="+template.URLQueryEscaper(val))
		}
	}
	add("provider", f.Provider)
	add("channel", f.Channel)
	add("type", f.Type)
	add("chat", f.Chat)
	add("range", f.Range)
	for _, s := range f.Streams {
		add("stream", s)
	}
	return strings.Join(v, "&")
}

// Link is the link to the page at path with the filters: the URL's parts
// are escaped already.
func (f filters) Link(path string) template.URL {
	if u := f.URL(); u != "" {
		return template.URL(path + "?" + u)
	}
	return template.URL(path)
}

var errFilter = errors.New("bad filter")

func readFilters(r *http.Request, defaultRange string) (filters, error) {
	f := filters{Provider: r.FormValue("provider"), Channel: r.FormValue("channel"), Type: r.FormValue("type"),
		Chat: r.FormValue("chat"), Range: r.FormValue("range")}
	for _, s := range []string{f.Provider, f.Channel, f.Type, f.Chat} {
		if len(s) > maxFilter {
			return f, fmt.Errorf("%w: a filter is longer than %d bytes", errFilter, maxFilter)
		}
	}
	if f.Channel != "" && f.Provider == "" {
		return f, fmt.Errorf("%w: a channel needs its provider", errFilter)
	}
	for _, s := range r.Form["stream"] {
		if !slices.Contains(eventlog.Streams, eventlog.Stream(s)) {
			return f, fmt.Errorf("%w: stream %q", errFilter, s)
		}
		if !slices.Contains(f.Streams, s) {
			f.Streams = append(f.Streams, s)
		}
	}
	if f.Range == "" {
		f.Range = defaultRange
	}
	for _, rg := range ranges {
		if rg.Name == f.Range {
			f.Since = time.Now().Add(-rg.D)
		}
	}
	if f.Since.IsZero() {
		return f, fmt.Errorf("%w: range %q", errFilter, f.Range)
	}
	return f, nil
}

// eventRow is one event in a list.
type eventRow struct {
	Stream   string
	Position string
	Stored   time.Time
	ID       string
	Type     string
	Source   string
	Subject  string
	Provider string
	Channel  string
	Time     time.Time
	Summary  string
	Swatch   string // a label's colour, when the event is about a label
}

func rowOf(r eventlog.Record) eventRow {
	ev := r.Event
	row := eventRow{Stream: string(r.Stream), Position: r.Position, Stored: r.Stored, ID: ev.ID(), Type: ev.Type(),
		Source: ev.Source(), Subject: ev.Subject(), Provider: eventlog.Extension(ev, envelope.ExtProvider), Channel: eventlog.Extension(ev, envelope.ExtChannel),
		Time: ev.Time()}
	var d struct {
		Label *struct {
			ID, Name, Color string
			ColorHex        string `json:"color_hex"`
		}
		Status       string
		Reason       string
		Subject      string
		Participants []string
	}
	if r.Stream == eventlog.Raw || json.Unmarshal(ev.Data(), &d) != nil {
		return row
	}
	switch {
	case d.Label != nil:
		row.Summary = strings.TrimSpace(d.Label.Name + " (" + d.Label.ID + ")")
		row.Swatch = swatchColor(d.Label.ColorHex, d.Label.Color)
	case d.Reason != "":
		row.Summary = d.Reason
	case d.Status != "":
		row.Summary = d.Status
	case d.Subject != "":
		row.Summary = d.Subject
	case len(d.Participants) > 0:
		row.Summary = strings.Join(d.Participants, ", ")
	}
	return row
}

type tailPage struct {
	Filters filters
	Ranges  []string
	Rows    []eventRow
	Scanned int
	// Older tells a page after the first: it has no live events. Next
	// links to the page of older events, empty on the last.
	Older     bool
	Next      template.URL
	Truncated bool
	Error     string
}

func rangeNames() []string {
	out := make([]string, len(ranges))
	for i, r := range ranges {
		out[i] = r.Name
	}
	return out
}

// serveTail lists the newest events the filters select, then the live
// ones over server-sent events (the page's script).
func (c *Console) serveTail(w http.ResponseWriter, r *http.Request) {
	f, err := readFilters(r, "1h")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a, err := readPageArgs(r, pageLimit)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := f.query()
	q.Limit, q.After = a.N, a.After
	if err := q.Check(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := tailPage{Filters: f, Ranges: rangeNames(), Older: a.After != nil}
	page, err := c.cfg.Events.Query(r.Context(), q)
	if err != nil {
		p.Error = err.Error()
	}
	for i := len(page.Records) - 1; i >= 0; i-- {
		p.Rows = append(p.Rows, rowOf(page.Records[i]))
	}
	p.Scanned, p.Truncated = page.Scanned, page.Truncated
	p.Next = a.nextURL("/console/tail", f.URL(), page.Next, pageLimit)
	c.render(w, r, "tail", "Live tail", p)
}

// liveBuffer bounds the events waiting to be sent to one live tail: a
// browser that cannot keep up misses some, and is told.
const liveBuffer = 256

// resumeWindow bounds how far back a live tail opened again goes: the gap
// of a reconnection, not a replay.
const resumeWindow = time.Minute

// tailMaxScan bounds the messages a live tail opened again reads of its
// replay, as a list page's reads are: a browser reconnecting in a loop
// costs no more than one reloading the list. A variable so that tests
// can lower it.
var tailMaxScan = listMaxScan

// resumeFrom is where a live tail starts: at lastID, the stored time (Unix
// milliseconds) of the last event the browser got before it opened the
// view again, but no earlier than resumeWindow; from now (zero) for a new
// view or an id that is not one. The browser drops the events of that
// millisecond it has already.
func resumeFrom(lastID string, now time.Time) time.Time {
	ms, err := strconv.ParseInt(lastID, 10, 64)
	if err != nil || ms > now.UnixMilli() {
		return time.Time{}
	}
	if from := now.Add(-resumeWindow); time.UnixMilli(ms).Before(from) {
		return from
	}
	return time.UnixMilli(ms)
}

// serveTailLive sends the events the filters select as they are stored,
// each with its stored time as its id so that a view opened again resumes.
func (c *Console) serveTailLive(w http.ResponseWriter, r *http.Request) {
	f, err := readFilters(r, "1h")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := f.query()
	q.Since = resumeFrom(r.Header.Get("Last-Event-ID"), time.Now())
	q.MaxScan = tailMaxScan
	// Past the cap the tail goes on live; the page says how much it
	// passed over, once, instead of a line per event.
	var skipped atomic.Int64
	skipNote := make(chan struct{}, 1)
	q.OnSkip = func(n int64) {
		skipped.Add(n)
		select {
		case skipNote <- struct{}{}:
		default:
		}
	}
	// The request ends at the view's age (live), which also gives
	// eventlog's NATS subscription the deadline its flush needs.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	rows := make(chan eventRow, liveBuffer)
	followed := make(chan error, 1)
	var dropped atomic.Int64 // fn may be called from several readers at once
	go func() {
		followed <- c.cfg.Events.Follow(ctx, q, func(rec eventlog.Record) error {
			select {
			case rows <- rowOf(rec):
			default:
				dropped.Add(1)
			}
			return nil
		})
		close(rows)
	}()
	c.stream(w, r, func(sctx context.Context) (sse, error) {
		select {
		case row, ok := <-rows:
			if !ok {
				err := <-followed
				if err == nil || errors.Is(err, context.DeadlineExceeded) {
					err = errors.New("live tail ended")
				}
				return sse{}, err
			}
			var buf bytes.Buffer
			if err := c.pages["tail"].ExecuteTemplate(&buf, "tail-row", row); err != nil {
				return sse{}, err
			}
			return sse{Event: "event", ID: strconv.FormatInt(row.Stored.UnixMilli(), 10), Data: buf.Bytes()}, nil
		case <-skipNote:
			return sse{Event: "notice", Data: fmt.Appendf(nil, "resumed: %d older events skipped", skipped.Swap(0))}, nil
		case <-sctx.Done():
			return sse{}, sctx.Err()
		}
	})
	cancel()
	for range rows {
	}
	if n := dropped.Load(); n > 0 {
		c.cfg.Logger.Info("console: live tail could not keep up", zap.Int64("dropped", n))
	}
}

type eventPage struct {
	ID      string
	Found   []eventDetail
	Raw     *eventRow
	Derived []eventRow
	TraceID string
	// RequestID is the request id of the delivery the raw event came in,
	// Delivery that delivery's raw events (the first pageLimit).
	RequestID    string
	Delivery     []eventRow
	DeliveryMore bool
	Range        string
	Ranges       []string
	Error        string
	Redrive      bool
}

type eventDetail struct {
	Row   eventRow
	Attrs []attr
	Data  string
}

type attr struct{ Name, Value string }

// serveEvent shows one event by id with its causal chain: the raw event,
// every event derived from it, and its trace.
func (c *Console) serveEvent(w http.ResponseWriter, r *http.Request) {
	id := r.FormValue("id")
	if id == "" || len(id) > maxFilter {
		http.Error(w, "id missing or too long", http.StatusBadRequest)
		return
	}
	f, err := readFilters(r, "24h")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := eventPage{ID: id, Range: f.Range, Ranges: rangeNames()}
	ctx := r.Context()
	page, err := c.cfg.Events.Query(ctx, eventlog.Query{IDs: []string{id}, Since: f.Since, Limit: 10, MaxScan: eventlog.MaxMaxScan, Newest: true})
	if err != nil {
		p.Error = err.Error()
	}
	rawID := ""
	for _, rec := range page.Records {
		p.Found = append(p.Found, detailOf(rec))
		switch rec.Stream {
		case eventlog.Raw:
			rawID = rec.Event.ID()
		case eventlog.Derived:
			rawID = eventlog.Extension(rec.Event, envelope.ExtCausationID)
		}
	}
	if rawID != "" && p.Error == "" {
		raw, err := c.cfg.Events.Query(ctx, eventlog.Query{Streams: []eventlog.Stream{eventlog.Raw}, IDs: []string{rawID},
			Since: f.Since, Limit: 1, MaxScan: eventlog.MaxMaxScan, Newest: true, NoNext: true})
		if err == nil && len(raw.Records) > 0 {
			row := rowOf(raw.Records[0])
			p.Raw = &row
			p.TraceID = traceID(eventlog.Extension(raw.Records[0].Event, envelope.ExtTraceParent))
			p.RequestID = eventlog.Extension(raw.Records[0].Event, envelope.ExtRequestID)
		}
		if p.RequestID != "" {
			// A bounded read: the delivery's items are stored together,
			// so they are near the raw event in the range.
			dp, err := c.cfg.Events.Query(ctx, eventlog.Query{Streams: []eventlog.Stream{eventlog.Raw}, RequestID: p.RequestID,
				Since: f.Since, Limit: pageLimit, MaxScan: eventlog.MaxMaxScan})
			if err != nil {
				p.Error = err.Error()
			}
			for _, rec := range dp.Records {
				p.Delivery = append(p.Delivery, rowOf(rec))
			}
			p.DeliveryMore = len(dp.Records) == pageLimit || dp.Truncated
		}
		derived, err := c.cfg.Events.Query(ctx, eventlog.Query{Streams: []eventlog.Stream{eventlog.Derived}, CausationID: rawID,
			Since: f.Since, Limit: pageLimit, MaxScan: eventlog.MaxMaxScan})
		if err != nil {
			p.Error = err.Error()
		}
		for _, rec := range derived.Records {
			p.Derived = append(p.Derived, rowOf(rec))
		}
	}
	c.render(w, r, "event", "Event", p)
}

// traceID is the trace id of a W3C traceparent, "" when there is none.
func traceID(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		return ""
	}
	return parts[1]
}

func detailOf(rec eventlog.Record) eventDetail {
	ev := rec.Event
	d := eventDetail{Row: rowOf(rec)}
	add := func(n, v string) {
		if v != "" {
			d.Attrs = append(d.Attrs, attr{n, v})
		}
	}
	add("specversion", ev.SpecVersion())
	add("id", ev.ID())
	add("source", ev.Source())
	add("type", ev.Type())
	add("subject", ev.Subject())
	if !ev.Time().IsZero() {
		add("time", ev.Time().UTC().Format(time.RFC3339Nano))
	}
	add("datacontenttype", ev.DataContentType())
	add("dataschema", ev.DataSchema())
	for _, k := range slices.Sorted(maps.Keys(ev.Extensions())) {
		add(k, eventlog.Extension(ev, k))
	}
	add("stored", rec.Stored.UTC().Format(time.RFC3339Nano))
	add("position", rec.Position)
	add("subject (broker)", rec.Subject)
	d.Data = pretty(ev.Data())
	return d
}

// pretty indents JSON, cut at maxShownBody; other bytes are shown as text.
func pretty(b []byte) string {
	var buf bytes.Buffer
	if json.Valid(b) && json.Indent(&buf, b, "", "  ") == nil {
		b = buf.Bytes()
	}
	if len(b) > maxShownBody {
		return string(b[:maxShownBody]) + "\n… (" + strconv.Itoa(len(b)-maxShownBody) + " more bytes)"
	}
	return string(b)
}

type chatPage struct {
	Input    string
	Chat     string
	Provider string
	Channel  string
	Range    string
	Ranges   []string
	Items    []timelineItem
	Labels   []chatLabel
	// FirstSeen is the earliest event found in the range, First the
	// chat registry's record of the first sighting when it has one.
	FirstSeen time.Time
	First     *sighting
	// Registry reports that a chat registry is open: without one, only
	// the events in the range tell when the chat was first seen. Looked
	// is how many channels' registries were read.
	Registry bool
	Looked   int
	// Aliases are the chat's other form, in the channels where it has one.
	Aliases []string
	Scanned int
	// Older tells a page after the first (older events, its labels
	// from those only); Next links to the page of older events, empty
	// on the last.
	Older     bool
	Newest    template.URL
	Next      template.URL
	Truncated bool
	Error     string
}

type timelineItem struct {
	Time    time.Time
	Kind    string // "added", "removed", "call", "group", "created", "other"
	Type    string
	ID      string
	Text    string
	Swatch  string
	Channel string
}

type chatLabel struct {
	ID, Name, Swatch, Channel string
}

// serveChat shows a chat's history across the derived streams and the
// labels it has now.
func (c *Console) serveChat(w http.ResponseWriter, r *http.Request) {
	input := strings.TrimSpace(r.FormValue("chat"))
	if len(input) > maxFilter {
		http.Error(w, "chat id too long", http.StatusBadRequest)
		return
	}
	f, err := readFilters(r, "7d")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a, err := readPageArgs(r, eventlog.MaxLimit)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := chatPage{Input: input, Provider: f.Provider, Channel: f.Channel, Range: f.Range, Ranges: rangeNames(), Older: a.After != nil}
	if input == "" {
		c.render(w, r, "chat", "Chat timeline", p)
		return
	}
	ctx := r.Context()
	p.Chat = chatid.ID(input)
	// A page after the first reads the other forms its link names
	// (those the first page found) from the start: its own events may
	// name the chat by one only. They are chat ids like the one typed,
	// so they select what a query for them would.
	chats := []string{p.Chat}
	if a.After != nil {
		also := r.Form["also"]
		if len(also) > maxChatChannels {
			http.Error(w, fmt.Sprintf("%s: more than %d other forms of the chat", errFilter, maxChatChannels), http.StatusBadRequest)
			return
		}
		for _, o := range also {
			if len(o) > maxFilter {
				o = ""
			}
			if o = chatid.ID(o); o == "" || len(o) > maxFilter {
				http.Error(w, fmt.Sprintf("%s: another form of the chat empty or too long", errFilter), http.StatusBadRequest)
				return
			}
			if !slices.Contains(chats, o) {
				chats = append(chats, o)
				p.Aliases = append(p.Aliases, o)
			}
		}
	}
	q := eventlog.Query{Streams: []eventlog.Stream{eventlog.Derived}, Chats: chats, Provider: f.Provider, Channel: f.Channel,
		Since: f.Since, Limit: a.N, MaxScan: eventlog.MaxMaxScan, Newest: true, After: a.After}
	if err := q.Check(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	query := func(chats []string) (eventlog.Page, error) {
		q.Chats = chats
		return c.cfg.Events.Query(ctx, q)
	}
	fail := func(what string, err error) {
		c.cfg.Logger.Warn("console: chat page", zap.String("read", what), zap.Error(err))
		if p.Error == "" {
			p.Error = err.Error()
		}
	}
	page, err := query(chats)
	if err != nil {
		fail("events", err)
	}
	// A contact's events name it by its phone number or its hidden id:
	// where the alias registry knows the other, the events of both are
	// read again in one query, still bounded as the first.
	channels := chatChannels(f, page.Records, nil)
	forms := map[state.ProviderChannel]string{}
	if err := otherForms(ctx, c.aliases(), p.Chat, channels, forms); err != nil {
		fail("aliases", err)
	}
	read := len(chats)
	for _, pc := range channels {
		if o := forms[pc]; o != "" && !slices.Contains(chats, o) {
			chats = append(chats, o)
			p.Aliases = append(p.Aliases, o)
		}
	}
	if len(chats) > read && err == nil {
		if both, err := query(chats); err != nil {
			fail("events", err)
		} else {
			page = both
			channels = chatChannels(f, page.Records, channels)
			if err := otherForms(ctx, c.aliases(), p.Chat, channels, forms); err != nil {
				fail("aliases", err)
			}
		}
	}
	if reg := c.chats(); reg != nil {
		p.Registry, p.Looked = true, len(channels)
		first, ok, err := firstSighting(ctx, reg, p.Chat, channels, forms, time.Now())
		switch {
		case err != nil:
			fail("chats", err)
		case ok:
			p.First = &first
		}
	}
	p.Scanned, p.Truncated = page.Scanned, page.Truncated
	// The page's links: the chat as typed, its filters, and on the next
	// page the other forms found.
	link := url.Values{"chat": {input}, "range": {f.Range}}
	if f.Provider != "" {
		link.Set("provider", f.Provider)
	}
	if f.Channel != "" {
		link.Set("channel", f.Channel)
	}
	p.Newest = template.URL("/console/chat?" + link.Encode())
	if len(p.Aliases) > 0 {
		link["also"] = p.Aliases[:min(len(p.Aliases), maxChatChannels)]
	}
	p.Next = a.nextURL("/console/chat", link.Encode(), page.Next, eventlog.MaxLimit)
	p.Items, p.Labels, p.FirstSeen = timeline(ctx, page.Records, c.cfg.Labels())
	c.render(w, r, "chat", "Chat timeline", p)
}

// timeline orders a chat's derived events by their time and folds its
// label events into the labels it has now, named and coloured from the
// registry where it knows them.
func timeline(ctx context.Context, recs []eventlog.Record, reg LabelLister) ([]timelineItem, []chatLabel, time.Time) {
	type labelData struct {
		Label struct {
			ID, Name, Color string
			ColorHex        string `json:"color_hex"`
		}
		Status string
		Video  bool
		From   string
	}
	registry := map[string]map[string]state.Label{} // provider/channel, then id
	known := func(provider, channel, id string) (state.Label, bool) {
		k := provider + "/" + channel
		if _, ok := registry[k]; !ok && reg != nil {
			registry[k] = map[string]state.Label{}
			if ls, err := reg.List(ctx, provider, channel); err == nil {
				for _, l := range ls {
					registry[k][l.ID] = l
				}
			}
		}
		l, ok := registry[k][id]
		return l, ok
	}
	slices.SortStableFunc(recs, func(a, b eventlog.Record) int { return a.Event.Time().Compare(b.Event.Time()) })
	var items []timelineItem
	var first time.Time
	on := map[string]chatLabel{}
	var order []string
	listed := map[string]bool{}
	for _, rec := range recs {
		ev := rec.Event
		it := timelineItem{Time: ev.Time(), Type: ev.Type(), ID: ev.ID(), Kind: "other",
			Channel: eventlog.Extension(ev, envelope.ExtProvider) + " / " + eventlog.Extension(ev, envelope.ExtChannel)}
		if first.IsZero() || ev.Time().Before(first) {
			first = ev.Time()
		}
		var d labelData
		_ = json.Unmarshal(ev.Data(), &d)
		switch {
		case ev.Type() == "io.wahook.label.added" || ev.Type() == "io.wahook.label.removed":
			// The event's own name and colour, as they were; the
			// registry's (as they are now) for the labels the chat has.
			l, inRegistry := known(eventlog.Extension(ev, envelope.ExtProvider), eventlog.Extension(ev, envelope.ExtChannel), d.Label.ID)
			it.Text = cmpOr(d.Label.Name, cmpOr(l.Name, "label "+d.Label.ID))
			it.Swatch = swatchColor(cmpOr(d.Label.ColorHex, l.ColorHex), cmpOr(d.Label.Color, l.Color))
			key := it.Channel + "/" + d.Label.ID
			if ev.Type() == "io.wahook.label.added" {
				it.Kind = "added"
				if !listed[key] {
					listed[key] = true
					order = append(order, key)
				}
				now := chatLabel{ID: d.Label.ID, Name: it.Text, Swatch: it.Swatch, Channel: it.Channel}
				if inRegistry && l.Name != "" {
					now.Name, now.Swatch = l.Name, swatchColor(l.ColorHex, l.Color)
				}
				on[key] = now
			} else {
				it.Kind = "removed"
				delete(on, key)
			}
		case strings.HasPrefix(ev.Type(), "io.wahook.call."):
			it.Kind = "call"
			it.Text = strings.TrimPrefix(ev.Type(), "io.wahook.call.") + " " + map[bool]string{true: "video call", false: "voice call"}[d.Video]
			if d.From != "" {
				it.Text += " from " + d.From
			}
		case strings.HasPrefix(ev.Type(), "io.wahook.group."):
			it.Kind = "group"
			it.Text = strings.TrimPrefix(ev.Type(), "io.wahook.group.")
		case ev.Type() == "io.wahook.chat.created":
			it.Kind = "created"
			it.Text = "chat first seen"
		}
		items = append(items, it)
	}
	var labels []chatLabel
	for _, k := range order {
		if l, ok := on[k]; ok {
			labels = append(labels, l)
		}
	}
	return items, labels, first
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
