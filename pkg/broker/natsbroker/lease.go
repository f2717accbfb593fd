package natsbroker

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/internal/dispatch"
)

// LeaseBucket is the KV bucket of the consumer leases: one key per durable
// consumer, held by the one instance that consumes it.
const LeaseBucket = "WAHOOK_CONSUMER_LEASES"

// LeaseBucketBytes bounds the lease bucket: a record of about 150 bytes per
// durable consumer.
const LeaseBucketBytes = 1 << 20

// Lease states, as stored.
const (
	leaseHeld     = "held"
	leaseReleased = "released"
)

// leaseValue is a lease's record.
type leaseValue struct {
	State  string `json:"state"`
	Holder string `json:"holder"`
	Since  string `json:"since,omitempty"`
}

// lease is this instance's hold on a durable consumer. Only the holder
// consumes, so that two instances never split a consumer between them;
// others wait as standbys. The bucket's max age is the lease's TTL: a
// holder renews it every quarter of it, and an instance that died stops
// renewing, so its lease expires and a standby takes over.
type lease struct {
	b      *Broker
	kv     jetstream.KeyValue
	key    string
	holder string
	ttl    time.Duration
	log    *zap.Logger
	rev    uint64
}

// leaseKV opens the lease bucket, creating it when missing. It never
// updates an existing bucket (an operator may have tuned it).
func (b *Broker) leaseKV(ctx context.Context) (jetstream.KeyValue, error) {
	ttl := b.cfg.Subscribe.LeaseTTL
	for range 3 {
		kv, err := b.js.KeyValue(ctx, LeaseBucket)
		if err == nil {
			return kv, nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("natsbroker: lease bucket: %w", classify(err))
		}
		kv, err = b.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      LeaseBucket,
			Description: "wahook: which instance consumes each durable consumer",
			History:     1,
			TTL:         ttl,
			MaxBytes:    LeaseBucketBytes,
			Storage:     jetstream.FileStorage,
			Replicas:    b.cfg.Streams.Replicas,
		})
		if err == nil {
			return kv, nil
		}
		if !errors.Is(err, jetstream.ErrBucketExists) && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("natsbroker: create lease bucket: %w", classify(err))
		}
	}
	return nil, fmt.Errorf("natsbroker: lease bucket created and deleted concurrently: %w", broker.ErrUnavailable)
}

// newHolder names a Subscribe call as a lease holder.
func (b *Broker) newHolder() string { return b.cfg.Name + "-" + rand.Text() }

// acquire waits, as a standby, until holder holds the lease of p's
// consumer. It reports whether the previous holder left without releasing
// it (it died, or lost its connection; holder itself, when it lost the
// lease): its unacknowledged messages are then still pending on the
// consumer.
func (b *Broker) acquire(ctx context.Context, p plan, holder string) (l *lease, orphaned bool, err error) {
	kv, err := b.leaseKV(ctx)
	for err != nil {
		if ctx.Err() != nil || b.connClosedForGood() || b.isClosing() {
			return nil, false, err
		}
		b.log.Warn("lease bucket unavailable, retrying", zap.String("consumer", p.consumer), zap.Error(err))
		if !dispatch.Sleep(ctx, dispatch.Jitter(setupRetryMax)) {
			return nil, false, ctx.Err()
		}
		kv, err = b.leaseKV(ctx)
	}
	l = &lease{b: b, kv: kv, key: p.stream + "." + p.consumer, holder: holder,
		ttl: b.cfg.Subscribe.LeaseTTL, log: b.log.With(zap.String("consumer", p.consumer))}
	// The bucket's max age is what expires a lease: renew by it, should
	// it have been created with another TTL than this instance's.
	if st, err := kv.Status(ctx); err == nil && st.TTL() >= time.Second {
		l.ttl = st.TTL()
	} else if err == nil {
		return nil, false, fmt.Errorf("natsbroker: lease bucket %s has max age %s, want 1s or more: leases would never expire",
			LeaseBucket, st.TTL())
	}
	standby := false
	for {
		orphaned, ok, err := l.try(ctx)
		switch {
		case ok:
			if standby {
				l.log.Info("took over the consumer from a standby", zap.Bool("orphaned", orphaned))
			}
			return l, orphaned, nil
		case err != nil:
			if ctx.Err() != nil || b.connClosedForGood() || b.isClosing() {
				return nil, false, err
			}
			l.log.Warn("acquiring the consumer's lease failed, retrying", zap.Error(err))
		case !standby:
			standby = true
			l.log.Info("another instance consumes this consumer: waiting as a standby", zap.Duration("lease_ttl", l.ttl))
		}
		if !dispatch.Sleep(ctx, dispatch.Jitter(l.ttl/4)) {
			return nil, false, ctx.Err()
		}
	}
}

