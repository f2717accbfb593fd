package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// binaries are the programs the harness runs, built once per test binary.
type binaries struct {
	natsServer, ingress, deriver string
	race                         bool
}

var (
	buildOnce sync.Once
	built     binaries
	buildErr  error
	// binDir holds the binaries; TestMain removes it.
	binDir string
)

// build compiles nats-server from the module go.mod requires (the broker,
// without the race detector: it is not under test) and wahook's ingress and
// deriver, with the race detector when this test binary has it.
func build(t *testing.T) binaries {
	t.Helper()
	buildOnce.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the go command is needed to build the processes: %w", err)
			return
		}
		built = binaries{
			natsServer: filepath.Join(binDir, "nats-server"),
			ingress:    filepath.Join(binDir, "ingress"),
			deriver:    filepath.Join(binDir, "deriver"),
			race:       raceEnabled,
		}
		var flags []string
		if raceEnabled {
			flags = append(flags, "-race")
		}
		jobs := []struct {
			out, pkg string
			flags    []string
		}{
			{built.natsServer, "github.com/nats-io/nats-server/v2", nil},
			{built.ingress, "github.com/wahook/wahook/services/ingress", flags},
			{built.deriver, "github.com/wahook/wahook/services/deriver", flags},
		}
		var wg sync.WaitGroup
		errs := make([]error, len(jobs))
		for i, j := range jobs {
			wg.Go(func() {
				args := append([]string{"build", "-o", j.out}, j.flags...)
				cmd := exec.Command(gobin, append(args, j.pkg)...)
				if out, err := cmd.CombinedOutput(); err != nil {
					errs[i] = fmt.Errorf("go build %s: %w\n%s", j.pkg, err, out)
				}
			})
		}
		wg.Wait()
		buildErr = errors.Join(errs...)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// proc is one run of a program in its own process group, its output in a
// log file. The test's cleanup kills the group, so no process outlives the
// test; Pdeathsig kills it too should the test binary itself die.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // the exit status, once done is closed
	// stopping is set before the harness signals it: an exit then is no
	// failure.
	mu       sync.Mutex
	stopping bool
	reaped   bool
	reported bool
}

// waitExit blocks until the child pid has exited, leaving it unreaped
// (waitid with WNOWAIT).
func waitExit(pid int) {
	const pPID, wExited, wNoWait = 1, 4, 0x1000000
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), wExited|wNoWait, 0, 0)
		if errno != syscall.EINTR {
			return
		}
	}
}

// start runs bin with args and env (added to a clean environment), its
// stdout and stderr in logPath.
func start(t *testing.T, name, bin string, args, env []string, logPath string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		// Learn of the exit without reaping, then reap under mu: while
		// the process is not reaped its pid and process group cannot be
		// reused, so kill never signals another program's group.
		waitExit(cmd.Process.Pid)
		p.mu.Lock()
		p.reaped = true
		p.mu.Unlock()
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// baseEnv is the harness's environment without WAHOOK_* settings, so that
// only what a test sets configures the services.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WAHOOK_") {
			out = append(out, kv)
		}
	}
	return out
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// unexpectedExit reports, once, how the process ended when nobody
// stopped it.
func (p *proc) unexpectedExit() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping || p.reported || !p.exited() {
		return false, ""
	}
	p.reported = true
	return true, fmt.Sprintf("%s exited on its own (%v); last lines of %s:\n%s", p.name, p.err, p.log, tail(p.log, 30))
}

// kill sends SIGKILL to the process group and waits for the process.
func (p *proc) kill() {
	p.mu.Lock()
	p.stopping = true
	if !p.reaped {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	p.mu.Unlock()
	<-p.done
}

// stop sends SIGTERM and waits up to within for a clean exit; a process
// still running then is killed and stop reports it.
func (p *proc) stop(within time.Duration) error {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(within):
		p.kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed. Last lines of %s:\n%s", p.name, within, p.log, tail(p.log, 30))
	}
	if p.err != nil {
		return fmt.Errorf("%s exited with %v after SIGTERM; last lines of %s:\n%s", p.name, p.err, p.log, tail(p.log, 30))
	}
	return nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logField polls a process's JSON log until a line with message msg has
// field, and returns it. Service logs are flushed every second, so this
// waits about that long.
func logField(ctx context.Context, p *proc, msg, field string) (string, error) {
	for {
		if v, ok := scanLog(p.log, msg, field); ok {
			return v, nil
		}
		if p.exited() {
			return "", fmt.Errorf("%s exited (%v) before logging %q:\n%s", p.name, p.err, msg, tail(p.log, 30))
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return "", fmt.Errorf("%s did not log %q: %w; last lines:\n%s", p.name, msg, err, tail(p.log, 30))
		}
	}
}

// waitLogged polls a process's log until it has n lines with message
// msg.
func waitLogged(ctx context.Context, p *proc, msg string, n int) error {
	for {
		b, err := os.ReadFile(p.log)
		if err == nil && bytes.Count(b, []byte(`"msg":"`+msg+`"`)) >= n {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v) before logging %q %d times:\n%s", p.name, p.err, msg, n, tail(p.log, 30))
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("%s did not log %q %d times: %w; last lines:\n%s", p.name, msg, n, err, tail(p.log, 30))
		}
	}
}

// loggedValues returns the distinct values of field in the lines of a
// JSON log with message msg.
func loggedValues(path, msg, field string) map[string]bool {
	out := map[string]bool{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"msg":"`+msg+`"`)) {
			continue
		}
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			if v, ok := m[field].(string); ok {
				out[v] = true
			}
		}
	}
	return out
}

func scanLog(path, msg, field string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(msg)) {
			continue
		}
		var m map[string]any
		if json.Unmarshal(line, &m) != nil || m["msg"] != msg {
			continue
		}
		if v, ok := m[field]; ok {
			return fmt.Sprint(v), true
		}
	}
	return "", false
}

// derivedLog adds to handled, for every "derived" line of a deriver's
// debug log, "{stream} {raw event id}" -> "{process} at {time}".
func derivedLog(path, process string, handled map[string][]string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"msg":"derived"`)) {
			continue
		}
		var m struct {
			Time    time.Time `json:"time"`
			Stream  string    `json:"stream"`
			EventID string    `json:"event_id"`
		}
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		k := m.Stream + " " + m.EventID
		handled[k] = append(handled[k], process+" at "+m.Time.Format("15:04:05.000"))
	}
}

// crashMarkers start what the Go runtime prints on a data race, a panic
// that is not recovered, or a fatal error.
var crashMarkers = []*regexp.Regexp{
	regexp.MustCompile(`(?m)^WARNING: DATA RACE`),
	regexp.MustCompile(`(?m)^panic: `),
	regexp.MustCompile(`(?m)^fatal error: `),
}

// raceReports returns the data races and panics a process printed.
func raceReports(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, re := range crashMarkers {
		if loc := re.FindIndex(b); loc != nil {
			end := min(len(b), loc[0]+3000)
			out = append(out, fmt.Sprintf("%s:\n%s", path, b[loc[0]:end]))
		}
	}
	return out
}

// pause waits d, or until ctx ends (its error). It paces the load and the
// faults; no check waits on it, they poll with deadlines.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
