package console

import (
	"cmp"
	"context"
	"html/template"
	"maps"
	"slices"
	"strconv"
	"time"
)

// The metrics the overview reads (pkg/ingress, pkg/consumer, pkg/backbone,
// natsbroker): a process shows those it registers.
const (
	mDeliveries     = "wahook_ingress_deliveries_total"
	mItems          = "wahook_ingress_items_total"
	mIngressDead    = "wahook_ingress_dead_letters_total"
	mInFlight       = "wahook_ingress_in_flight_deliveries"
	mDerived        = "wahook_consumer_derived_events_total"
	mRaw            = "wahook_consumer_raw_events_total"
	mLag            = "wahook_consumer_lag_events"
	mLagUp          = "wahook_consumer_lag_up"
	mRetrying       = "wahook_consumer_retrying_events"
	mPending        = "wahook_consumer_pending_events"
	mOldest         = "wahook_consumer_oldest_pending_age_seconds"
	mStalled        = "wahook_consumer_stalled_seconds"
	mRetries        = "wahook_consumer_retries_total"
	mJetStreamUp    = "wahook_nats_jetstream_up"
	mJetStreamOK    = "wahook_nats_server_jetstream_healthy"
	mReconnects     = "wahook_broker_reconnects_total"
	mDialErrors     = "wahook_broker_dial_errors_total"
	mStreamBytes    = "wahook_nats_stream_bytes"
	mStreamMsgs     = "wahook_nats_stream_messages"
	mStreamMaxBytes = "wahook_nats_stream_max_bytes"
	mAccountStore   = "wahook_nats_account_store_bytes"
	mAccountLimit   = "wahook_nats_account_store_limit_bytes"
	mDiskFree       = "wahook_nats_server_disk_free_bytes"
	mChatsHeld      = "wahook_state_chats_held"
)

var overviewMetrics = []string{mDeliveries, mItems, mIngressDead, mInFlight, mDerived, mRaw, mLag, mLagUp, mRetrying,
	mPending, mOldest, mStalled, mRetries, mJetStreamUp, mJetStreamOK, mReconnects, mDialErrors, mStreamBytes,
	mStreamMsgs, mStreamMaxBytes, mAccountStore, mAccountLimit, mDiskFree, mChatsHeld}

type overview struct {
	Sampled   time.Time
	Window    time.Duration
	Ready     string // empty when ready
	Providers []providerRow
	Channels  []channelGroup
	Tail      bool // the live tail is served: channels link to it
	Streams   []streamRow
	Health    []healthRow
	Storage   []storageRow
}

type providerRow struct {
	Provider    string
	Rate        float64 // deliveries/s
	Spark       template.HTML
	Deliveries  float64
	ItemsRate   float64
	DeadLetters float64
	Codes       []codeRow
}

type codeRow struct {
	Code  string
	Total float64
	Rate  float64
	Error bool
}

type streamRow struct {
	Stream      string
	Rate        float64 // derived events/s
	Spark       template.HTML
	Derived     float64
	Lag         float64
	LagKnown    bool
	Pending     float64
	Retrying    float64
	OldestAge   float64
	Stalled     float64
	Retries     float64
	DeadLetters float64
}

type healthRow struct {
	Name  string
	Value string
	OK    bool
}

type storageRow struct {
	Stream   string
	Bytes    float64
	Messages float64
	Limit    float64 // 0: none
	Percent  float64
}

