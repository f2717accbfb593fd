package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/internal/dispatch"
)

const (
	// fetchMaxWait bounds one fetch long poll, and so how long closing a
	// partition's reader takes at a rebalance or shutdown.
	fetchMaxWait = time.Second
	// fetchMaxBytes bounds one fetch response, at least twice the largest
	// record.
	fetchMaxBytes = 10 << 20
	// commitRetryMax caps the pause before committing again after a
	// failed commit.
	commitRetryMax = time.Second
)

// session consumes what one generation of the group assigned to this
// instance: a fetcher per partition pushes each record on the dispatcher,
// which hands records to workers by key and has the session settle them,
// and a committer commits each partition's commit point as it moves.
type session struct {
	sub   *subscription
	gen   *kafka.Generation
	log   *zap.Logger
	parts []*partState
	d     *dispatch.Dispatcher[*record]

	// commitMu serialises commits and guards each partState.committed.
	commitMu sync.Mutex
	// dirty wakes the committer.
	dirty chan struct{}
}

func newSession(sub *subscription, gen *kafka.Generation) *session {
	return &session{
		sub:   sub,
		gen:   gen,
		log:   sub.log.With(zap.Int32("generation", gen.ID)),
		dirty: make(chan struct{}, 1),
	}
}

// run consumes until ctx (Subscribe's) or gctx (the generation's) ends,
// then winds down: see stop.
func (s *session) run(ctx, gctx, parent context.Context) {
	// sctx keeps parent's values for the handlers and ends with ctx or
	// gctx.
	sctx, cancel := context.WithCancel(parent)
	defer cancel()
	stopCtx := context.AfterFunc(ctx, cancel)
	defer stopCtx()
	stopGen := context.AfterFunc(gctx, cancel)
	defer stopGen()

	var ids []int
	for _, a := range s.gen.Assignments[s.sub.s.Topic] {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	s.log.Info("partitions assigned", zap.Ints("partitions", ids))
	if len(ids) == 0 {
		<-sctx.Done()
		return
	}
	starts, ok := s.setup(sctx, ids)
	if !ok {
		return
	}

	s.d = dispatch.New(sctx, dispatch.Config{
		Workers:      s.sub.s.Concurrency,
		RetryMin:     s.sub.cfg.RetryMin,
		RetryMax:     s.sub.cfg.RetryMax,
		Subscription: s.sub.s,
		Handler:      s.sub.h,
		Log:          s.log,
		Tracker:      s.sub.tracker,
	}, s)
	committerDone, committerStop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(committerDone)
		s.commitLoop(committerStop)
	}()
	var fetchers sync.WaitGroup
	for i, p := range s.parts {
		fetchers.Add(1)
		go func() {
			defer fetchers.Done()
			s.fetch(sctx, p, starts[i])
		}()
	}

	<-sctx.Done()
	grace := s.sub.cfg.ShutdownGrace
	if ctx.Err() == nil {
		grace = s.sub.cfg.revokeGrace()
		s.log.Info("partitions revoked: finishing the records in flight", zap.Ints("partitions", ids))
	}
	s.stop(&fetchers, grace)
	close(committerStop)
	<-committerDone
	fctx, fcancel := context.WithTimeout(context.Background(), groupTimeout)
	defer fcancel()
	if err := s.commit(fctx); err != nil {
		s.logCommit("final commit failed; the records after the last commit are redelivered", err)
	}
}

