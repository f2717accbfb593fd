package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/all"
)

// derivedRecord is one derived event read back.
type derivedRecord struct {
	record
	stream string
	event  cloudevents.Event
}

func (d *derivedRecord) cause() string {
	s, _ := d.event.Extensions()[envelope.ExtCausationID].(string)
	return s
}

func (d *derivedRecord) key() string {
	s, _ := d.event.Extensions()[envelope.ExtPartitionKey].(string)
	return s
}

// outcome is what the checks found; its counts are the figures printed.
type outcome struct {
	// Deliveries.
	sent, acked, attempts int
	failed                []string // deliveries never answered 200, and why
	lost                  []string // acknowledged items missing from the raw stream
	badAcks               []string // 200s whose ids or stored data are not the items'
	model                 []string // oracle and workload model disagree: a harness bug
	// The raw stream.
	rawStored, rawRepeats int
	// Derived events.
	expected, stored int
	missing          int
	unexpected       int
	wrong            int
	dupIDs, dupExtra int
	dupDiffer        []string
	inversions       int
	// keys lists, per key with a derived outcome that differs from the
	// crash-free run's, what differs: the out-of-order outcomes.
	keys       []keyReport
	invKeys    []string // keys whose derived events are stored out of raw order
	deadLetter []string
}

type keyReport struct {
	key   string
	lines []string
}

// rawIndex maps raw event ids to the deliveries that carry them, from the
// provider's own split of each body: ids the ingress must answer with.
type rawIndex map[string]*delivery

func indexDeliveries(ds []*delivery) (rawIndex, []string, error) {
	providers := map[string]provider.Provider{}
	for _, p := range all.Providers() {
		providers[p.Name()] = p
	}
	idx := rawIndex{}
	var bad []string
	for _, d := range ds {
		items, err := providers[d.provider].Split(d.body, provider.Delivery{Method: http.MethodPost})
		if err != nil || len(items) != 1 {
			return nil, nil, fmt.Errorf("workload delivery %s: %d items, %v; want one", d.what, len(items), err)
		}
		id, err := provider.EventID(d.provider, items[0])
		if err != nil {
			return nil, nil, fmt.Errorf("workload delivery %s: %w", d.what, err)
		}
		if prev, ok := idx[id]; ok {
			return nil, nil, fmt.Errorf("workload deliveries %s and %s have one raw event id %s", prev.what, d.what, id)
		}
		idx[id] = d
		d.item = items[0].Data
		if d.acked && !slices.Equal(d.ids, []string{id}) {
			bad = append(bad, fmt.Sprintf("%s: answered ids %v, want [%s]", d.what, d.ids, id))
		}
	}
	return idx, bad, nil
}

