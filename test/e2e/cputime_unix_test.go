//go:build unix

package e2e

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time this process has used, user and system: with the
// embedded server, the broker's as well as the consumer's.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
