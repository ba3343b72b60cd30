package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/elastickv/elastickv/internal/raft"
)

// Key prefixes; see the package comment.
const (
	prefixMeta = 'm'
	prefixUser = 'u'
	valString  = 's'
)

var (
	metaApplied = []byte("mapplied")
	// legacyMetaKeyCount held a key count maintained on every write by
	// earlier versions; it is deleted at open and skipped on restore, so
	// replicas that upgraded at different indexes still hash alike.
	legacyMetaKeyCount = []byte("mkeycount")
	userLower          = []byte{prefixUser}
	userUpper          = []byte{prefixUser + 1}
)

// ErrClosed is returned by a Store after Close.
var ErrClosed = errors.New("kv: store closed")

// Config configures a Store.
type Config struct {
	// Dir is the Pebble directory.
	Dir string
	// FS is the filesystem; nil means the OS filesystem. Tests pass
	// vfs.NewCrashableMem() to lose unsynced writes for real.
	FS vfs.FS
	// CacheBytes is Pebble's block cache size.
	CacheBytes int64
	// Sync commits every applied batch with fsync. Without it the Raft WAL is
	// the durability boundary and a crash replays from the last synced index.
	Sync bool
	// Logger receives Pebble's event log; nil discards it.
	Logger *slog.Logger
	// MaxBatchBytes is the apply-batch budget: Apply commits what it has
	// applied so far, at an entry boundary, once the pending batch holds
	// this many bytes. 0 means DefaultMaxBatchBytes. It is local: where a
	// batch ends changes neither results nor state.
	MaxBatchBytes int
	// OnFormatChange, if set, is called with the new cluster format
	// version after the chunk that raised it is committed, or after a
	// Restore whose image is at another version, from the applier's
	// goroutine (under the store's apply lock): it must not block or call
	// back into the store's Apply, Snapshot or Restore. At Open the node
	// reads FormatVersion instead.
	OnFormatChange func(v uint8)
	// OnApplyEvents, if set, is called after each committed apply chunk
	// with its events (events.go), in log order, from the applier's
	// goroutine under the store's apply lock: it must not block or call
	// back into the store's Apply, Snapshot or Restore, and must not keep
	// the slice or the keys past the call. Nil costs nothing.
	OnApplyEvents func(events []ApplyEvent)
	// OnStorageFailure, if set, is called from whichever goroutine met it
	// with the first failed write, fsync or allocation in the store's
	// directory (diskfail.go), and with the first on-disk corruption Pebble
	// reports: at most once for each. It must not block.
	OnStorageFailure func(error)
}

// DefaultMaxBatchBytes is the default apply-batch budget.
const DefaultMaxBatchBytes = 64 << 20

// DefaultConfig returns the production defaults for dir.
func DefaultConfig(dir string) Config {
	return Config{Dir: dir, CacheBytes: 256 << 20, Sync: true}
}

// Entry is one committed Raft entry handed to Apply.
type Entry struct {
	// Index is the Raft log index.
	Index uint64
	// Data is an encoded Command, or nil for entries that only advance the
	// applied index (empty leader entries, configuration changes).
	Data []byte
	// Meta are metadata records to write with this entry, e.g. the membership
	// after a configuration change. Names must not collide with the store's.
	Meta []MetaRecord
	// Stamp is the proposing leader's wall-clock time in Unix
	// milliseconds, or 0 when the entry carries none (format 1, or an
	// entry without a proposal such as a leader no-op). The store's apply
	// time becomes max(Stamp, previous apply time): it never goes back,
	// and every replica computes the same one.
	Stamp uint64
}

// MetaRecord is a metadata key and value owned by the caller.
type MetaRecord struct {
	Name  string
	Value []byte
}

