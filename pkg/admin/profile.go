package admin

import (
	"fmt"
	"os"
	"runtime/pprof"

	"go.uber.org/zap"
)

// StartCPUProfile writes a CPU profile of the process to path from now until
// stop is called: the whole of a run, start and drain included, which the
// admin listener's timed profiles cannot catch. stop logs to log what it
// cannot finish, so that a service can defer it as it is.
func StartCPUProfile(path string, log *zap.Logger) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Error("cpu profile", zap.String("path", path), zap.Error(err))
		}
	}, nil
}
