package kv

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Transactions and scripts on apply (format 4).
//
// An EXEC (and an EVAL) is one log entry, OpExec, carrying the commands
// as the client sent them (argv) and, for an EXEC after WATCH, what the
// client saw of each watched key. Apply checks the watches, then hands the
// commands to the node's Executor (the Redis layer), which runs them one
// after another against a Txn: a view of the keyspace as the entry has
// left it so far, and a write path into the entry's own batch. The entry
// is alone in its apply chunk, so its effects commit together or not at
// all, and nothing else runs between its commands.
//
// Invariants:
//   - The Executor is deterministic: what it writes and replies depends
//     only on the Txn's state, index, time and the commands, never on the
//     node's clock, randomness, configuration or map order. Every limit it
//     applies is a constant of the format (docs/transactions.md).
//   - The meaning of an OpExec is the Redis meaning of its commands as this
//     format defines them; a command whose effects change gets a new format.
//   - A store failure inside the Executor (Txn.Err) stops the node like any
//     apply failure; a command's own error is part of its reply.

// OpExec runs commands on apply (exec.go): Keys are the watched keys,
// Values[0] their watch records (EncodeWatches), Values[1:] the commands,
// each an encoded argv (AppendArgv). It replies ResultNil when a watched
// key changed (nothing runs), else the Executor's reply (ResultRaw).
const OpExec Op = 80

// FormatV4 adds OpExec (MULTI/EXEC/WATCH and scripts), the watch rows
// (keyspace/watch.go) and ResultRaw replies.
const FormatV4 uint8 = 4

// MaxExecCommands bounds the commands of one OpExec. A queue longer than
// this is refused when EXEC is sent, never on apply.
const MaxExecCommands = 1 << 20

// MaxWatchedKeys bounds the watched keys of one OpExec.
const MaxWatchedKeys = 1 << 16

// Bounds of one OpExec on apply, constants of format 4 like the two
// above. A queue of a few bytes can ask for unbounded work (a hundred GETs
// of a large value, COPYs of one, KEYS over the keyspace), which every
// replica would do at once, and again at each replay: an entry that passes
// one of these bounds is rolled back whole and answers an error instead.
const (
	// MaxExecReplyBytes bounds an entry's reply: it must fit the reply of
	// a forwarded write.
	MaxExecReplyBytes = 32 << 20
	// MaxExecBatchBytes bounds what an entry writes (its share of the
	// apply batch), far below Pebble's 4 GiB batch limit.
	MaxExecBatchBytes = 512 << 20
	// MaxExecWork bounds an entry's work units: one per command, plus the
	// keys and elements its reads examine (the Executor counts them).
	MaxExecWork = 10_000_000
)

// ErrNoExecutor is the apply failure of an OpExec on a store without an
// Executor: the node must stop rather than skip the entry.
var ErrNoExecutor = errors.New("kv: an EXEC entry needs an executor, and this store has none")

// Executor runs the commands of an OpExec entry. The node's Redis layer
// implements it; see the invariants above.
type Executor interface {
	// Exec runs cmds (each an argv: name, then arguments) in order inside
	// tx and returns the entry's reply, a complete RESP reply in a
	// ResultRaw: an array of one reply per command, or with bare (one
	// command, ExecBare) that command's reply alone. It returns an error
	// only when tx.Err is set.
	Exec(tx Txn, cmds [][][]byte, bare bool) (Result, error)
}

// Txn is the entry being applied, as an Executor sees it.
type Txn interface {
	// Read runs fn against the keyspace as the entry has left it so far,
	// at the entry's time. The view is valid only during the call.
	Read(fn func(v View) error) error
	// Write applies c inside the entry and returns its result; a command
	// that cannot run inside a transaction gets an error Result. The
	// error is tx.Err's.
	Write(c *Command) (Result, error)
	// Index is the entry's log index; Now its apply time (Unix ms);
	// Format the cluster format version it applies at.
	Index() uint64
	Now() uint64
	Format() uint8
	// Err is the store failure met inside the entry, if any.
	Err() error
	// Abort rolls the whole entry back: nothing it wrote is kept, and its
	// reply is the error reply (without '-'). The Executor calls it when
	// the entry passes one of its bounds (MaxExecReplyBytes,
	// MaxExecWork); Write calls it at MaxExecBatchBytes. Aborted reports
	// whether it was called; the Executor runs nothing more once it was.
	Abort(reply string)
	Aborted() bool
}

