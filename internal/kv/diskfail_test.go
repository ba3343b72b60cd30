package kv

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fullDiskFS fails, once armed, every write to a file whose name ends in
// suffix with ENOSPC, as a full disk does.
type fullDiskFS struct {
	vfs.FS
	suffix string
	armed  *atomic.Bool
}

func (fs fullDiskFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(f, name, err)
}

func (fs fullDiskFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(f, newname, err)
}

func (fs fullDiskFS) wrap(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, fs.suffix) {
		return f, err
	}
	return fullDiskFile{File: f, armed: fs.armed}, nil
}

type fullDiskFile struct {
	vfs.File
	armed *atomic.Bool
}

func (f fullDiskFile) Write(p []byte) (int, error) {
	if f.armed.Load() {
		return 0, &pathError{syscall.ENOSPC}
	}
	return f.File.Write(p)
}

// pathError is what the OS returns: an error wrapping the errno.
type pathError struct{ errno syscall.Errno }

func (e *pathError) Error() string { return "write: " + e.errno.Error() }
func (e *pathError) Unwrap() error { return e.errno }

// TestStorageFailureIsReportedNotStalled: a write Pebble fails (its WAL in
// the commit path, or a table in a background flush that no Apply would
// ever return) is reported once through OnStorageFailure as it happens,
// and from then on Apply, Sync and Read refuse with ErrStorageFailed and
// the OS error, instead of Pebble panicking on its failed WAL or stalling
// every commit behind a flush it keeps retrying.
func TestStorageFailureIsReportedNotStalled(t *testing.T) {
	for _, suffix := range []string{".log", ".sst"} {
		t.Run(suffix, func(t *testing.T) {
			var armed atomic.Bool
			var mu sync.Mutex
			var reports []error
			cfg := DefaultConfig("db")
			cfg.FS = fullDiskFS{FS: vfs.NewMem(), suffix: suffix, armed: &armed}
			cfg.Sync, cfg.CacheBytes = false, 4<<20
			reported := make(chan struct{})
			cfg.OnStorageFailure = func(err error) {
				mu.Lock()
				reports = append(reports, err)
				if len(reports) == 1 {
					close(reported)
				}
				mu.Unlock()
			}
			s, err := Open(cfg)
			require.NoError(t, err)
			set := func(i uint64) error {
				// 64 KiB values: a few hundred fill a memtable and force
				// a flush, which writes a table.
				v := []byte(strings.Repeat(fmt.Sprint(i%10), 64<<10))
				c := Command{Op: OpSet, Keys: [][]byte{[]byte(fmt.Sprint("k", i))}, Values: [][]byte{v}}
				_, err := s.Apply([]Entry{{Index: i, Data: c.AppendEncode(nil)}})
				return err
			}
			require.NoError(t, set(1))
			require.NoError(t, s.Sync())
			armed.Store(true)

			// Writes until the failure is met. The write that meets it
			// may return its error or stay parked inside Pebble for good
			// (a WAL rotation waits on the parked writer): either way the
			// failure is reported, and that is what the owner acts on.
			errc := make(chan error, 1)
			go func() {
				for i := uint64(2); ; i++ {
					if err := set(i); err != nil {
						errc <- err
						return
					}
				}
			}()
			select {
			case <-reported:
			case err := <-errc:
				require.ErrorIs(t, err, ErrStorageFailed)
				<-reported
			case <-time.After(30 * time.Second):
				t.Fatal("the failed write was never reported")
			}
			require.ErrorIs(t, s.Err(), ErrStorageFailed)
			require.ErrorIs(t, s.Err(), syscall.ENOSPC)
			// Everything after refuses at once, even with a write parked.
			done := make(chan struct{})
			go func() {
				defer close(done)
				assert.ErrorIs(t, set(1<<40), ErrStorageFailed, "Apply refuses from then on")
				assert.ErrorIs(t, s.Sync(), ErrStorageFailed, "Sync refuses from then on")
				assert.ErrorIs(t, s.Read(func(View) error { return nil }), ErrStorageFailed, "Read refuses")
				assert.ErrorIs(t, s.Close(), ErrStorageFailed, "Close returns at once")
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("a call after the failure blocked")
			}
			mu.Lock()
			require.Len(t, reports, 1, "reported once")
			require.True(t, errors.Is(reports[0], syscall.ENOSPC), "report: %v", reports[0])
			mu.Unlock()
		})
	}
}
