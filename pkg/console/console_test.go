package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/eventlog"
	"github.com/wahook/wahook/pkg/state"
)

func TestRatesCountResetsFromZero(t *testing.T) {
	at := time.Unix(0, 0)
	pts := []point{{at, 10}, {at.Add(2 * time.Second), 14}, {at.Add(4 * time.Second), 2}, {at.Add(6 * time.Second), 2}}
	if diff := cmp.Diff([]float64{2, 1, 0}, rates(pts)); diff != "" {
		t.Errorf("rates mismatch (-want +got):\n%s", diff)
	}
}

func TestSwatchColorTakesOnlyColours(t *testing.T) {
	for give, want := range map[[2]string]string{
		{"#B0C4DE", "lightsteelblue"}:       "#B0C4DE",
		{"", "Gold"}:                        "gold",
		{`#fff" onload="x`, ""}:             "#999999",
		{"", "url(javascript:alert(1))"}:    "#999999",
		{"", strings.Repeat("a", 30)}:       "#999999",
		{"#12345", "red; background:url()"}: "#999999",
	} {
		if got := swatchColor(give[0], give[1]); got != want {
			t.Errorf("swatchColor(%q, %q) = %q; want %q", give[0], give[1], got, want)
		}
	}
}

func TestSamplerBoundsAndRates(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wahook_ingress_deliveries_total"}, []string{"provider", "code"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "go_other_total"})
	reg.MustRegister(c, other)
	s := newSampler(reg, nil, time.Second, 3*time.Second)
	at := time.Unix(1000, 0)
	for i := range 6 {
		c.WithLabelValues("whapi", "200").Add(2)
		if i%2 == 1 {
			c.WithLabelValues("whapi", "503").Inc()
		}
		s.sample(at.Add(time.Duration(i) * time.Second))
	}
	v := s.view(mDeliveries, "go_other_total")
	if len(v.series) != 2 {
		t.Fatalf("series kept: %+v; want the two wahook_ ones", v.series)
	}
	for _, sr := range v.series {
		if len(sr.pts) != 4 {
			t.Errorf("%v: %d samples kept; want 4 (3s at 1s)", sr.labels, len(sr.pts))
		}
	}
	byProvider := v.group(mDeliveries, "provider", nil)["whapi"]
	if got := lastRate(byProvider); got != 3 {
		t.Errorf("whapi deliveries/s = %g; want 3 (2 a second, and 1 every other second)", got)
	}
}

// fakeLister is a registry that knows one label.
type fakeLister struct{}

func (fakeLister) Channels(context.Context) ([]state.ProviderChannel, error) { return nil, nil }
func (fakeLister) List(_ context.Context, provider, channel string) ([]state.Label, error) {
	return []state.Label{{ID: "7", Name: "VIP now", Color: "red", CreatedBy: "e"}}, nil
}

func labelEvent(t *testing.T, typ, id, label string, at time.Time) eventlog.Record {
	t.Helper()
	ev := cloudevents.NewEvent()
	ev.SetID(id)
	ev.SetType(typ)
	ev.SetSource("/whapi/CH")
	ev.SetTime(at)
	ev.SetExtension("provider", "whapi")
	ev.SetExtension("channel", "CH")
	b, _ := json.Marshal(map[string]any{"label": json.RawMessage(label)})
	if err := ev.SetData("application/json", b); err != nil {
		t.Fatal(err)
	}
	ev.DataEncoded = b
	return eventlog.Record{Stream: eventlog.Derived, Event: ev}
}

// TestTimelineFoldsLabels: events in time order whatever their stored
// order; the labels on now named from the registry, the events named as
// they were.
func TestTimelineFoldsLabels(t *testing.T) {
	at := time.Unix(2000, 0)
	recs := []eventlog.Record{
		labelEvent(t, "io.wahook.label.added", "3", `{"id":"7","name":"VIP","color":"red"}`, at.Add(3*time.Second)),
		labelEvent(t, "io.wahook.label.added", "1", `{"id":"7","name":"VIP","color":"red"}`, at.Add(1*time.Second)),
		labelEvent(t, "io.wahook.label.removed", "2", `{"id":"7"}`, at.Add(2*time.Second)),
		labelEvent(t, "io.wahook.label.added", "4", `{"id":"8","color_hex":"#00FF00"}`, at.Add(4*time.Second)),
	}
	items, labels, first := timeline(context.Background(), recs, fakeLister{})
	var got []string
	for _, it := range items {
		got = append(got, it.ID+":"+it.Kind+":"+it.Text+":"+it.Swatch)
	}
	want := []string{"1:added:VIP:red", "2:removed:VIP now:red", "3:added:VIP:red", "4:added:label 8:#00FF00"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]chatLabel{{ID: "7", Name: "VIP now", Swatch: "red", Channel: "whapi / CH"},
		{ID: "8", Name: "label 8", Swatch: "#00FF00", Channel: "whapi / CH"}}, labels); diff != "" {
		t.Errorf("labels now mismatch (-want +got):\n%s", diff)
	}
	if !first.Equal(at.Add(time.Second)) {
		t.Errorf("first seen %s; want %s", first, at.Add(time.Second))
	}
}