// setup resolves where each partition starts, commits the starts of
// partitions the group had no offset for, and creates the partitions'
// states. It retries until it succeeds or ctx ends.
func (s *session) setup(ctx context.Context, ids []int) ([]commitPoint, bool) {
	wait := s.sub.cfg.RetryMin
	for {
		starts, fresh, err := s.resolve(ctx, ids)
		if err == nil {
			s.parts = make([]*partState, len(ids))
			for i, id := range ids {
				committed := starts[i]
				if fresh[i] {
					committed = commitPoint{offset: -1}
				}
				s.parts[i] = newPartState(id, starts[i], committed)
			}
			// Committing the starts makes the group exist: a later
			// generation resumes there whatever StartTime says, also on
			// partitions no record was handled from.
			if err := s.commit(ctx); err != nil {
				s.logCommit("committing the start offsets failed", err)
			}
			return starts, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		s.log.Warn("resolving start offsets failed, retrying", zap.Error(err))
		if !dispatch.Sleep(ctx, dispatch.Jitter(wait)) {
			return nil, false
		}
		wait = min(max(2*wait, time.Millisecond), setupRetryMax)
	}
}

// resolve returns each partition's start: the group's committed offset
// (and the attempts its metadata records), else, for a group with no
// offsets at all on the topic, the first record at or after StartTime (the
// end if none) or the beginning when StartTime is zero, else the
// beginning (a partition the group has not consumed yet, such as one added
// to the topic). fresh marks the partitions that had no offset.
func (s *session) resolve(ctx context.Context, ids []int) (starts []commitPoint, fresh []bool, err error) {
	b, topic := s.sub.b, s.sub.s.Topic
	all, err := b.partitionsOf(ctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	of, err := b.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: s.sub.group, Topics: map[string][]int{topic: all}})
	if err != nil {
		return nil, nil, err
	}
	if of.Error != nil {
		return nil, nil, fmt.Errorf("offset fetch: %w", of.Error)
	}
	committed := map[int]kafka.OffsetFetchPartition{}
	existing := false
	for _, p := range of.Topics[topic] {
		if p.Error != nil {
			return nil, nil, fmt.Errorf("offset fetch partition %d: %w", p.Partition, p.Error)
		}
		committed[p.Partition] = p
		existing = existing || p.CommittedOffset >= 0
	}
	starts, fresh = make([]commitPoint, len(ids)), make([]bool, len(ids))
	var reqs []kafka.OffsetRequest
	byTime := !existing && !s.sub.s.StartTime.IsZero()
	for i, id := range ids {
		if c, ok := committed[id]; ok && c.CommittedOffset >= 0 {
			starts[i] = commitPoint{offset: c.CommittedOffset, attempts: parseAttempts(c.Metadata)}
			continue
		}
		fresh[i] = true
		reqs = append(reqs, kafka.FirstOffsetOf(id), kafka.LastOffsetOf(id))
		if byTime {
			reqs = append(reqs, kafka.TimeOffsetOf(id, s.sub.s.StartTime))
		}
	}
	if len(reqs) == 0 {
		return starts, fresh, nil
	}
	lo, err := b.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, nil, err
	}
	found := map[int]kafka.PartitionOffsets{}
	for _, p := range lo.Topics[topic] {
		if p.Error != nil {
			return nil, nil, fmt.Errorf("list offsets partition %d: %w", p.Partition, p.Error)
		}
		found[p.Partition] = p
	}
	for i, id := range ids {
		if !fresh[i] {
			continue
		}
		p, ok := found[id]
		if !ok || p.FirstOffset < 0 || p.LastOffset < 0 {
			return nil, nil, fmt.Errorf("list offsets partition %d: no answer", id)
		}
		start := p.FirstOffset
		if byTime {
			start = p.LastOffset
			for off := range p.Offsets {
				if off >= 0 {
					start = max(off, p.FirstOffset)
				}
			}
		}
		starts[i] = commitPoint{offset: start}
	}
	return starts, fresh, nil
}

// fetch reads partition p from start and dispatches its records until ctx
// ends, pausing while SubscribeConfig.MaxPending records are pending.
func (s *session) fetch(ctx context.Context, p *partState, start commitPoint) {
	sub := s.sub
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        sub.b.cfg.Brokers,
		Topic:          sub.s.Topic,
		Partition:      p.id,
		Dialer:         sub.b.dialer,
		MinBytes:       1,
		MaxBytes:       max(fetchMaxBytes, 2*sub.b.cfg.Topics.MaxMessageBytes),
		MaxWait:        fetchMaxWait,
		QueueCapacity:  min(sub.cfg.MaxPending, 100),
		ReadBackoffMin: sub.cfg.RetryMin,
		ReadBackoffMax: setupRetryMax,
		Logger:         kafka.LoggerFunc(s.debugf),
		ErrorLogger:    kafka.LoggerFunc(s.debugf),
	})
	defer r.Close()
	if err := r.SetOffset(start.offset); err != nil {
		s.log.Error("positioning the partition reader failed", zap.Int("partition", p.id), zap.Error(err))
		return
	}
	first := true
	failures := 0
	for {
		if !p.waitSpace(ctx, sub.cfg.MaxPending) {
			return
		}
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// kafka-go retries on its own and reports what persists.
			s.log.Warn("fetching failed, retrying", zap.Int("partition", p.id), zap.Error(err))
			if !dispatch.Sleep(ctx, dispatch.Backoff(failures, sub.cfg.RetryMin, setupRetryMax)) {
				return
			}
			failures++
			continue
		}
		failures = 0
		rec := &record{msg: m, key: string(m.Key), part: p, first: first}
		if first && m.Offset == start.offset {
			rec.attempts = start.attempts
		}
		first = false
		p.add(rec)
		if !sub.mine(rec.key) || sub.s.Skip != nil && sub.s.Skip(rec.header()) {
			// Another partition's group handles it, or the subscriber
			// does not read it.
			p.finish(rec)
			s.markDirty()
			continue
		}
		s.d.Push(rec, rec.key)
	}
}

func (s *session) debugf(msg string, args ...any) {
	if ce := s.log.Check(zap.DebugLevel, "kafka-go"); ce != nil {
		ce.Write(zap.String("msg", fmt.Sprintf(msg, args...)))
	}
}