// try takes the lease if it is free: absent (never held, or expired) or
// released. ok is false while another instance holds it.
func (l *lease) try(ctx context.Context) (orphaned, ok bool, err error) {
	e, err := l.kv.Get(ctx, l.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		// Never held, or its holder stopped renewing it.
		rev, err := l.kv.Create(ctx, l.key, l.value(leaseHeld))
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, false, nil
		}
		if err != nil {
			return false, false, fmt.Errorf("create lease %s: %w", l.key, classify(err))
		}
		l.rev = rev
		return true, true, nil
	case err != nil:
		return false, false, fmt.Errorf("get lease %s: %w", l.key, classify(err))
	}
	var v leaseValue
	mine := false
	if json.Unmarshal(e.Value(), &v) == nil && v.State == leaseHeld {
		if v.Holder != l.holder {
			return false, false, nil
		}
		// This Subscribe call lost it (renewals failed) and nobody took
		// it over since: its messages may be pending.
		mine = true
	}
	// Released by its holder, which handed back everything in order.
	rev, err := l.kv.Update(ctx, l.key, l.value(leaseHeld), e.Revision())
	if errors.Is(err, jetstream.ErrKeyExists) || KVConflict(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("update lease %s: %w", l.key, classify(err))
	}
	l.rev = rev
	return mine, true, nil
}

func (l *lease) value(state string) []byte {
	v, _ := json.Marshal(leaseValue{State: state, Holder: l.holder, Since: time.Now().UTC().Format(time.RFC3339Nano)})
	return v
}

// keep renews the lease every quarter of its TTL until ctx ends. When no
// renewal succeeded for half of the TTL, or another instance holds the
// lease, it calls lost and returns: a standby may take over soon, so
// this instance must stop consuming first.
func (l *lease) keep(ctx context.Context, lost func()) {
	t := time.NewTicker(l.ttl / 4)
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, l.ttl/4)
		rev, err := l.kv.Update(rctx, l.key, l.value(leaseHeld), l.rev)
		cancel()
		if err == nil {
			l.rev, renewed = rev, time.Now()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if KVConflict(err) || errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound) {
			l.log.Warn("lost the consumer's lease: stopping", zap.Error(err))
			lost()
			return
		}
		if time.Since(renewed) > l.ttl/2 {
			l.log.Warn("could not renew the consumer's lease: stopping before it expires", zap.Error(err))
			lost()
			return
		}
		l.log.Debug("lease renewal failed, retrying", zap.Error(err))
	}
}

// release marks the lease released after a clean stop, so that the next
// holder need not reset the consumer. Failing that, the lease expires.
func (l *lease) release() {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if _, err := l.kv.Update(ctx, l.key, l.value(leaseReleased), l.rev); err != nil {
		l.log.Debug("releasing the lease failed; it expires", zap.Error(err))
	}
}

// KVConflict reports whether err is a lost compare-and-set on a KV bucket:
// Create of a key that exists, or Update at a revision that is no longer
// the last. Depending on the stream's replica count the server reports it
// as error 10071 or 10164; nats.go maps both, but only per method, so all
// are checked.
func KVConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// resume resets p's consumer to its ack floor when messages are pending
// on it, so that everything after the floor is delivered again, in stream
// order, before anything newer: the consumer picks up where the instance
// that died left it, as a Kafka group resumes from its committed offset.
// Handlers are idempotent, so redelivering messages already acknowledged
// past the floor is harmless. It returns the consumer's state then.
func (b *Broker) resume(ctx context.Context, p plan, cons jetstream.Consumer) (*jetstream.ConsumerInfo, error) {
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: consumer %s info: %w", p.consumer, classify(err))
	}
	if info.NumAckPending == 0 && info.NumRedelivered == 0 {
		return info, nil
	}
	resp, err := b.js.ResetConsumer(ctx, p.stream, p.consumer)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: reset consumer %s: %w", p.consumer, classify(err))
	}
	b.log.Info("consumer resumed from its ack floor after an unclean stop", zap.String("consumer", p.consumer),
		zap.Uint64("from_stream_seq", resp.ResetSeq), zap.Int("ack_pending", info.NumAckPending))
	return resp.ConsumerInfo, nil
}