// TestReadOnlyWithoutToken: no token, no action, whatever a request sends.
func TestReadOnlyWithoutToken(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/console/deadletters/redrive", strings.NewReader("id=x"))
	req.Header.Set("X-Wahook-Console-Token", "")
	if c.authorized(req) {
		t.Error("an empty token is authorized when none is configured")
	}
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://localhost/console/", nil))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "No deliveries in this process") {
		t.Errorf("overview without metrics = %d:\n%s", w.Code, w.Body)
	}
	for _, path := range []string{"/console/tail", "/console/deadletters", "/console/chat"} {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://localhost"+path, nil))
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s without an event log = %d; want 404", path, w.Code)
		}
	}
}

// TestStreamKeepsPayloadInItsDataField: a CR in an event's data (a
// payload's subject, say) or in an error does not start a field of its own:
// a browser ends a line at a lone CR as at a LF.
func TestStreamKeepsPayloadInItsDataField(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	w := httptest.NewRecorder()
	c.stream(w, httptest.NewRequest(http.MethodGet, "/console/tail/live", nil), func(context.Context) (sse, error) {
		calls++
		if calls == 1 {
			return sse{Event: "event", ID: "12\r\nretry: 1", Data: []byte("<tr><td>a\revent: failed\r\ndata: owned\rretry: 99999999</td></tr>")}, nil
		}
		return sse{}, errors.New("broker gone\rid: x")
	})
	out := w.Body.String()
	if strings.Contains(out, "\r") {
		t.Fatalf("stream has a CR:\n%q", out)
	}
	var fields []string
	for line := range strings.SplitSeq(out, "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && name != "" {
			fields = append(fields, name)
		}
	}
	want := []string{"event", "id", "data", "data", "data", "data", "event", "data"}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("fields mismatch (-want +got):\n%s\n%q", diff, out)
	}
}

// deadlineLister records whether the registry was read under a deadline.
type deadlineLister struct {
	fakeLister
	deadline *time.Time
}

func (l deadlineLister) Channels(ctx context.Context) ([]state.ProviderChannel, error) {
	*l.deadline, _ = ctx.Deadline()
	return nil, nil
}

// TestPagesReadUnderADeadline: a page's reads end with it even when the
// client keeps its connection open and the server's write timeout passed.
func TestPagesReadUnderADeadline(t *testing.T) {
	var deadline time.Time
	c, err := New(Config{Labels: func() LabelLister { return deadlineLister{deadline: &deadline} }})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://localhost/console/labels", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("labels = %d:\n%s", w.Code, w.Body)
	}
	if deadline.IsZero() || time.Until(deadline) > pageTimeout {
		t.Errorf("labels read with deadline %v; want one within %s", deadline, pageTimeout)
	}
}

// fakeChats is a chat and alias registry keyed by provider/channel/chat.
type fakeChats struct {
	chats   map[string]state.Chat
	aliases map[string]string
	err     error
	lookups *int
}

func (f fakeChats) Lookup(_ context.Context, provider, channel, chat string) (state.Chat, bool, error) {
	*f.lookups++
	c, ok := f.chats[provider+"/"+channel+"/"+chat]
	return c, ok, f.err
}

type fakeAliases fakeChats

func (f fakeAliases) Lookup(_ context.Context, provider, channel, id string) (string, bool, error) {
	*f.lookups++
	o, ok := f.aliases[provider+"/"+channel+"/"+id]
	return o, ok, f.err
}