// check compares what the broker holds with the deliveries acknowledged
// and with what a crash-free run derives; the verdict decides which of its
// findings fail the run.
//
// handled maps "{stream} {raw event id}" to when and by which process the
// raw event was derived, from the derivers' logs, for the report.
func check(ds []*delivery, tr *truth, derived []derivedRecord, deadLetters []string, handled map[string][]string) (*outcome, error) {
	o := &outcome{sent: len(ds), deadLetter: deadLetters}
	idx, bad, err := indexDeliveries(ds)
	if err != nil {
		return nil, err
	}
	o.badAcks = bad
	for _, d := range ds {
		o.attempts += d.attempts
		if !d.acked {
			o.failed = append(o.failed, fmt.Sprintf("%s (key %s): %s", d.what, d.key, d.failure))
			continue
		}
		o.acked++
		for _, id := range d.ids {
			re, ok := tr.byID[id]
			if !ok {
				o.lost = append(o.lost, fmt.Sprintf("raw %s: %s (key %s), answered 200 after %d attempts", id, d.what, d.key, d.attempts))
				continue
			}
			if !bytes.Equal(re.raw.Data, d.item) {
				o.badAcks = append(o.badAcks, fmt.Sprintf("raw %s (%s): stored data %s, the delivered item is %s", id, re.where, re.raw.Data, d.item))
			}
		}
	}
	o.rawStored, o.rawRepeats = len(tr.raws), tr.repeats

	// The oracle against the workload's model: both must agree on what a
	// crash-free run derives, else the harness itself is wrong.
	for _, re := range tr.raws {
		if re.repeat || re.deadLetter != "" {
			continue
		}
		d := idx[re.raw.ID]
		if d == nil {
			o.model = append(o.model, fmt.Sprintf("raw %s (%s) comes from no delivery of the workload", re.raw.ID, re.where))
			continue
		}
		if got, want := sortedTypes(re.events), slices.Sorted(slices.Values(d.want)); !slices.Equal(got, want) {
			o.model = append(o.model, fmt.Sprintf("%s (raw %s, %s): the oracle derives %v, the workload expects %v", d.what, re.raw.ID, re.where, got, want))
		}
	}
	for _, re := range tr.raws {
		if re.deadLetter != "" {
			o.model = append(o.model, fmt.Sprintf("raw %s (%s): the oracle dead-letters it: %s", re.raw.ID, re.where, re.deadLetter))
		}
	}

	// Derived events against the crash-free run.
	o.expected, o.stored = tr.events, len(derived)
	byID := map[string][]*derivedRecord{}
	for i := range derived {
		d := &derived[i]
		byID[d.event.ID()] = append(byID[d.event.ID()], d)
	}
	for id, copies := range byID {
		if len(copies) < 2 {
			continue
		}
		o.dupIDs++
		o.dupExtra += len(copies) - 1
		for _, c := range copies[1:] {
			if diff := diffEvent(copies[0].event, c.event); diff != "" {
				o.dupDiffer = append(o.dupDiffer, fmt.Sprintf("%s: %s and %s differ: %s", id, copies[0].where, c.where, diff))
			}
		}
	}
	issues := map[*rawEvent][]issue{}
	for _, re := range tr.raws {
		for _, want := range re.events {
			got := byID[want.event.ID()]
			if len(got) == 0 {
				o.missing++
				issues[re] = append(issues[re], issue{want.stream, "missing " + describe(want.event)})
				continue
			}
			if diff := diffEvent(want.event, got[0].event); diff != "" {
				o.wrong++
				w, g := describe(want.event), describe(got[0].event)
				if w == g {
					g += " (" + diff + ")"
				}
				issues[re] = append(issues[re], issue{want.stream, fmt.Sprintf("%s stored as %s", w, g)})
			}
		}
	}
	var orphans []string
	for id, copies := range byID {
		if tr.byEvent[id] != nil {
			continue
		}
		o.unexpected++
		d := copies[0]
		re := tr.byID[d.cause()]
		if re == nil {
			orphans = append(orphans, fmt.Sprintf("%s %s (%s) caused by %s, which is not in the raw stream", d.stream, describe(d.event), d.where, d.cause()))
			continue
		}
		issues[re] = append(issues[re], issue{d.stream, "unexpected " + describe(d.event)})
	}
	o.keys = keyReports(tr, idx, issues, handled)
	if len(orphans) > 0 {
		sort.Strings(orphans)
		o.keys = append(o.keys, keyReport{key: "(no raw event)", lines: orphans})
	}
	o.inversions, o.invKeys = inversions(tr, derived)
	return o, nil
}

// issue is one way a raw event's derived events differ.
type issue struct {
	stream, text string
}