// WatchRecord is what WATCH saw of a key, read after a read barrier.
type WatchRecord struct {
	// Live says the key existed (and had not expired) at WATCH.
	Live bool
	// Version and LastWrite are the live key's stamps (zero for a key
	// still in the v1 layout, or absent).
	Version, LastWrite keyspace.Stamp
	// ExpireAt is the live key's expiry (0: none).
	ExpireAt uint64
	// Applied is the applied index the WATCH read at.
	Applied uint64
}

// SetExecutor installs the Executor that applies OpExec entries. It must
// be called before the store applies any entry of format 4.
func (s *Store) SetExecutor(e Executor) { s.executor.Store(&e) }

// ExecBare marks an OpExec of one command that replies that command's
// reply rather than an array of one: a script (EVAL) sent outside MULTI.
const ExecBare SetFlags = 1

// NewBareExec returns the OpExec that runs argv alone, unwatched, and
// replies its reply.
func NewBareExec(argv [][]byte) *Command {
	return &Command{Op: OpExec, Flags: ExecBare, Values: [][]byte{nil, AppendArgv(nil, argv)}}
}

// NewExec returns the OpExec of cmds (each an argv of at least one
// argument) guarded by watches (keys[i] watched as recs[i]).
func NewExec(keys [][]byte, recs []WatchRecord, cmds [][][]byte) *Command {
	c := &Command{Op: OpExec, Keys: keys, Values: make([][]byte, 1+len(cmds))}
	c.Values[0] = EncodeWatches(recs)
	for i, argv := range cmds {
		c.Values[1+i] = AppendArgv(nil, argv)
	}
	return c
}

// EncodeWatches encodes watch records, in order.
func EncodeWatches(recs []WatchRecord) []byte {
	var b []byte
	for _, r := range recs {
		live := byte(0)
		if r.Live {
			live = 1
		}
		b = append(b, live)
		for _, v := range []uint64{r.Version.Index, uint64(r.Version.Pos), r.LastWrite.Index, uint64(r.LastWrite.Pos), r.ExpireAt, r.Applied} {
			b = binary.AppendUvarint(b, v)
		}
	}
	return b
}

// decodeWatches decodes n watch records.
func decodeWatches(b []byte, n int) ([]WatchRecord, error) {
	out := make([]WatchRecord, n)
	d := decoder{b: b}
	for i := range out {
		if len(d.b) == 0 || d.b[0] > 1 {
			return nil, ErrMalformed
		}
		out[i].Live = d.b[0] == 1
		d.b = d.b[1:]
		var f [6]uint64
		for j := range f {
			f[j] = d.uvarint()
		}
		if f[1] > 0xFFFFFFFF || f[3] > 0xFFFFFFFF {
			return nil, ErrMalformed
		}
		out[i].Version = keyspace.Stamp{Index: f[0], Pos: uint32(f[1])}
		out[i].LastWrite = keyspace.Stamp{Index: f[2], Pos: uint32(f[3])}
		out[i].ExpireAt, out[i].Applied = f[4], f[5]
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, ErrMalformed
	}
	return out, nil
}

// AppendArgv appends argv's encoding: a count, then each argument length
// prefixed.
func AppendArgv(dst []byte, argv [][]byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(argv)))
	for _, a := range argv {
		dst = binary.AppendUvarint(dst, uint64(len(a)))
		dst = append(dst, a...)
	}
	return dst
}

