//go:build linux || darwin

package transport

import "golang.org/x/sys/unix"

// diskFree returns the bytes an unprivileged writer may still use on dir's
// file system (f_bavail: the blocks reserved for root do not count).
func diskFree(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true //nolint:unconvert // Bsize is uint32 on darwin, int64 on linux
}
