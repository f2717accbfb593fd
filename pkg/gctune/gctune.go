// Package gctune paces the Go garbage collector of wahook's services when
// the operator has not: GOGC 400 under a soft memory limit.
//
// Both services keep a small live heap (a few MB) and allocate fast (each
// event is received, decoded and sent again), so with Go's default GOGC of
// 100 the heap goal is the 4 MB floor and the collector runs dozens of times
// a second: about 13% of a deriver's CPU on a busy stream. GOGC 400 lets the
// heap grow to five times the live one between collections. The soft limit
// (GOMEMLIMIT) keeps that bounded: the collector works harder as the heap
// nears it, so a heap that the default would keep under the limit stays
// under it. The limit is 90% of the container's (cgroup) memory limit, or
// DefaultMemoryLimit when there is none.
//
// GOGC and GOMEMLIMIT in the environment are the operator's choice: the Go
// runtime applies them itself and Apply leaves each one that is set alone
// (GOGC=off included).
package gctune

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"go.uber.org/zap"
)

const (
	// DefaultGOGC is the GC percent when GOGC is not set.
	DefaultGOGC = 400
	// DefaultMemoryLimit is the soft memory limit when GOMEMLIMIT is not
	// set and no cgroup limits the process's memory; a service whose
	// budgets allow a larger live heap raises it (Applied.Floor).
	DefaultMemoryLimit = 512 << 20
	// cgroupRatio is the part of a cgroup's limit given to the Go heap:
	// the rest is for what the runtime does not count (stacks of threads
	// in C, the binary, page cache charged to the container).
	cgroupRatio = 0.9
)

// Settings is what Apply found and chose, for the start-up log.
type Settings struct {
	// GOGC is the GC percent now in force, and GOGCFrom "GOGC" when the
	// environment set it, else "default".
	GOGC     int
	GOGCFrom string
	// MemoryLimit is the soft limit in bytes now in force, and
	// MemoryLimitFrom "GOMEMLIMIT", "cgroup" or "default".
	MemoryLimit     int64
	MemoryLimitFrom string
}

// Apply sets the defaults where getenv reports GOGC or GOMEMLIMIT unset;
// cgroup tells the memory limit of the process's cgroup (memlimit.FromCgroup
// in the services), memlimit.ErrNoLimit or another error when it has none.
// Only an error of cgroup other than "no cgroup" or "no limit" is
// returned, with the default limit applied.
func Apply(getenv func(string) string, cgroup memlimit.Provider) (Settings, error) {
	var s Settings
	var err error
	if getenv("GOMEMLIMIT") != "" {
		s.MemoryLimit, s.MemoryLimitFrom = debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	} else {
		s.MemoryLimit, s.MemoryLimitFrom = DefaultMemoryLimit, "default"
		limit, cerr := cgroup()
		switch {
		case cerr == nil && limit > 0:
			s.MemoryLimit, s.MemoryLimitFrom = int64(min(float64(limit)*cgroupRatio, float64(1<<62))), "cgroup"
		case cerr != nil && !errors.Is(cerr, memlimit.ErrNoLimit) && !errors.Is(cerr, memlimit.ErrNoCgroup) &&
			!errors.Is(cerr, memlimit.ErrCgroupsNotSupported):
			err = fmt.Errorf("gctune: cgroup memory limit: %w", cerr)
		}
		debug.SetMemoryLimit(s.MemoryLimit)
	}
	if getenv("GOGC") != "" {
		// SetGCPercent returns the setting it replaces: put it back.
		s.GOGC, s.GOGCFrom = debug.SetGCPercent(100), "GOGC"
		debug.SetGCPercent(s.GOGC)
	} else {
		s.GOGC, s.GOGCFrom = DefaultGOGC, "default"
		debug.SetGCPercent(DefaultGOGC)
	}
	return s, err
}

// Fields are the settings as log fields.
func (s Settings) Fields() []zap.Field {
	return []zap.Field{zap.Int("gogc", s.GOGC), zap.String("gogc_from", s.GOGCFrom),
		zap.Int64("memory_limit_bytes", s.MemoryLimit), zap.String("memory_limit_from", s.MemoryLimitFrom)}
}

// Applied is what Apply chose and the error it reported, kept by a
// service's main for its start-up log.
type Applied struct {
	Settings Settings
	Err      error
}

// Log writes the settings at info level and an unreadable cgroup limit at
// warn level; nothing when Apply was not called (tests of run).
func (a Applied) Log(log *zap.Logger) {
	if a.Settings.GOGCFrom == "" {
		return
	}
	log.Info("garbage collector", a.Settings.Fields()...)
	if a.Err != nil {
		log.Warn("garbage collector: the container's memory limit is unknown, the default applies", zap.Error(a.Err))
	}
}

// Floor raises a default soft limit to at least n bytes: a service whose
// configured budgets let its live heap approach the default gives the
// collector room above them, as Go's default pacing would, rather than
// collecting without pause near the limit. A limit from GOMEMLIMIT or the
// container is the operator's and is left alone, as is a call before Apply.
func (a *Applied) Floor(n int64) {
	if a.Settings.MemoryLimitFrom != "default" || n <= a.Settings.MemoryLimit {
		return
	}
	debug.SetMemoryLimit(n)
	a.Settings.MemoryLimit = n
	a.Settings.MemoryLimitFrom = "default, raised for the configured budgets"
}