// DecodeArgv decodes AppendArgv's encoding; the arguments alias b. An argv
// has at least one argument.
func DecodeArgv(b []byte) ([][]byte, error) {
	d := decoder{b: b}
	n := d.uvarint()
	if d.err != nil || n == 0 || n > uint64(len(d.b)) {
		return nil, ErrMalformed
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = d.bytes()
		if out[i] == nil {
			out[i] = []byte{}
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, ErrMalformed
	}
	return out, nil
}

func validateExec(c *Command) error {
	if len(c.Keys) > MaxWatchedKeys || len(c.Values) == 0 || len(c.Values)-1 > MaxExecCommands || c.Delta != 0 || c.Flags&^ExecBare != 0 {
		return fmt.Errorf("kv: an EXEC holds up to %d watches and %d commands", MaxWatchedKeys, MaxExecCommands)
	}
	if c.Flags&ExecBare != 0 && (len(c.Keys) != 0 || len(c.Values) != 2) {
		return fmt.Errorf("kv: a bare EXEC holds one command and no watches")
	}
	if _, err := decodeWatches(c.Values[0], len(c.Keys)); err != nil {
		return fmt.Errorf("kv: EXEC watches: %w", err)
	}
	for i, v := range c.Values[1:] {
		if _, err := DecodeArgv(v); err != nil {
			return fmt.Errorf("kv: EXEC command %d: %w", i, err)
		}
	}
	return nil
}

func init() {
	registerOps(map[Op]*opSpec{
		OpExec: {name: "EXEC", minFormat: FormatV4, replies: []ResultKind{ResultNil, ResultRaw},
			validate: validateExec, apply2: applyExec},
	})
}

// applyExec checks an EXEC's watches, then runs its commands through the
// Executor. It runs alone in its chunk, on an indexed batch (Store.Apply).
func applyExec(w *writeSet, b *pebble.Batch, c *Command) (Result, error) {
	if w.executor == nil {
		return Result{}, ErrNoExecutor
	}
	recs, err := decodeWatches(c.Values[0], len(c.Keys))
	if err != nil {
		return Result{}, fmt.Errorf("%w: EXEC watches: %v", ErrUndecodable, err)
	}
	cmds := make([][][]byte, len(c.Values)-1)
	for i, v := range c.Values[1:] {
		if cmds[i], err = DecodeArgv(v); err != nil {
			return Result{}, fmt.Errorf("%w: EXEC command %d: %v", ErrUndecodable, i, err)
		}
	}
	// The entry writes into a batch of its own, merged into the chunk's
	// (which holds only this entry's metadata records: it is alone in its
	// chunk) once it has run, so that an aborted entry is dropped whole.
	// Reads inside the entry go through that batch: the write set's reads
	// too, so that a key flushed into it (flushInto) reads back.
	xb := w.newBatch()
	defer func() { _ = xb.Close() }()
	savedDB, savedB, savedLegacy := w.db, w.b, w.legacy
	w.db, w.b = xb, xb
	defer func() { w.db, w.b = savedDB, savedB }()
	commit := func() error {
		if err := w.flushInto(xb); err != nil {
			return err
		}
		if err := b.Apply(xb, nil); err != nil {
			return fmt.Errorf("exec: merge the entry's batch: %w", err)
		}
		return nil
	}
	for i, key := range c.Keys {
		ok, err := w.watchHolds(key, &recs[i])
		if err != nil {
			return Result{}, fmt.Errorf("check watch of %q: %w", key, err)
		}
		if !ok {
			// Keys the checks expired stay deleted, as a read would.
			if err := commit(); err != nil {
				return Result{}, err
			}
			return Result{Kind: ResultNil}, nil
		}
	}
	events, expired := len(w.events), w.expired
	tx := &execTxn{w: w, b: xb}
	r, err := w.executor.Exec(tx, cmds, c.Flags&ExecBare != 0)
	if tx.err != nil {
		return Result{}, tx.err
	}
	if err != nil {
		return Result{}, fmt.Errorf("exec: %w", err)
	}
	if tx.abort == "" && r.Kind == ResultRaw && len(r.Bytes) > MaxExecReplyBytes {
		tx.Abort(fmt.Sprintf("ERR the transaction's reply passed %d bytes; nothing of it was applied", MaxExecReplyBytes))
	}
	if tx.abort != "" {
		// Nothing of the entry reaches the chunk's batch: its slots,
		// events and counters go too.
		w.clearSlots()
		w.flushed, w.renamed, w.legacy = false, false, savedLegacy
		w.created = w.created[:0]
		clear(w.events[events:])
		w.events, w.expired = w.events[:events], expired
		return Result{Kind: ResultError, Err: tx.abort}, nil
	}
	if err := commit(); err != nil {
		return Result{}, err
	}
	return r, nil
}

// watchHolds reports whether key is as its WATCH saw it (rec).
//
// A key live at WATCH must still be live with the same stamps: a write,
// a delete, a FLUSHALL that removed it, or its expiry by the entry's time
// all fail it. A key absent at WATCH must still be absent, and must not
// have been written since: its expired record (if still there) must
// predate the WATCH, and neither its slot's deletion row nor the flush
// row may have passed the WATCH's index (keyspace/watch.go).
func (w *writeSet) watchHolds(key []byte, rec *WatchRecord) (bool, error) {
	i, err := w.load(key)
	if err != nil {
		return false, err
	}
	s := &w.s2[i]
	if rec.Live {
		return s.exists && s.cur.LastWrite == rec.LastWrite && s.cur.Version == rec.Version, nil
	}
	if s.exists {
		return false, nil
	}
	if s.gone && s.goneMeta.LastWrite.Index > rec.Applied {
		return false, nil
	}
	del, err := readCountRow(w.db, keyspace.DelStampRow(keyspace.HashSlot(key)))
	if err != nil {
		return false, err
	}
	flush, err := readCountRow(w.db, keyspace.FlushRow)
	if err != nil {
		return false, err
	}
	return del <= rec.Applied && flush <= rec.Applied, nil
}

// readCountRow reads a row holding a count or an index in
// keyspace.EncodeCount's form (0 when absent): the key counts, the watch
// rows, the applied index.
func readCountRow(r pebbleReader, row []byte) (uint64, error) {
	var n uint64
	var derr error
	if _, _, err := getRaw(r, row, func(v []byte) { n, derr = keyspace.DecodeCount(v) }); err != nil {
		return 0, fmt.Errorf("read %s: %w", row, err)
	}
	if derr != nil {
		return 0, fmt.Errorf("read %s: %w", row, derr)
	}
	return n, nil
}

// flushInto writes the write set's folded changes into b and empties it,
// so that reads through b see them and later changes fold onto them. Only
// OpExec does this mid-chunk, with w.db reading b.
func (w *writeSet) flushInto(b *pebble.Batch) error {
	if err := w.writeTo(b); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	w.clearSlots()
	w.flushed = false
	w.renamed = false
	w.created = w.created[:0]
	return nil
}

// execTxn is the Txn of one OpExec entry.
type execTxn struct {
	w     *writeSet
	b     *pebble.Batch
	err   error
	abort string // the reply of an aborted entry
}

func (t *execTxn) Read(fn func(v View) error) error {
	if t.err != nil {
		return t.err
	}
	if err := t.w.flushInto(t.b); err != nil {
		t.err = err
		return err
	}
	return fn(&view2{r: t.b, now: t.w.now, legacy: t.w.legacy, format: t.w.format})
}

func (t *execTxn) Write(c *Command) (Result, error) {
	if t.err != nil {
		return Result{}, t.err
	}
	if c.Op == OpBatch || c.Op == OpRaiseFormat || c.Op == OpExec || c.Op == OpInvalid {
		return Result{Kind: ResultError, Err: "ERR this command cannot run inside a transaction"}, nil
	}
	if verr := c.Validate(); verr != nil {
		// The handler built a command apply refuses: its reply, the same
		// on every replica, not a store failure.
		return Result{Kind: ResultError, Err: "ERR " + verr.Error()}, nil //nolint:nilerr // a reply
	}
	if t.abort != "" {
		return Result{Kind: ResultError, Err: t.abort}, nil
	}
	r, err := applyCommand(t.w, t.b, c)
	if err != nil {
		t.err = err
		return r, err
	}
	if t.w.bytes+t.b.Len() > MaxExecBatchBytes {
		t.Abort(fmt.Sprintf("ERR the transaction wrote more than %d bytes; nothing of it was applied", MaxExecBatchBytes))
	}
	return r, nil
}

func (t *execTxn) Abort(reply string) {
	if t.abort == "" {
		t.abort = reply
	}
}

func (t *execTxn) Aborted() bool { return t.abort != "" }

func (t *execTxn) Index() uint64 { return t.w.entryIndex }
func (t *execTxn) Now() uint64   { return t.w.now }
func (t *execTxn) Format() uint8 { return t.w.format }
func (t *execTxn) Err() error    { return t.err }

// ErrWatchFormat is Watch's error below format 4: the rows that tell a
// key written and deleted since a WATCH are only written from format 4 on,
// so a record taken before would miss such a change.
var ErrWatchFormat = errors.New("kv: WATCH needs the cluster at log format 4")

// Watch returns what WATCH records of key in v, a view Store.Read (or
// ReadAt) handed out. It needs format 4 (ErrWatchFormat).
func Watch(v View, key []byte) (WatchRecord, error) {
	wv, ok := v.(*view2)
	if !ok || wv.format < FormatV4 {
		return WatchRecord{}, ErrWatchFormat
	}
	return wv.watch(key)
}

func (v *view2) watch(key []byte) (WatchRecord, error) {
	var rec WatchRecord
	info, live, err := v.Lookup(key)
	if err != nil {
		return rec, err
	}
	if live {
		rec.Live, rec.Version, rec.LastWrite, rec.ExpireAt = true, info.Version, info.LastWrite, info.ExpireAt
	}
	if err := v.access("watch"); err != nil {
		return rec, err
	}
	if rec.Applied, err = readCountRow(v.r, metaApplied); err != nil {
		return rec, err
	}
	return rec, nil
}

// writeWatchRows raises the deletion row of every slot in which the chunk
// deleted a key, and records the chunk as the last that wrote a key
// (keyspace/watch.go). Slots are visited in first-touch order, so every
// replica builds the same batch.
func (w *writeSet) writeWatchRows(b *pebble.Batch) error {
	wrote := false
	var order []uint16
	var bumps map[uint16]uint64
	for i := range w.s2 {
		s := &w.s2[i]
		if !s.dirty {
			continue
		}
		wrote = true
		if s.exists {
			continue
		}
		var bump uint64
		switch {
		case s.gone && s.cur.LastWrite == s.goneMeta.LastWrite:
			// Deleted on expiry and not written since: the key last
			// changed when it was written, not now.
			bump = s.goneMeta.LastWrite.Index
		case s.origFrom == fromNone && s.cur.LastWrite.IsZero():
			continue // a delete of a key that never existed
		default:
			bump = w.entryIndex
		}
		slot := keyspace.HashSlot([]byte(w.k2[i]))
		if bumps == nil {
			bumps = make(map[uint16]uint64)
		}
		old, seen := bumps[slot]
		if !seen {
			order = append(order, slot)
		}
		bumps[slot] = max(old, bump)
	}
	for _, slot := range order {
		row := keyspace.DelStampRow(slot)
		old, err := readCountRow(w.db, row)
		if err != nil {
			return err
		}
		if bumps[slot] > old {
			if err := b.Set(row, keyspace.EncodeCount(bumps[slot]), nil); err != nil {
				return fmt.Errorf("set deletion row: %w", err)
			}
		}
	}
	if wrote {
		if err := b.Set(keyspace.LastKeyWriteRow, keyspace.EncodeCount(w.entryIndex), nil); err != nil {
			return fmt.Errorf("set last-write row: %w", err)
		}
	}
	return nil
}

// writeFlushRow records, for a FLUSHALL, the last entry that wrote a key
// before it: the chunk's own pending writes count as the current entry.
func (w *writeSet) writeFlushRow(b *pebble.Batch) error {
	last := uint64(0)
	if !w.flushed {
		var err error
		if last, err = readCountRow(w.db, keyspace.LastKeyWriteRow); err != nil {
			return err
		}
	}
	for i := range w.s2 {
		if w.s2[i].dirty {
			last = w.entryIndex
			break
		}
	}
	old, err := readCountRow(w.db, keyspace.FlushRow)
	if err != nil {
		return err
	}
	if last > old {
		if err := b.Set(keyspace.FlushRow, keyspace.EncodeCount(last), nil); err != nil {
			return fmt.Errorf("set flush row: %w", err)
		}
	}
	return nil
}
