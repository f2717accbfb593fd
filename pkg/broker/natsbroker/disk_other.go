//go:build !(linux || darwin || freebsd)

package natsbroker

// diskAvailable does not know the free space on this system.
func diskAvailable(string) (uint64, bool) { return 0, false }
