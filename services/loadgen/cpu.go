package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat's CPU times:
// 100 on every architecture Go supports.
const clockTicks = 100

// procCPU is the CPU time, user and system, process pid has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	// The command name, the second field, is in parentheses and may hold
	// spaces: count the fields after it. utime and stime are the 14th and
	// 15th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu of %d: unreadable stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu of %d: unreadable stat", pid)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu of %d: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// cpuWatch measures the CPU time named processes use over a window.
type cpuWatch struct {
	names []string
	pids  []int
	start []time.Duration
}

// watchCPU parses "name=pid,..." and reads each process's CPU time so far.
// An empty spec watches nothing.
func watchCPU(spec string) (*cpuWatch, error) {
	w := &cpuWatch{}
	for _, kv := range strings.Split(spec, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, p, ok := strings.Cut(kv, "=")
		pid, err := strconv.Atoi(p)
		if !ok || name == "" || err != nil || pid <= 0 {
			return nil, fmt.Errorf("pids %q: want name=pid,...", spec)
		}
		at, err := procCPU(pid)
		if err != nil {
			return nil, err
		}
		w.names, w.pids, w.start = append(w.names, name), append(w.pids, pid), append(w.start, at)
	}
	return w, nil
}

// used returns the CPU time each process used since watchCPU.
func (w *cpuWatch) used() (map[string]time.Duration, error) {
	if len(w.pids) == 0 {
		return nil, nil
	}
	m := make(map[string]time.Duration, len(w.pids))
	for i, pid := range w.pids {
		at, err := procCPU(pid)
		if err != nil {
			return nil, err
		}
		m[w.names[i]] += at - w.start[i]
	}
	return m, nil
}

// cpuPerDelivery formats the CPU each process used per accepted delivery,
// in microseconds, by name, and their total when there are several.
func cpuPerDelivery(cpu map[string]time.Duration, ok int64) string {
	if len(cpu) == 0 || ok == 0 {
		return ""
	}
	names := make([]string, 0, len(cpu))
	for n := range cpu {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	var total time.Duration
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.0f", n, float64(cpu[n].Microseconds())/float64(ok)))
		total += cpu[n]
	}
	s := strings.Join(parts, " + ")
	if len(names) > 1 {
		s += fmt.Sprintf(" = %.0f", float64(total.Microseconds())/float64(ok))
	}
	return s
}

// procPeakRSS is the most resident memory process pid has held so far
// (VmHWM), in bytes.
func procPeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("memory of %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("memory of %d: VmHWM %q: %w", pid, v, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("memory of %d: no VmHWM", pid)
}

// peakRSS returns each process's peak resident memory so far, in bytes.
func (w *cpuWatch) peakRSS() (map[string]int64, error) {
	if len(w.pids) == 0 {
		return nil, nil
	}
	m := make(map[string]int64, len(w.pids))
	for i, pid := range w.pids {
		n, err := procPeakRSS(pid)
		if err != nil {
			return nil, err
		}
		m[w.names[i]] += n
	}
	return m, nil
}
