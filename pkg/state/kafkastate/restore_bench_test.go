package kafkastate_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/state"
	"github.com/wahook/wahook/pkg/state/kafkastate"
)

// BenchmarkRestoreChats measures what a store costs at start with many
// known chats on the chats topic (WAHOOK_BENCH_CHATS, a million by
// default): the time Open takes to read them (s/open, and the CPU time of
// this process, cpu-s/open) and the heap they hold once read (B/chat). Each
// chat is one record, its first event a wahook id (32 hex digits), as the
// consumers write them. The broker (kfake) runs in a child process, so that
// neither its memory nor its CPU time is counted.
func BenchmarkRestoreChats(b *testing.B) {
	chats := 1_000_000
	if n, err := strconv.Atoi(os.Getenv("WAHOOK_BENCH_CHATS")); err == nil && n > 0 {
		chats = n
	}
	brokers := kfakeProcess(b)
	cfg := kafkastate.Config{Brokers: brokers, Partitions: 6}
	closeStore(b, open(b, cfg)) // creates the topics
	writeChats(b, brokers, kafkastate.DefaultChatsTopic, chats)
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		start, cpu := time.Now(), cpuTime()
		s, err := kafkastate.Open(context.Background(), cfg)
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		took, cpuTook := time.Since(start), cpuTime()-cpu
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(took.Seconds(), "s/open")
		b.ReportMetric(cpuTook.Seconds(), "cpu-s/open") // the in-process broker's included
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(chats), "B/chat")
		// The restored state answers: a known chat is not new.
		if first, err := s.Chats().FirstSeen(context.Background(), prov, chan1, chatName(7), eventName(7)); err != nil || !first {
			b.Fatalf("FirstSeen of a restored chat by its first event = %t, %v", first, err)
		}
		closeStore(b, s)
	}
}

// cpuTime is the process's CPU time so far: a loaded machine stretches the
// wall time of a restore, not the work it does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func chatName(i int) string  { return fmt.Sprintf("55%011d@s.whatsapp.net", i) }
func eventName(i int) string { return fmt.Sprintf("%032x", i*7919+1) }

// writeChats writes n chat records to topic, as many stores would have.
func writeChats(b *testing.B, brokers []string, topic string, n int) {
	b.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{Consistent: true},
		BatchSize: 10000, BatchBytes: 16 << 20, BatchTimeout: 10 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]kafka.Message, 0, 10000)
	flush := func() {
		if err := w.WriteMessages(context.Background(), batch...); err != nil {
			b.Fatalf("write chats: %v", err)
		}
		batch = batch[:0]
	}
	for i := range n {
		val, _ := json.Marshal(map[string]any{"first_event": eventName(i), "first_seen_at": at, "version": 1})
		batch = append(batch, kafka.Message{Key: []byte(state.EntryKey(prov, chan1, chatName(i))), Value: val})
		if len(batch) == cap(batch) {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

// kfakeChild names the environment variable that makes the test binary a
// kfake broker process (see TestMain).
const kfakeChild = "WAHOOK_KFAKE_CHILD"

// kfakeProcess starts a one-broker kfake in a child process, stopped when
// the benchmark ends, and returns its address.
func kfakeProcess(b *testing.B) []string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), kfakeChild+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start kfake: %v", err)
	}
	b.Cleanup(func() {
		_ = stdin.Close() // the child exits when its stdin closes
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("kfake address: %v", err)
	}
	return []string{strings.TrimSpace(line)}
}

// runKfake serves a kfake broker until stdin closes, after printing its
// address.
func runKfake() {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(c.ListenAddrs()[0])
	_, _ = io.Copy(io.Discard, os.Stdin)
	c.Close()
}

func TestMain(m *testing.M) {
	if os.Getenv(kfakeChild) != "" {
		runKfake()
		return
	}
	os.Exit(m.Run())
}
