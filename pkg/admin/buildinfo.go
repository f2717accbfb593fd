package admin

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Version and Commit name the build in wahook_build_info; set them with
// -ldflags "-X github.com/wahook/wahook/pkg/admin.Version=v1.2.3 -X
// github.com/wahook/wahook/pkg/admin.Commit=abc123". Left empty, they are
// read from the module version and the VCS stamp go build records.
var Version, Commit string

// Build is what wahook_build_info says of this binary.
type Build struct {
	Version, Commit, GoVersion string
}

// ReadBuild returns the binary's version, commit and Go version: Version
// and Commit when set, else what the build recorded ("unknown" when
// nothing: go test and go run without VCS stamping).
func ReadBuild() Build {
	b := Build{Version: Version, Commit: Commit, GoVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && info.Main.Version != "" {
			b.Version = info.Main.Version
		}
		if b.Commit == "" {
			var modified bool
			for _, s := range info.Settings {
				switch s.Key {
				case "vcs.revision":
					b.Commit = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if b.Commit != "" && modified {
				b.Commit += "-dirty"
			}
		}
	}
	if b.Version == "" {
		b.Version = "unknown"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// BuildInfo is the wahook_build_info gauge, 1 with the build's labels, so
// that dashboards and alerts can tell which build runs where.
func BuildInfo() prometheus.Collector {
	b := ReadBuild()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "wahook_build_info",
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
	}, func() float64 { return 1 })
}
