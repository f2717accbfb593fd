package consumer

import (
	"flag"
	"fmt"
	"time"
)

// DefaultStuckAfter is StreamFlags.StuckAfter's default: well above a raw
// event's retries before it is poisoned (about half a minute) and the
// brokers' longest backoff (30s).
const DefaultStuckAfter = 2 * time.Minute

// StreamFlags are the command-line form of Streams.
type StreamFlags struct {
	Names       string
	GroupPrefix string
	StartTime   string
	Concurrency int
	Partition   int
	Partitions  int
	MaxAttempts int
	// StuckAfter is how long a consumer may hold raw events without
	// finishing any before readiness fails (Metrics.Stuck).
	StuckAfter time.Duration
}

// RegisterFlags declares the derived-stream flags on fs, with names as the
// default stream list.
func (f *StreamFlags) RegisterFlags(fs *flag.FlagSet, names string) {
	fs.StringVar(&f.Names, "derive", names, "derived streams to run, comma-separated: label-changed, chat-created, call, group-notification, or all")
	fs.StringVar(&f.GroupPrefix, "derive-group-prefix", "wahook-", "durable consumer name prefix; a new prefix with -derive-start-time replays the raw stream")
	fs.StringVar(&f.StartTime, "derive-start-time", "", "where new durable consumers start in the raw stream (RFC 3339); empty: the beginning")
	fs.IntVar(&f.Concurrency, "derive-concurrency", 64, "raw events processed at once per stream (a chat's events stay in order)")
	fs.IntVar(&f.Partition, "derive-partition", 0, "this instance's partition, 0-based")
	fs.IntVar(&f.Partitions, "derive-partitions", 1, "instances sharing the work; each processes the chats of its partition")
	fs.IntVar(&f.MaxAttempts, "derive-max-attempts", DefaultMaxAttempts, "tries of a raw event failing for another reason than an unavailable broker or store before it is dead-lettered")
	fs.DurationVar(&f.StuckAfter, "derive-stuck-after", DefaultStuckAfter, "a consumer holding raw events without finishing any for longer is not ready")
}

// Streams checks the flags and returns the Streams they describe.
func (f StreamFlags) Streams() (Streams, error) {
	names, err := ParseNames(f.Names)
	if err != nil {
		return Streams{}, err
	}
	s := Streams{Names: names, GroupPrefix: f.GroupPrefix, Concurrency: f.Concurrency, Partition: f.Partition, Partitions: f.Partitions,
		MaxAttempts: f.MaxAttempts}
	if f.StartTime != "" {
		t, err := time.Parse(time.RFC3339, f.StartTime)
		if err != nil {
			return Streams{}, fmt.Errorf("derive start time: %w", err)
		}
		s.StartTime = t
	}
	if f.Partitions < 1 || f.Partition < 0 || f.Partition >= f.Partitions {
		return Streams{}, fmt.Errorf("derive partition %d of %d", f.Partition, f.Partitions)
	}
	if f.MaxAttempts < 1 {
		return Streams{}, fmt.Errorf("derive max attempts %d, want 1 or more", f.MaxAttempts)
	}
	if f.StuckAfter <= 0 {
		return Streams{}, fmt.Errorf("derive stuck after %s, want more than 0", f.StuckAfter)
	}
	return s, nil
}
