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
// Pebble is built to crash on a failed write: a failed write of its WAL
// panics the next commit or the WAL rotation (the latter while a mutex is
// being released, a fatal error no recover can catch), a failed MANIFEST
// write calls Fatalf, and a flush that hits ENOSPC is retried in the
// background while the memtables fill until every commit stalls. A crash
// would tell no probe why, and a node wedged on a stall would look alive.
//
// So the store watches its filesystem (failFS). The first failed write,
// fsync or allocation after the store opened is recorded and reported
// through Config.OnStorageFailure, and then the goroutine that met it is
// parked for good instead of handing the error to Pebble: Pebble neither
// panics nor writes anything after the failure (no hole in its WAL for
// recovery to call corruption), and what is on disk stays a prefix of
// what was written, which a restart recovers as after a crash (the Raft
// WAL replays the rest). From then on Apply, Sync and Read refuse with
// the failure, and Close leaves the database as it is: the process is
// expected to exit (the server command does, within a bounded time) and
// be restarted. A failure while the store is still opening is returned as
// Open's error instead.

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

// failAndPark is failFS's report: it records err and, once the store is
// open, parks the calling Pebble goroutine for good (see above).
func (s *Store) failAndPark(err error) {
	s.fail(err)
	if s.opened.Load() {
		s.parked.Add(1)
		select {} // never returns: Pebble must not see the error
	}
}

// Err returns the storage failure that stopped the store, or nil.
func (s *Store) Err() error {
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// commit commits b, turning a panic inside Pebble into the store's
// failure: failFS keeps write errors from Pebble, but a panic it would
// still raise must not kill the process before /healthz says why.
func (s *Store) commit(b *pebble.Batch, wo *pebble.WriteOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			perr, ok := r.(error)
			if !ok {
				perr = fmt.Errorf("%v", r)
			}
			s.fail(fmt.Errorf("pebble commit panicked: %w", perr))
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