// stop winds the session down: fetching stops and queued records are left
// for the partitions' next owner (they are past the commit point); each
// worker finishes the record it is handling, its ctx cancelled only after
// grace. A handler failing meanwhile is not retried.
func (s *session) stop(fetchers *sync.WaitGroup, grace time.Duration) {
	s.d.Stop(grace)
	fetchers.Wait()
	s.d.Wait(grace)
}

// Message is what the handler gets of r.
func (s *session) Message(r *record) broker.Message { return received(r.msg, r.header()) }

// Attempt counts a delivery of r. The first delivery of the record at a
// commit point is committed at once, before its handler runs, so that a
// crash in the handler still counts (see Received.Attempt).
func (s *session) Attempt(r *record, try int) int {
	n := r.part.begin(r)
	if r.first && try == 0 {
		s.commitDelivery()
	} else {
		s.markDirty()
	}
	return n
}

// Settle finishes an acknowledged or terminated record: the commit point
// may move past it. A released record stays unfinished, for the
// partition's next owner.
func (s *session) Settle(r *record, o dispatch.Outcome, cause error) {
	if o == dispatch.Released {
		return
	}
	if o == dispatch.Terminated {
		s.log.Debug("record terminated", zap.Int("partition", r.part.id), zap.Int64("offset", r.msg.Offset),
			zap.String("key", r.key), zap.Error(cause))
	}
	r.part.finish(r)
	s.markDirty()
}

// header returns the record's headers, read once.
func (r *record) header() broker.Header {
	if r.hdr == nil {
		r.hdr = make(broker.Header, len(r.msg.Headers))
		for _, kh := range r.msg.Headers {
			r.hdr[kh.Key] = append(r.hdr[kh.Key], string(kh.Value))
		}
	}
	return r.hdr
}

// received is a record with headers h as handlers see it.
func received(m kafka.Message, h broker.Header) broker.Message {
	return broker.Message{
		Topic: m.Topic,
		// Kafka routes by topic alone: the topic is the subject.
		Subject: m.Topic,
		Key:     string(m.Key),
		ID:      h.Get(IDHeader),
		Header:  h,
		Data:    m.Value,
	}
}

// markDirty wakes the committer.
func (s *session) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// commitDelivery commits at once that the record at a commit point is being
// delivered, before its handler runs.
func (s *session) commitDelivery() {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	if err := s.commit(ctx); err != nil {
		s.logCommit("recording a delivery failed", err)
	}
}

// commitLoop commits whenever a commit point moved, until stop is closed.
func (s *session) commitLoop(stop <-chan struct{}) {
	failures := 0
	for {
		select {
		case <-s.dirty:
		case <-stop:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
		err := s.commit(ctx)
		cancel()
		pause := s.sub.cfg.CommitInterval
		if err != nil {
			// One warning per run of failures: an outage fails every try.
			if failures == 0 {
				s.logCommit("commit failed, retrying", err)
			} else {
				s.log.Debug("commit failed again", zap.Int("failures", failures+1), zap.Error(err))
			}
			pause = max(pause, dispatch.Backoff(failures, 10*time.Millisecond, commitRetryMax))
			failures++
			s.markDirty()
		} else {
			if failures > 0 {
				s.log.Info("commits succeed again", zap.Int("failures", failures))
			}
			failures = 0
		}
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
				return
			}
		}
	}
}

// commit commits the commit point of every partition whose point moved
// since its last commit, in one request.
func (s *session) commit(ctx context.Context) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	var commits []kafka.OffsetCommit
	points := map[int]commitPoint{}
	byID := map[int]*partState{}
	for _, p := range s.parts {
		pt := p.point()
		if pt == p.committed {
			continue
		}
		commits = append(commits, kafka.OffsetCommit{Partition: p.id, Offset: pt.offset, Metadata: pt.metadata()})
		points[p.id], byID[p.id] = pt, p
	}
	if len(commits) == 0 {
		return nil
	}
	topic := s.sub.s.Topic
	resp, err := s.sub.b.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID:      s.sub.group,
		GenerationID: int(s.gen.ID),
		MemberID:     s.gen.MemberID,
		Topics:       map[string][]kafka.OffsetCommit{topic: commits},
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, cp := range resp.Topics[topic] {
		p, ok := byID[cp.Partition]
		if !ok {
			continue
		}
		if cp.Error != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", cp.Partition, cp.Error))
			continue
		}
		p.committed = points[cp.Partition]
	}
	return errors.Join(errs...)
}

// logCommit logs a failed commit: at debug level when the generation is
// over (a rebalance; the next owner redelivers what was not committed), as
// a warning otherwise.
func (s *session) logCommit(msg string, err error) {
	lvl := zap.WarnLevel
	if errors.Is(err, kafka.RebalanceInProgress) || errors.Is(err, kafka.IllegalGeneration) ||
		errors.Is(err, kafka.UnknownMemberId) {
		lvl = zap.DebugLevel
	}
	s.log.Check(lvl, msg).Write(zap.Error(err))
}
