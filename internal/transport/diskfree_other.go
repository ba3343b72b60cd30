//go:build !(linux || darwin)

package transport

// diskFree cannot tell on this platform: the free-disk check is skipped
// and only SnapshotSpoolBytes bounds the spool.
func diskFree(string) (int64, bool) { return 0, false }
