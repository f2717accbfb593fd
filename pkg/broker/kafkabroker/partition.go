package kafkabroker

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/wahook/wahook/pkg/broker"
)

// commitPoint is what a group commits for a partition: the offset of the
// first record not finished (every record below it is), and how many times
// that record has been handed to a handler so far, kept in the commit's
// metadata.
type commitPoint struct {
	offset   int64
	attempts int
}

// attemptsPrefix starts the commit metadata wahook writes. The metadata is
// free text to Kafka (kafka-consumer-groups shows it); a consumer written
// with another client ignores it.
const attemptsPrefix = "wahook:attempts="

// metadata encodes p's attempts, or nothing when the record at p.offset has
// not been delivered.
func (p commitPoint) metadata() string {
	if p.attempts <= 0 {
		return ""
	}
	return attemptsPrefix + strconv.Itoa(p.attempts)
}

// parseAttempts reads what metadata wrote; anything else counts as none.
func parseAttempts(metadata string) int {
	s, ok := strings.CutPrefix(metadata, attemptsPrefix)
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// record is one fetched record on its way through a session.
type record struct {
	msg  kafka.Message
	key  string
	part *partState
	// hdr is msg's headers once read (see header): by the fetcher, then
	// by the worker the record was handed to.
	hdr broker.Header
	// first marks the first record fetched from its partition in the
	// session: the one at the commit point, redelivered after a crash if
	// any is. Its first delivery is committed before the handler runs, so
	// that a crash in the handler still counts (see Received.Attempt).
	first bool
	// attempts counts deliveries, including those before a restart that
	// the commit metadata remembers; done is set once the record is
	// handled or terminated. Both are guarded by part.mu.
	attempts int
	done     bool
}

// partState tracks the records of one partition a session fetched and has
// not finished, in offset order, and so where the group may commit: below
// the first record not finished every record is done.
type partState struct {
	id int
	mu sync.Mutex
	// pending holds the records from head on; finished ones are dropped
	// from the front as soon as everything before them is finished too.
	pending []*record
	head    int
	// next is the offset after the last record fetched: the commit point
	// once every record is finished. Offsets may skip (compaction,
	// transaction markers), so it is not the last offset plus the count.
	next int64
	// base is where the session started: its attempts stand for the
	// record at base.offset until that record is fetched.
	base commitPoint
	// space wakes the fetcher when the front moves.
	space chan struct{}
	// committed is the last point the coordinator acknowledged, guarded
	// by the session's commit lock.
	committed commitPoint
}

func newPartState(id int, start commitPoint, committed commitPoint) *partState {
	return &partState{
		id:        id,
		next:      start.offset,
		base:      start,
		space:     make(chan struct{}, 1),
		committed: committed,
	}
}

// add appends a fetched record.
func (p *partState) add(r *record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head > 0 && len(p.pending) == cap(p.pending) {
		// Reclaim the finished front instead of growing the array.
		n := copy(p.pending, p.pending[p.head:])
		clear(p.pending[n:])
		p.pending, p.head = p.pending[:n], 0
	}
	p.pending = append(p.pending, r)
	p.next = r.msg.Offset + 1
}

// size is how many records are fetched and not behind the commit point.
func (p *partState) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending) - p.head
}

// waitSpace waits until fewer than limit records are pending, reporting
// false if ctx ended first.
func (p *partState) waitSpace(ctx context.Context, limit int) bool {
	for p.size() >= limit {
		select {
		case <-p.space:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// begin counts a delivery of r and returns its Attempt.
func (p *partState) begin(r *record) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.attempts++
	return r.attempts
}

// finish marks r done and moves the commit point past every finished
// record at the front.
func (p *partState) finish(r *record) {
	p.mu.Lock()
	r.done = true
	moved := false
	for p.head < len(p.pending) && p.pending[p.head].done {
		p.pending[p.head] = nil
		p.head++
		moved = true
	}
	if p.head == len(p.pending) {
		p.pending, p.head = p.pending[:0], 0
	}
	p.mu.Unlock()
	if moved {
		select {
		case p.space <- struct{}{}:
		default:
		}
	}
}

// point is where the group may commit now.
func (p *partState) point() commitPoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head < len(p.pending) {
		front := p.pending[p.head]
		return commitPoint{offset: front.msg.Offset, attempts: front.attempts}
	}
	if p.next == p.base.offset {
		return p.base
	}
	return commitPoint{offset: p.next}
}
