package kv

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Storage write failures.
//
// Pebble meets a failed write in places no Apply or Sync returns: a flush
// or compaction that hits ENOSPC is retried in the background, and the
// memtables then fill until every commit stalls, so the applier would
// wedge without an error; a failed write of Pebble's own WAL makes the
// next commit panic. So the store watches its filesystem: the first failed
// write, fsync or space allocation, seen as it happens, marks the store
// failed and is reported through Config.OnStorageFailure, before Pebble
// itself acts on it. From then on Apply and Sync refuse (they never reach
// Pebble's commit again), Read refuses too (the node is about to restart),
// and the owner stops serving.

// ErrStorageFailed matches (errors.Is) the error of a store whose disk
// failed a write.
var ErrStorageFailed = errors.New("kv: storage write failed")

// storageFailure wraps the first failed write with ErrStorageFailed while
// keeping the OS error (ENOSPC, EIO) visible to errors.Is.
type storageFailure struct{ err error }

func (e *storageFailure) Error() string        { return "kv: storage write failed: " + e.err.Error() }
func (e *storageFailure) Unwrap() error        { return e.err }
func (e *storageFailure) Is(target error) bool { return target == ErrStorageFailed }

// fail records the store's first storage failure and reports it.
func (s *Store) fail(err error) {
	var sf error = &storageFailure{err: err}
	if !s.failed.CompareAndSwap(nil, &sf) {
		return
	}
	if s.cfg.Logger != nil {
		s.cfg.Logger.Error("pebble storage write failed; the store stops serving", "err", err)
	}
	if s.cfg.OnStorageFailure != nil {
		s.cfg.OnStorageFailure(sf)
	}
}

// Err returns the storage failure that stopped the store, or nil.
func (s *Store) Err() error {
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// commit commits b, turning a panic inside Pebble into the store's failure:
// Pebble panics when its WAL writer already failed, which can race with
// the check Apply makes before committing. The process must still stop in
// order, and /healthz must say why first.
func (s *Store) commit(b *pebble.Batch, wo *pebble.WriteOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			perr, ok := r.(error)
			if !ok {
				perr = fmt.Errorf("%v", r)
			}
			s.fail(fmt.Errorf("pebble commit panicked: %w", perr))
			s.wedged.Store(true)
			err = s.Err()
		}
	}()
	return b.Commit(wo)
}

// isDiskError reports whether err from a namespace operation (create,
// rename, link, mkdir) means the disk, not the caller, is at fault.
func isDiskError(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO) ||
		errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EDQUOT)
}

// failFS reports storage write failures of the FS it wraps; see above.
type failFS struct {
	vfs.FS
	report func(error)
}

var _ vfs.FS = failFS{}

func (fs failFS) check(op, name string, err error) error {
	if err != nil && isDiskError(err) {
		fs.report(fmt.Errorf("%s %s: %w", op, name, err))
	}
	return err
}

func (fs failFS) wrap(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil {
		return f, fs.check("create", name, err)
	}
	return failFile{File: f, name: name, report: fs.report}, nil
}

// Create implements vfs.FS.
func (fs failFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(f, name, err)
}

// OpenReadWrite implements vfs.FS.
func (fs failFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(f, name, err)
}

// ReuseForWrite implements vfs.FS.
func (fs failFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(f, newname, err)
}

// OpenDir implements vfs.FS: directories are synced through it.
func (fs failFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	if err != nil {
		return f, err
	}
	return failFile{File: f, name: name, report: fs.report}, nil
}

// Link implements vfs.FS.
func (fs failFS) Link(oldname, newname string) error {
	return fs.check("link", newname, fs.FS.Link(oldname, newname))
}

// Rename implements vfs.FS.
func (fs failFS) Rename(oldname, newname string) error {
	return fs.check("rename", newname, fs.FS.Rename(oldname, newname))
}

// MkdirAll implements vfs.FS.
func (fs failFS) MkdirAll(dir string, perm os.FileMode) error {
	return fs.check("mkdir", dir, fs.FS.MkdirAll(dir, perm))
}

// Unwrap implements vfs.FS.
func (fs failFS) Unwrap() vfs.FS { return fs.FS }

// failFile reports every failed write, allocation or sync: whatever the
// error, the file's contents on disk are then unknown.
type failFile struct {
	vfs.File
	name   string
	report func(error)
}

func (f failFile) check(op string, err error) error {
	if err != nil {
		f.report(fmt.Errorf("%s %s: %w", op, f.name, err))
	}
	return err
}

// Write implements vfs.File.
func (f failFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	return n, f.check("write", err)
}

// WriteAt implements vfs.File.
func (f failFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	return n, f.check("write", err)
}

// Preallocate implements vfs.File. Only a disk error counts: a filesystem
// without fallocate support fails it harmlessly.
func (f failFile) Preallocate(off, n int64) error {
	err := f.File.Preallocate(off, n)
	if err != nil && isDiskError(err) {
		f.report(fmt.Errorf("preallocate %s: %w", f.name, err))
	}
	return err
}

// Sync implements vfs.File.
func (f failFile) Sync() error { return f.check("fsync", f.File.Sync()) }

// SyncData implements vfs.File.
func (f failFile) SyncData() error { return f.check("fdatasync", f.File.SyncData()) }

// SyncTo implements vfs.File.
func (f failFile) SyncTo(length int64) (bool, error) {
	full, err := f.File.SyncTo(length)
	return full, f.check("sync", err)
}
