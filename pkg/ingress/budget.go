package ingress

import (
	"net/http"
	"sync/atomic"
)

// budget bounds the deliveries handled at once and the bytes of their
// bodies held in memory. Taking a share never waits: a full budget answers
// 429 at once.
type budget struct {
	deliveries    atomic.Int64
	bytes         atomic.Int64
	maxDeliveries int64
	maxBytes      int64
}

func (b *budget) enter() bool {
	if b.deliveries.Add(1) > b.maxDeliveries {
		b.deliveries.Add(-1)
		return false
	}
	return true
}

func (b *budget) leave() { b.deliveries.Add(-1) }

func (b *budget) reserve(n int64) bool {
	if b.bytes.Add(n) > b.maxBytes {
		b.bytes.Add(-n)
		return false
	}
	return true
}

func (b *budget) release(n int64) { b.bytes.Add(-n) }

// delivery is what one webhook request holds while it is handled: its
// shares of the budgets, its body buffer, and what the panic path needs to
// dead-letter the body. Requests whose sender is not known yet (providers
// that sign the body, providers running open) hold a share of the
// unauthenticated budget as well as of the total one, so they can never
// take more than that budget's part of the ingress from authenticated
// providers.
type delivery struct {
	h       *Handler
	entered bool
	unauth  bool  // holds a share of the unauthenticated budget
	bytes   int64 // body bytes reserved
	buf     *[]byte
	// reuse is cleared when a publish of the body failed: a broker client
	// may still send it after its caller gave up (kafka-go does), so the
	// buffer is left to the collector rather than reused under it.
	reuse bool
	// body is set once the body is read and its sender checked, and
	// cleared once the delivery is answered: a panic in between
	// dead-letters it.
	body []byte
	// channel is what a dead letter of the panic path names: the pin,
	// once checked.
	channel string
	// authed is set once the sender is checked (or the provider runs
	// open): what an Observer is told.
	authed bool
}

// enter takes a delivery slot, and an unauthenticated one when unauth.
func (d *delivery) enter(unauth bool) bool {
	h := d.h
	if !h.total.enter() {
		return false
	}
	if unauth && !h.unauth.enter() {
		h.total.leave()
		return false
	}
	d.entered, d.unauth = true, unauth
	return true
}

// reserve takes n more body bytes.
func (d *delivery) reserve(n int64) bool {
	h := d.h
	if d.unauth && !h.unauth.reserve(n) {
		return false
	}
	if !h.total.reserve(n) {
		if d.unauth {
			h.unauth.release(n)
		}
		return false
	}
	d.bytes += n
	return true
}

// authenticated gives back the unauthenticated budget's share once the
// body's signature is checked; the total budget's share is kept.
func (d *delivery) authenticated() {
	if d.unauth {
		d.h.unauth.leave()
		d.h.unauth.release(d.bytes)
		d.unauth = false
	}
}

// done gives back everything the delivery holds.
func (d *delivery) done() {
	h := d.h
	if d.entered {
		d.authenticated()
		h.total.leave()
		h.total.release(d.bytes)
		d.entered, d.bytes = false, 0
	}
	if d.buf != nil {
		if d.reuse && cap(*d.buf) <= 1<<20 {
			*d.buf = (*d.buf)[:0]
			h.bufs.Put(d.buf)
		}
		d.buf = nil
	}
}

// saturated answers a delivery refused for want of budget.
func (h *Handler) saturated(w http.ResponseWriter, message string) outcome {
	w.Header().Set("Retry-After", h.retryAfter)
	return h.fail(w, outcome{status: http.StatusTooManyRequests, code: "saturated", message: message})
}