// TestFirstSightingEarliestOfBothForms: the registry's earliest first
// sighting wins, of the chat's phone form and its hidden one, across the
// channels read; one lookup per channel and form, no more.
func TestFirstSightingEarliestOfBothForms(t *testing.T) {
	const phone, lid = "5511999999999@s.whatsapp.net", "123456789012345@lid"
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	n := 0
	reg := fakeChats{lookups: &n, chats: map[string]state.Chat{
		"whapi/A/" + phone: {FirstEvent: "ev-phone", FirstSeenAt: now.Add(-2 * time.Hour)},
		"whapi/A/" + lid:   {FirstEvent: "ev-lid", FirstSeenAt: now.Add(-5 * time.Hour)},
		"whapi/B/" + phone: {FirstEvent: "ev-b", FirstSeenAt: now.Add(-3 * time.Hour)},
		// Another channel's hidden id is not this chat's there.
		"whapi/B/" + lid: {FirstEvent: "ev-other", FirstSeenAt: now.Add(-100 * time.Hour)},
	}}
	channels := []state.ProviderChannel{{Provider: "whapi", Channel: "A"}, {Provider: "whapi", Channel: "B"}}
	forms := map[state.ProviderChannel]string{}
	if err := otherForms(context.Background(), fakeAliases{lookups: &n, aliases: map[string]string{"whapi/A/" + phone: lid}}, phone, channels, forms); err != nil {
		t.Fatalf("otherForms: %v", err)
	}
	got, ok, err := firstSighting(context.Background(), reg, phone, channels, forms, now)
	if err != nil || !ok {
		t.Fatalf("firstSighting = %+v, %t, %v; want a sighting", got, ok, err)
	}
	want := sighting{Chat: state.Chat{FirstEvent: "ev-lid", FirstSeenAt: now.Add(-5 * time.Hour)}, Provider: "whapi", Channel: "A", Form: lid, Range: "6h"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("firstSighting mismatch (-want +got):\n%s", diff)
	}
	if n != 2+3 {
		t.Errorf("%d lookups; want 5 (an alias per channel, both forms in A, the phone in B)", n)
	}
	// Asked by its hidden id, without the alias: only that form's record.
	got, ok, err = firstSighting(context.Background(), reg, "nobody@lid", channels, nil, now)
	if err != nil || ok {
		t.Errorf("firstSighting of an unknown chat = %+v, %t, %v; want none", got, ok, err)
	}
	reg.err = errors.New("bucket gone")
	if _, _, err := firstSighting(context.Background(), reg, phone, channels, forms, now); err == nil {
		t.Error("firstSighting with a failing registry: no error")
	}
}

func TestRangeSince(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "15m", 20 * time.Minute: "1h", 59 * time.Minute: "1h", 5 * time.Hour: "6h",
		30 * time.Hour: "7d", 30 * 24 * time.Hour: "7d",
	} {
		if got := rangeSince(d); got != want {
			t.Errorf("rangeSince(%s) = %s; want %s", d, got, want)
		}
	}
}

// TestChatChannelsBounded: the channels of the events found, each once, in
// the provider asked for, at most maxChatChannels; the filters' own channel
// alone when they name one.
func TestChatChannelsBounded(t *testing.T) {
	var recs []eventlog.Record
	for i := range 3 * maxChatChannels {
		r := labelEvent(t, "io.wahook.label.added", "x", `{"id":"1"}`, time.Unix(0, 0))
		r.Event.SetExtension("channel", fmt.Sprintf("CH-%d", i%(2*maxChatChannels)))
		if i%5 == 0 {
			r.Event.SetExtension("provider", "zapi")
		}
		recs = append(recs, r)
	}
	got := chatChannels(filters{}, recs, nil)
	if len(got) != maxChatChannels {
		t.Errorf("chatChannels = %d channels; want %d", len(got), maxChatChannels)
	}
	seen := map[state.ProviderChannel]bool{}
	for _, pc := range got {
		if seen[pc] {
			t.Errorf("chatChannels lists %v twice", pc)
		}
		seen[pc] = true
	}
	for _, pc := range chatChannels(filters{Provider: "zapi"}, recs, nil) {
		if pc.Provider != "zapi" {
			t.Errorf("chatChannels(provider zapi) lists %v", pc)
		}
	}
	only := chatChannels(filters{Provider: "whapi", Channel: "Z"}, recs, nil)
	if diff := cmp.Diff([]state.ProviderChannel{{Provider: "whapi", Channel: "Z"}}, only); diff != "" {
		t.Errorf("chatChannels(whapi, Z) mismatch (-want +got):\n%s", diff)
	}
}