// keyReports groups the raw events whose derived events differ from the
// crash-free run's by key, each with its place among the key's events and
// when it was derived.
func keyReports(tr *truth, idx rawIndex, issues map[*rawEvent][]issue, handled map[string][]string) []keyReport {
	ordinal := map[*rawEvent]int{}
	count := map[string]int{}
	for _, re := range tr.raws {
		if !re.repeat {
			count[re.key]++
			ordinal[re] = count[re.key]
		}
	}
	byKey := map[string][]*rawEvent{}
	for re := range issues {
		byKey[re.key] = append(byKey[re.key], re)
	}
	var out []keyReport
	for key, res := range byKey {
		sort.Slice(res, func(i, j int) bool { return res[i].pos < res[j].pos })
		kr := keyReport{key: key}
		for _, re := range res {
			what := "?"
			if d := idx[re.raw.ID]; d != nil {
				what = d.what
			}
			var texts []string
			streams := map[string]bool{}
			for _, is := range issues[re] {
				texts = append(texts, is.text)
				streams[is.stream] = true
			}
			sort.Strings(texts)
			line := fmt.Sprintf("%s, event %d of %d of the key, raw %s, %s: %s",
				re.where, ordinal[re], count[key], short(re.raw.ID), what, strings.Join(texts, "; "))
			for _, st := range slices.Sorted(maps.Keys(streams)) {
				if h := handled[st+" "+re.raw.ID]; len(h) > 0 {
					line += fmt.Sprintf(" [%s derived it: %s]", st, strings.Join(h, ", "))
				}
			}
			kr.lines = append(kr.lines, line)
		}
		out = append(out, kr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// inversions counts derived events stored before the events of an earlier
// raw event of the same key and stream: per-key order as subscribers see
// it. Repeats are skipped (the first copy is what a subscriber keeps).
func inversions(tr *truth, derived []derivedRecord) (int, []string) {
	type sk struct{ stream, key string }
	type last struct {
		pos   int
		where string
	}
	high := map[sk]last{}
	seen := map[string]bool{}
	n := 0
	keys := map[string]string{}
	for i := range derived {
		d := &derived[i]
		if seen[d.event.ID()] {
			continue
		}
		seen[d.event.ID()] = true
		re := tr.byID[d.cause()]
		if re == nil {
			continue
		}
		k := sk{d.stream, d.key()}
		h, ok := high[k]
		if ok && re.pos < h.pos {
			n++
			if _, noted := keys[d.stream+" "+d.key()]; !noted {
				keys[d.stream+" "+d.key()] = fmt.Sprintf("%s %s: %s from raw %s stored after events of raw %s, later in the raw stream",
					d.stream, d.key(), describe(d.event), re.where, h.where)
			}
			continue
		}
		high[k] = last{re.pos, re.where}
	}
	var out []string
	for _, v := range keys {
		out = append(out, v)
	}
	sort.Strings(out)
	return n, out
}

// deadLetter describes a dead letter for the report.
func deadLetter(r record, b envelope.Binding) string {
	ev, err := envelope.Decode(r.msg, b)
	if err != nil {
		return fmt.Sprintf("%s: not a CloudEvent: %v", r.where, err)
	}
	var d struct {
		Reason        string `json:"reason"`
		SourceEventID string `json:"source_event_id"`
	}
	_ = json.Unmarshal(ev.Data(), &d)
	return fmt.Sprintf("%s: %s (raw %s)", r.where, d.Reason, d.SourceEventID)
}

// diffEvent says how got differs from want in every attribute a subscriber
// reads: id, type, source, subject, time, dataschema, extensions, data.
func diffEvent(want, got cloudevents.Event) string {
	var d []string
	add := func(name string, w, g any) {
		if !reflect.DeepEqual(w, g) {
			d = append(d, fmt.Sprintf("%s %v, want %v", name, g, w))
		}
	}
	add("id", want.ID(), got.ID())
	add("type", want.Type(), got.Type())
	add("source", want.Source(), got.Source())
	add("subject", want.Subject(), got.Subject())
	if !want.Time().Equal(got.Time()) {
		d = append(d, fmt.Sprintf("time %s, want %s", got.Time(), want.Time()))
	}
	add("dataschema", want.DataSchema(), got.DataSchema())
	add("datacontenttype", want.DataContentType(), got.DataContentType())
	add("extensions", want.Extensions(), got.Extensions())
	if !bytes.Equal(want.Data(), got.Data()) {
		d = append(d, fmt.Sprintf("data %s, want %s", got.Data(), want.Data()))
	}
	return strings.Join(d, ", ")
}

// describe names a derived event in reports: its type and what it is
// about ("label.updated label 3 \"L3 g0 v2\" (was \"L3 g0 v1\")").
func describe(ev cloudevents.Event) string {
	s := strings.TrimPrefix(ev.Type(), "io.wahook.")
	var d struct {
		Label *struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"label"`
		Previous *struct {
			Name string `json:"name"`
		} `json:"previous"`
		CallID string `json:"call_id"`
	}
	_ = json.Unmarshal(ev.Data(), &d)
	switch {
	case d.Label != nil:
		id := d.Label.ID
		if id == "" {
			id = "(no id)"
		}
		s += fmt.Sprintf(" label %s %q", id, d.Label.Name)
		if d.Previous != nil {
			s += fmt.Sprintf(" (was %q)", d.Previous.Name)
		}
	case d.CallID != "":
		s += " " + d.CallID
	}
	return s + " [" + short(ev.ID()) + "]"
}

func sortedTypes(evs []expectedEvent) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.event.Type())
	}
	sort.Strings(out)
	return out
}

func short(id string) string {
	if len(id) > 10 {
		return id[:10]
	}
	return id
}
