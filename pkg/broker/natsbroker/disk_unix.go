//go:build linux || darwin || freebsd

package natsbroker

import "syscall"

// diskAvailable reports the bytes an unprivileged writer can still use on
// the file system holding dir.
func diskAvailable(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
