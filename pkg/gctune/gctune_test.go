package gctune

import (
	"errors"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// keep restores the process's GC settings after a test changes them.
func keep(t *testing.T) {
	gogc, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(gogc)
	t.Cleanup(func() { debug.SetGCPercent(gogc); debug.SetMemoryLimit(limit) })
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestApply(t *testing.T) {
	for _, tt := range []struct {
		name      string
		env       map[string]string
		cgroup    memlimit.Provider
		runtime   func() // what the Go runtime set from the environment
		want      Settings
		wantError bool
	}{
		{
			name:   "defaults without a cgroup limit",
			cgroup: func() (uint64, error) { return 0, memlimit.ErrNoLimit },
			want:   Settings{GOGC: DefaultGOGC, GOGCFrom: "default", MemoryLimit: DefaultMemoryLimit, MemoryLimitFrom: "default"},
		},
		{
			name:   "no cgroup at all",
			cgroup: func() (uint64, error) { return 0, memlimit.ErrNoCgroup },
			want:   Settings{GOGC: DefaultGOGC, GOGCFrom: "default", MemoryLimit: DefaultMemoryLimit, MemoryLimitFrom: "default"},
		},
		{
			name:   "90% of a container's limit",
			cgroup: memlimit.Limit(2 << 30),
			want:   Settings{GOGC: DefaultGOGC, GOGCFrom: "default", MemoryLimit: 2 << 30 * 9 / 10, MemoryLimitFrom: "cgroup"},
		},
		{
			name:      "an unreadable cgroup is reported, the default applied",
			cgroup:    func() (uint64, error) { return 0, os.ErrPermission },
			want:      Settings{GOGC: DefaultGOGC, GOGCFrom: "default", MemoryLimit: DefaultMemoryLimit, MemoryLimitFrom: "default"},
			wantError: true,
		},
		{
			name:    "the operator's settings are kept",
			env:     map[string]string{"GOGC": "150", "GOMEMLIMIT": "512MiB"},
			cgroup:  func() (uint64, error) { t.Error("cgroup read although GOMEMLIMIT is set"); return 0, nil },
			runtime: func() { debug.SetGCPercent(150); debug.SetMemoryLimit(512 << 20) },
			want:    Settings{GOGC: 150, GOGCFrom: "GOGC", MemoryLimit: 512 << 20, MemoryLimitFrom: "GOMEMLIMIT"},
		},
		{
			name:    "GOGC=off is kept",
			env:     map[string]string{"GOGC": "off"},
			cgroup:  memlimit.Limit(1 << 30),
			runtime: func() { debug.SetGCPercent(-1) },
			want:    Settings{GOGC: -1, GOGCFrom: "GOGC", MemoryLimit: 1 << 30 * 9 / 10, MemoryLimitFrom: "cgroup"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			keep(t)
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(1 << 62)
			if tt.runtime != nil {
				tt.runtime()
			}
			got, err := Apply(env(tt.env), tt.cgroup)
			if (err != nil) != tt.wantError {
				t.Errorf("Apply error = %v; want an error: %t", err, tt.wantError)
			}
			if got != tt.want {
				t.Errorf("Apply = %+v; want %+v", got, tt.want)
			}
			// What Apply reports is what is in force.
			if gogc := debug.SetGCPercent(100); gogc != tt.want.GOGC {
				t.Errorf("GC percent in force %d; want %d", gogc, tt.want.GOGC)
			}
			if limit := debug.SetMemoryLimit(-1); limit != tt.want.MemoryLimit {
				t.Errorf("memory limit in force %d; want %d", limit, tt.want.MemoryLimit)
			}
		})
	}
}

// TestCgroupOfThisMachine: the services' provider reads this machine's
// cgroup without an error Apply would report (a limit, none, or no cgroup).
func TestCgroupOfThisMachine(t *testing.T) {
	limit, err := memlimit.FromCgroup()
	if err != nil && !errors.Is(err, memlimit.ErrNoLimit) && !errors.Is(err, memlimit.ErrNoCgroup) && !errors.Is(err, memlimit.ErrCgroupsNotSupported) {
		t.Fatalf("FromCgroup = %d, %v", limit, err)
	}
	t.Logf("cgroup memory limit %d, %v", limit, err)
}

// TestAppliedLog: the settings are logged at start, an unreadable cgroup
// as a warning; nothing when Apply did not run.
func TestAppliedLog(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	Applied{}.Log(zap.New(core))
	if logs.Len() != 0 {
		t.Errorf("logged %v without Apply", logs.All())
	}
	Applied{Settings: Settings{GOGC: 400, GOGCFrom: "default", MemoryLimit: 1 << 20, MemoryLimitFrom: "cgroup"},
		Err: os.ErrPermission}.Log(zap.New(core))
	all := logs.All()
	if len(all) != 2 || all[0].Message != "garbage collector" || all[1].Level != zap.WarnLevel {
		t.Fatalf("logged %v; want the settings, then a warning", all)
	}
	if f := all[0].ContextMap(); f["gogc"] != int64(400) || f["memory_limit_from"] != "cgroup" {
		t.Errorf("fields %v", f)
	}
}

// TestFloor: a default limit is raised to a service's floor, never
// lowered; a limit the operator or the container set is kept.
func TestFloor(t *testing.T) {
	keep(t)
	a := Applied{Settings: Settings{GOGC: DefaultGOGC, GOGCFrom: "default", MemoryLimit: DefaultMemoryLimit, MemoryLimitFrom: "default"}}
	debug.SetMemoryLimit(DefaultMemoryLimit)
	a.Floor(DefaultMemoryLimit / 2)
	if a.Settings.MemoryLimit != DefaultMemoryLimit || debug.SetMemoryLimit(-1) != DefaultMemoryLimit {
		t.Errorf("Floor below the default changed the limit to %d", a.Settings.MemoryLimit)
	}
	a.Floor(2 << 30)
	if a.Settings.MemoryLimit != 2<<30 || debug.SetMemoryLimit(-1) != 2<<30 || a.Settings.MemoryLimitFrom == "default" {
		t.Errorf("Floor above the default = %+v, limit in force %d; want 2 GiB", a.Settings, debug.SetMemoryLimit(-1))
	}
	c := Applied{Settings: Settings{MemoryLimit: 1 << 30, MemoryLimitFrom: "cgroup"}}
	debug.SetMemoryLimit(1 << 30)
	c.Floor(4 << 30)
	if c.Settings.MemoryLimit != 1<<30 || debug.SetMemoryLimit(-1) != 1<<30 {
		t.Errorf("Floor changed a container's limit to %d", c.Settings.MemoryLimit)
	}
	var none Applied
	none.Floor(4 << 30)
	if debug.SetMemoryLimit(-1) != 1<<30 {
		t.Error("Floor before Apply changed the limit")
	}
}