// Store is the Pebble-backed state machine. Apply must be called by one
// goroutine at a time; Read may be called concurrently with anything.
type Store struct {
	cfg   Config
	db    *pebble.DB
	cache interface{ Unref() }

	applyMu sync.Mutex    // serialises Apply
	applied atomic.Uint64 // Invariant: equals the applied index durably committed (or committed without sync) to db.

	lastBatchBytes, earlyCommits, undecodable atomic.Uint64 // ApplyStats

	// Replicated state cached in memory, updated after each chunk commits
	// and before applied is advanced, so a reader that sees an applied
	// index also sees at least the format and apply time of that index.
	applyTime atomic.Uint64 // ApplyTime
	format    atomic.Uint32 // FormatVersion
	legacy    atomic.Bool   // keyspace.LegacyPresentRow exists
	// executor runs OpExec entries (SetExecutor); nil until installed.
	executor atomic.Pointer[Executor]
	// expiredKeys counts keys apply deleted on expiry (node-local).
	expiredKeys atomic.Uint64

	ws *writeSet // reused by every Apply (under applyMu)

	closeMu sync.RWMutex
	closed  bool
	// closing is set when Close begins, before it waits on closeMu, so
	// that long reads holding closeMu stop early (read.go) instead of
	// keeping Close waiting.
	closing atomic.Bool

	// corrupt is set (once) when Pebble reports on-disk corruption. From
	// then on the store refuses every read and write: serving around a
	// damaged file could return wrong data.
	corrupt atomic.Pointer[error]
	// failed is set (once) by the first failed storage write (diskfail.go).
	failed atomic.Pointer[error]
	// opened is set once Pebble is open: failures before are Open's error.
	opened atomic.Bool
	// parked counts Pebble goroutines parked on a failed write.
	parked atomic.Int32
}

// ErrCorrupt is returned once Pebble has reported on-disk corruption.
var ErrCorrupt = errors.New("kv: on-disk corruption detected")

// corruptionMarker is written into the Pebble directory when corruption is
// detected, so the node refuses to start until an operator replaces it.
const corruptionMarker = "ELASTICKV-CORRUPTION"

func (s *Store) checkCorrupt() error {
	if e := s.corrupt.Load(); e != nil {
		return *e
	}
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}

func (s *Store) onCorruption(info pebble.DataCorruptionInfo) {
	err := fmt.Errorf("%w: %s", ErrCorrupt, info.Path)
	if !s.corrupt.CompareAndSwap(nil, &err) {
		return
	}
	if s.cfg.Logger != nil {
		s.cfg.Logger.Error("pebble reported on-disk corruption; the store stops serving", "file", info.Path, "details", info.Details)
	}
	fs := s.cfg.FS
	if fs == nil {
		fs = vfs.Default
	}
	// Best effort: the marker makes the next start refuse with the file name.
	if f, ferr := fs.Create(fs.PathJoin(s.cfg.Dir, corruptionMarker), vfs.WriteCategoryUnspecified); ferr == nil {
		_, _ = f.Write([]byte(info.Path + "\n"))
		_ = f.Sync()
		_ = f.Close()
	}
	if s.cfg.OnStorageFailure != nil {
		// A follower that serves no writes would otherwise never notice.
		s.cfg.OnStorageFailure(err)
	}
}

// Open opens (creating if needed) the store in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	fs := cfg.FS
	if fs == nil {
		fs = vfs.Default
	}
	if f, err := fs.Open(fs.PathJoin(cfg.Dir, corruptionMarker)); err == nil {
		b, _ := io.ReadAll(f)
		_ = f.Close()
		return nil, fmt.Errorf("%w: %s (recorded in %s during an earlier run); replace this node rather than restarting it",
			ErrCorrupt, strings.TrimSpace(string(b)), fs.PathJoin(cfg.Dir, corruptionMarker))
	}
	s := &Store{cfg: cfg}
	cache := pebble.NewCache(max(cfg.CacheBytes, 1<<20))
	opts := &pebble.Options{
		EventListener: &pebble.EventListener{DataCorruption: s.onCorruption},
		Cache:         cache,
		FS:            failFS{FS: fs, report: s.failAndPark},
		Logger:        pebbleLogger{cfg.Logger},
	}
	// A GET of a missing key (and the lookup of DEL, INCR, APPEND, SET NX)
	// would otherwise read a block from every level: a bloom filter (~1%
	// false positives) answers from memory.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("open pebble %s: %w", cfg.Dir, err)
	}
	s.db, s.cache = db, cache
	s.opened.Store(true)
	applied, err := readCountRow(s.db, metaApplied)
	if err == nil {
		s.applied.Store(applied)
		err = db.Delete(legacyMetaKeyCount, pebble.Sync)
	}
	if err == nil {
		err = s.loadFormatState()
	}
	if err != nil {
		_ = db.Close()
		cache.Unref()
		return nil, fmt.Errorf("open pebble %s: read metadata: %w", cfg.Dir, err)
	}
	return s, nil
}

