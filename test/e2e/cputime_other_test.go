//go:build !unix

package e2e

import "time"

// cpuTime is unknown here.
func cpuTime() (time.Duration, bool) { return 0, false }