// overview computes the page's model from the samples.
func (c *Console) overview(ctx context.Context) overview {
	v := c.sampler.view(overviewMetrics...)
	o := overview{Sampled: v.last, Window: c.cfg.Window, Tail: c.cfg.Events != nil}
	if c.cfg.Ready != nil {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := c.cfg.Ready(rctx); err != nil {
			o.Ready = err.Error()
		}
		cancel()
	}

	byProvider := v.group(mDeliveries, "provider", nil)
	items := v.group(mItems, "provider", nil)
	dead := v.group(mIngressDead, "provider", nil)
	for _, p := range slices.Sorted(maps.Keys(byProvider)) {
		r := rates(byProvider[p])
		row := providerRow{Provider: p, Rate: lastRate(byProvider[p]), Spark: sparkline(r),
			Deliveries: lastValue(byProvider[p]), ItemsRate: lastRate(items[p]), DeadLetters: lastValue(dead[p])}
		codes := v.group(mDeliveries, "code", func(l map[string]string) bool { return l["provider"] == p })
		for _, code := range slices.Sorted(maps.Keys(codes)) {
			row.Codes = append(row.Codes, codeRow{Code: code, Total: lastValue(codes[code]), Rate: lastRate(codes[code]),
				Error: code != "200"})
		}
		o.Providers = append(o.Providers, row)
	}

	o.Channels = c.cfg.Channels.rows(c.sampler.sampleTimes())

	derived := v.group(mDerived, "stream", nil)
	names := map[string]bool{}
	for _, m := range []string{mDerived, mRaw, mPending, mLag} {
		for s := range v.group(m, "stream", nil) {
			names[s] = true
		}
	}
	lag, lagUp := v.group(mLag, "stream", nil), v.group(mLagUp, "stream", nil)
	pending, retrying := v.group(mPending, "stream", nil), v.group(mRetrying, "stream", nil)
	oldest, stalled := v.group(mOldest, "stream", nil), v.group(mStalled, "stream", nil)
	retries := v.group(mRetries, "stream", nil)
	deadLettered := v.group(mRaw, "stream", func(l map[string]string) bool { return l["outcome"] == "dead_lettered" })
	for _, s := range slices.Sorted(maps.Keys(names)) {
		_, known := lag[s]
		if up, ok := lagUp[s]; ok && lastValue(up) == 0 {
			known = false
		}
		o.Streams = append(o.Streams, streamRow{Stream: s, Rate: lastRate(derived[s]), Spark: sparkline(rates(derived[s])),
			Derived: lastValue(derived[s]), Lag: lastValue(lag[s]), LagKnown: known, Pending: lastValue(pending[s]),
			Retrying: lastValue(retrying[s]), OldestAge: lastValue(oldest[s]), Stalled: lastValue(stalled[s]),
			Retries: lastValue(retries[s]), DeadLetters: lastValue(deadLettered[s])})
	}

	flag := func(name, label string) {
		if g := v.group(name, "", nil)[""]; len(g) > 0 {
			ok := lastValue(g) == 1
			o.Health = append(o.Health, healthRow{Name: label, Value: map[bool]string{true: "yes", false: "no"}[ok], OK: ok})
		}
	}
	flag(mJetStreamUp, "JetStream answering")
	flag(mJetStreamOK, "embedded JetStream can store")
	counter := func(name, label string) {
		for _, pts := range v.group(name, "broker", nil) {
			n := lastValue(pts)
			o.Health = append(o.Health, healthRow{Name: label, Value: strconv.FormatFloat(n, 'f', 0, 64), OK: lastRate(pts) == 0})
		}
	}
	counter(mReconnects, "reconnects")
	counter(mDialErrors, "dial errors")
	if g := v.group(mAccountStore, "", nil)[""]; len(g) > 0 {
		o.Health = append(o.Health, healthRow{Name: "account store", Value: bytesText(lastValue(g)) + limitText(v, mAccountLimit), OK: true})
	}
	if g := v.group(mDiskFree, "", nil)[""]; len(g) > 0 {
		o.Health = append(o.Health, healthRow{Name: "disk free", Value: bytesText(lastValue(g)), OK: lastValue(g) > 256<<20})
	}
	if g := v.group(mChatsHeld, "", nil)[""]; len(g) > 0 {
		o.Health = append(o.Health, healthRow{Name: "known chats in memory", Value: strconv.FormatFloat(lastValue(g), 'f', 0, 64), OK: true})
	}

	sb, sm, smax := v.group(mStreamBytes, "stream", nil), v.group(mStreamMsgs, "stream", nil), v.group(mStreamMaxBytes, "stream", nil)
	for _, s := range slices.Sorted(maps.Keys(sb)) {
		row := storageRow{Stream: s, Bytes: lastValue(sb[s]), Messages: lastValue(sm[s]), Limit: lastValue(smax[s])}
		if row.Limit > 0 {
			row.Percent = min(100, 100*row.Bytes/row.Limit)
		}
		o.Storage = append(o.Storage, row)
	}
	slices.SortStableFunc(o.Health, func(a, b healthRow) int { return cmp.Compare(boolInt(a.OK), boolInt(b.OK)) })
	return o
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func limitText(v view, name string) string {
	if g := v.group(name, "", nil)[""]; len(g) > 0 && lastValue(g) > 0 {
		return " of " + bytesText(lastValue(g))
	}
	return ""
}

// bytesText writes n bytes in binary units.
func bytesText(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return strconv.FormatFloat(n, 'f', min(i, 1), 64) + " " + units[i]
}