// AppliedIndex returns the index of the last entry whose effects are in the
// store.
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// Meta returns a metadata record written through Entry.Meta, or nil.
func (s *Store) Meta(name string) ([]byte, error) {
	v, closer, err := s.db.Get(metaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read meta %s: %w", name, err)
	}
	defer func() { _ = closer.Close() }() // releases v's buffer; nothing to report
	return bytes.Clone(v), nil
}

func metaKey(name string) []byte {
	return append([]byte{prefixMeta, '.'}, name...)
}

func userKey(key []byte) []byte {
	k := make([]byte, 0, len(key)+1)
	k = append(k, prefixUser)
	return append(k, key...)
}

// ErrUndecodable reports a committed entry this binary cannot decode: an op
// it does not know (written by a newer binary) or damaged bytes. Applying
// around it would make this replica diverge from those that understand it,
// so the store refuses the whole Apply and the Raft group stops.
//
// It wraps raft.ErrUndecodable, so the Raft layer counts it with its own.
var ErrUndecodable = fmt.Errorf("kv: %w", raft.ErrUndecodable)

// Apply applies entries in index order and returns one result per entry.
// Entries at or below the applied index are skipped (their result is a zero
// Result), which makes replay after a crash idempotent.
//
// The writes of consecutive entries are folded per key in memory (see
// writeSet) and committed as one Pebble batch, together with the applied
// index of the last entry they cover. A chunk is committed early, at an
// entry boundary, once its writes hold Config.MaxBatchBytes; where the
// chunks end does not change any result or the final state, since each
// chunk reads what the previous one committed.
//
// An entry whose Data does not decode, or decodes to a command that is not
// valid, fails the call with ErrUndecodable before anything of its chunk
// is committed: the caller must stop applying (never skip the entry).
//
// Any error means the store may hold only some of the entries' effects; its
// applied index says which. The caller must stop.
func (s *Store) Apply(entries []Entry) ([]Result, error) {
	if err := s.Err(); err != nil {
		// Before applyMu: an Apply that met the failure inside Pebble
		// stays parked holding it (diskfail.go).
		return nil, err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if err := s.checkCorrupt(); err != nil {
		return nil, err
	}
	results := make([]Result, len(entries))
	applied := s.applied.Load()
	if s.ws == nil {
		s.ws = newWriteSet(s.db)
	}
	w := s.ws
	defer w.reset()
	w.now, w.format, w.legacy = s.applyTime.Load(), s.FormatVersion(), s.legacy.Load()
	w.emit = s.cfg.OnApplyEvents != nil
	w.executor, w.newBatch = nil, s.db.NewIndexedBatch
	if e := s.executor.Load(); e != nil {
		w.executor = *e
	}
	// A plain batch until the first op that reads element rows; from its
	// chunk on, an indexed one, so that the op reads the rows the chunk
	// has written (coll_apply.go). Plain batches are kept for everything
	// else: an indexed batch's index slowed a 200,000-key load down
	// severalfold (TestHostileKeysWithPathologicalPatternStopsAtDeadline).
	b := s.db.NewBatch()
	defer func() { _ = b.Close() }()
	w.b = b
	defer func() { w.b = nil }()
	indexed := false
	last := applied
	// commit ends the chunk at entry boundary last.
	commit := func() error {
		if err := s.commitChunk(w, b, last); err != nil {
			return err
		}
		w.reset()
		b.Reset()
		return nil
	}
	for i := range entries {
		e := &entries[i]
		if e.Index <= last {
			continue
		}
		var (
			cmd  Command
			subs []Command
		)
		if e.Data != nil {
			var err error
			cmd, subs, err = decodeEntry(e.Data)
			if err != nil {
				s.undecodable.Add(1)
				return nil, fmt.Errorf("%w: index %d: %v", ErrUndecodable, e.Index, err)
			}
			if (cmd.Op == OpRaiseFormat || cmd.Op == OpExec) && last != s.applied.Load() {
				// A raise is alone in its chunk: what precedes it is
				// committed in the old layout, what follows reads it. An
				// EXEC too: its reads go through the batch (exec.go).
				if err := commit(); err != nil {
					return nil, err
				}
			}
		}
		if !indexed && e.Data != nil && readsElements(&cmd, subs) {
			// Where a chunk ends changes nothing (see above), so the
			// chunk so far commits in the plain batch.
			if last != s.applied.Load() {
				if err := commit(); err != nil {
					return nil, err
				}
			}
			_ = b.Close()
			b = s.db.NewIndexedBatch()
			w.b, indexed = b, true
		}
		for _, m := range e.Meta {
			if err := b.Set(metaKey(m.Name), m.Value, nil); err != nil {
				return nil, fmt.Errorf("apply index %d: %w", e.Index, err)
			}
		}
		// Apply time never goes back: a new leader's clock may be behind
		// the old one's. Every replica sees the same stamps in the same
		// order, so every replica computes the same time.
		w.now = max(w.now, e.Stamp)
		w.entryIndex, w.entryPos = e.Index, 0
		if e.Data != nil {
			r, err := applyEntryCommand(w, b, &cmd, subs)
			if err != nil {
				return nil, fmt.Errorf("apply index %d: %w", e.Index, err)
			}
			results[i] = r
		}
		last = e.Index
		if i == len(entries)-1 {
			break
		}
		if (cmd.Op == OpRaiseFormat || cmd.Op == OpExec) && e.Data != nil {
			if err := commit(); err != nil {
				return nil, err
			}
			continue
		}
		if w.bytes+b.Len() >= s.maxBatchBytes() {
			if err := commit(); err != nil {
				return nil, err
			}
			s.earlyCommits.Add(1)
		}
	}
	if last == s.applied.Load() {
		return results, nil
	}
	if err := s.commitChunk(w, b, last); err != nil {
		return nil, err
	}
	return results, nil
}

// maxBatchBytes is the apply-batch budget (Config.MaxBatchBytes).
func (s *Store) maxBatchBytes() int {
	if s.cfg.MaxBatchBytes > 0 {
		return s.cfg.MaxBatchBytes
	}
	return DefaultMaxBatchBytes
}

// commitChunk writes the chunk's folded writes and applied index last to b
// and commits it.
func (s *Store) commitChunk(w *writeSet, b *pebble.Batch, last uint64) (err error) {
	defer func() {
		// Pebble panics when a batch outgrows what it can represent (4
		// GiB); that must stop this node with an error, not crash it.
		if r := recover(); r != nil {
			err = fmt.Errorf("build apply batch up to %d: %v", last, r)
		}
	}()
	if err := w.writeTo(b); err != nil {
		return fmt.Errorf("apply up to %d: %w", last, err)
	}
	prevFormat := s.FormatVersion()
	if err := putFormatState(b, w, prevFormat); err != nil {
		return fmt.Errorf("apply up to %d: %w", last, err)
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], last)
	if err := b.Set(metaApplied, buf[:], nil); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	s.lastBatchBytes.Store(uint64(b.Len()))
	wo := pebble.NoSync
	if s.cfg.Sync {
		wo = pebble.Sync
	}
	if err := s.commit(b, wo); err != nil {
		return fmt.Errorf("commit applied batch up to %d: %w", last, err)
	}
	if err := s.checkCorrupt(); err != nil {
		// A read in this batch hit a damaged block: its results are suspect.
		return err
	}
	s.applyTime.Store(w.now)
	s.expiredKeys.Add(w.expired)
	s.legacy.Store(w.legacy)
	s.format.Store(uint32(w.format))
	s.applied.Store(last)
	if w.format != prevFormat && s.cfg.OnFormatChange != nil {
		s.cfg.OnFormatChange(w.format)
	}
	if w.emit {
		s.deliverEvents(w)
	}
	return nil
}

