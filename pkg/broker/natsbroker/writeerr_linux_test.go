package natsbroker

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker"
)

// writeErrChild marks the process TestRecoversFromWriteError runs its body
// in: the file size limit it sets applies to the whole process.
const writeErrChild = "WAHOOK_TEST_WRITE_ERROR_CHILD"

// TestRecoversFromWriteError fills the raw stream's block file up to a file
// size limit (RLIMIT_FSIZE), which fails the store's writes with EFBIG as a
// full disk fails them with ENOSPC, without root or a small file system:
// nats-server keeps the stream's first write error and fails every later
// write, until JetStream is restarted once there is room again.
func TestRecoversFromWriteError(t *testing.T) {
	if os.Getenv(writeErrChild) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRecoversFromWriteError$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), writeErrChild+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestRecoversFromWriteError")) {
			t.Fatalf("test process: %v\n%s", err, out)
		}
		return
	}

	dir := t.TempDir()
	e := startServerWith(t, EmbeddedConfig{StoreDir: dir, Storage: EmbeddedStorageConfig{CheckInterval: -1}})
	b := connect(t, Config{Embedded: e, PublishTimeout: time.Second})
	// Without a deadline, so that each Publish gives up after PublishTimeout
	// when the server does not answer.
	ctx := context.Background()
	acked := 0
	for i := range 10 {
		if err := b.Publish(ctx, ingressMsg("A", i, make([]byte, 1024))); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		acked++
	}

	blocks, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", IngressStream, "msgs", "*.blk"))
	if err != nil || len(blocks) != 1 {
		t.Fatalf("raw stream blocks %v, %v; want one", blocks, err)
	}
	fi, err := os.Stat(blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	limit := old
	limit.Cur = uint64(fi.Size()) + 32<<10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	var pubErr error
	for i := 10; i < 1000 && pubErr == nil; i++ {
		if pubErr = b.Publish(ctx, ingressMsg("A", i, make([]byte, 1024))); pubErr == nil {
			acked++
		}
	}
	if !errors.Is(pubErr, broker.ErrUnavailable) {
		t.Fatalf("Publish past the file size limit = %v, want ErrUnavailable", pubErr)
	}
	if p := jetStreamProblem(e.Server()); !strings.Contains(p, "write error") {
		t.Errorf("jetStreamProblem = %q, want a write error", p)
	}
	if err := b.Ready(ctx); !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "write error") {
		t.Errorf("Ready with a stream stuck on a write error = %v, want ErrUnavailable saying so", err)
	}

	// Room again: the stream stays stuck until JetStream restarts.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, ingressMsg("B", 0, jsonBody(0))); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Publish with room but before the restart = %v, want ErrUnavailable", err)
	}
	if got := e.watch.check(); got != checkRestarted {
		t.Fatalf("check = %v, want a restart", got)
	}
	if err := b.Publish(ctx, ingressMsg("B", 1, jsonBody(1))); err != nil {
		t.Fatalf("Publish after the restart: %v", err)
	}
	acked++
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready after the restart: %v", err)
	}
	// Every acknowledged event is still there.
	if n := streamCount(t, b.JetStream(), IngressStream); n != uint64(acked) {
		t.Errorf("raw stream holds %d messages, want the %d acknowledged", n, acked)
	}
}
