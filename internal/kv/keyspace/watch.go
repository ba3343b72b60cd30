package keyspace

// Rows that let an EXEC decide, on apply, whether a key that was absent when
// a client watched it has been written since, even if it is absent again
// (format 4, docs/keyspace.md "WATCH"). Each holds a log index, encoded as a
// count row (EncodeCount), that only grows.
//
// A key that exists carries its own LastWrite stamp, so these rows are only
// about keys that are gone. Instead of a tombstone per deleted key, which
// would need a horizon to be collected, a deletion raises its hash slot's
// row: a watcher of an absent key fails if the row has passed the index its
// WATCH was read at. That is conservative (a deletion of another key of the
// same slot aborts the watcher too, one chance in 16384 per deleted key),
// costs one row write per slot a chunk deletes in, and moves with the slot
// when slots migrate.
//
// A deletion on expiry raises the row only to the deleted record's own
// LastWrite index: a key that had already expired when it was watched and is
// swept afterwards does not abort the watcher, as in Redis.
var (
	// LastKeyWriteRow holds the index of the last entry that wrote a key;
	// FLUSHALL copies it into FlushRow.
	LastKeyWriteRow = []byte("m.watch.lastwrite")
	// FlushRow holds the LastKeyWriteRow value as of the last FLUSHALL:
	// every key written up to it may have been removed by a flush, so a
	// watcher of an absent key fails if it passed the watcher's index. A
	// FLUSHALL that follows no write since the WATCH aborts nobody.
	FlushRow = []byte("m.watch.flush")
)

// delStampPrefix starts the per-slot deletion rows.
const delStampPrefix = "m.watch.del."

// DelStampRow returns the deletion row of a hash slot.
func DelStampRow(slot uint16) []byte {
	return append([]byte(delStampPrefix), byte(slot>>8), byte(slot))
}