// ApplyStats reports how the apply-batch budget has been used: the byte
// size of the last committed apply batch, how many batches were committed
// early because they reached Config.MaxBatchBytes, and how many committed
// entries could not be decoded.
func (s *Store) ApplyStats() (lastBatchBytes, earlyCommits, undecodable uint64) {
	return s.lastBatchBytes.Load(), s.earlyCommits.Load(), s.undecodable.Load()
}

// Sync makes every committed batch durable. In nosync mode the Raft layer
// calls it before compacting the log past the applied index.
func (s *Store) Sync() error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.Err(); err != nil {
		return err // Pebble's WAL writer may already have failed: it would panic
	}
	// An empty synced batch forces the WAL (and everything before it) to disk.
	b := s.db.NewBatch()
	defer func() { _ = b.Close() }() // recycles it; Commit's error is the one that counts
	if err := b.LogData(nil, nil); err != nil {
		return fmt.Errorf("sync pebble: %w", err)
	}
	if err := s.commit(b, pebble.Sync); err != nil {
		return fmt.Errorf("sync pebble: %w", err)
	}
	return nil
}

// Close closes the database. It waits for an Apply in progress, and for
// reads in progress to notice that it began: a scan stops within a few
// hundred keys (read.go).
func (s *Store) Close() error {
	s.closing.Store(true)
	if err := s.Err(); err != nil {
		// Pebble is parked on the failed write (diskfail.go), and an Apply
		// may wait on it while holding closeMu: closing would wait
		// forever. The process is about to exit; what is on disk is
		// recovered at the next start.
		return fmt.Errorf("close pebble: left open after a storage failure: %w", err)
	}
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.db.Close()
	s.cache.Unref()
	if err != nil {
		return fmt.Errorf("close pebble: %w", err)
	}
	return nil
}

// pebbleReader is what both snapshots and batches offer.
type pebbleReader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// getRaw looks key up and passes the stored bytes to use while they are valid.
func getRaw(r pebbleReader, key []byte, use func([]byte)) ([]byte, bool, error) {
	val, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get: %w", err)
	}
	use(val)
	_ = closer.Close()
	return nil, true, nil
}

// ErrWrongType marks a key holding a value of a type the command cannot
// operate on. View methods return it (possibly wrapped); callers test it
// with errors.Is, never by its text. Its text is ErrTextWrongType, the
// reply Redis sends.
var ErrWrongType = errors.New(ErrTextWrongType)

// errWrongType is ErrWrongType under the name the apply path uses.
var errWrongType = ErrWrongType

// getString returns a copy of the string stored at the (prefixed) key.
func getString(r pebbleReader, key []byte) ([]byte, bool, error) {
	var out []byte
	var typeErr error
	_, found, err := getRaw(r, key, func(b []byte) {
		if len(b) == 0 || b[0] != valString {
			typeErr = errWrongType
			return
		}
		out = bytes.Clone(b[1:])
	})
	if err != nil {
		return nil, false, err
	}
	if typeErr != nil {
		return nil, true, typeErr
	}
	if found && out == nil {
		out = []byte{}
	}
	return out, found, nil
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l != nil {
		p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	if p.l != nil {
		p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.l != nil {
		p.l.Error(msg, "component", "pebble")
	}
	// Pebble calls Fatalf only for unrecoverable corruption; it expects the
	// process to stop, and continuing could serve wrong data.
	panic(msg)
}
