package redis

import (
	"bytes"
	"container/list"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/elastickv/elastickv/internal/kv"
)

// SCAN walks the keyspace with kv's View.Scan: in key order within each hash
// slot, slot after slot (and the rows of the previous layout first, while
// any remain). Its cursor must be a number (go-redis parses it as uint64),
// but the position it stands for is kv's opaque scan position. The server
// keeps a bounded table from random cursor ids to that position; an id that
// has aged out of the table is answered "-ERR invalid cursor" and the
// client starts over. Cursors live in one node's memory: a scan resumed on
// another node, or after a restart, gets "invalid cursor".
//
// Guarantees, as Redis gives: a key present for the whole scan is returned
// at least once (exactly once unless it was converted to the new layout
// during the scan); a key added or removed during the scan may or may not
// be returned.

// Bounds of SCAN's work and of the cursor table.
const (
	// maxScanCount caps COUNT, which is only a hint in Redis, so that one
	// call cannot pull the whole keyspace into memory.
	maxScanCount = 10000
	// maxScanReplyBytes stops a call early once the matched keys it holds
	// reach this size (keys can be up to MaxValueBytes each).
	maxScanReplyBytes = 4 << 20
	// maxScanCursors and maxScanCursorBytes bound the cursor table. Each
	// step of every scan adds an entry; the least recently used go first.
	maxScanCursors     = 16384
	maxScanCursorBytes = 64 << 20
)

func cmdScan(s *Server, c *client, args [][]byte) {
	a, err := parseScanArgs(args[1:])
	if err != nil {
		c.err(err.Error())
		return
	}
	var start []byte
	if a.cursor != 0 {
		var ok bool
		if start, ok = s.cursorGet(c, a.cursor); !ok {
			c.err(string(errInvalidCursor))
			return
		}
	}
	var (
		prefix  []byte
		pattern *glob
	)
	if a.pattern != nil {
		prefix, pattern = literalPrefix(a.pattern), compileGlob(a.pattern)
	}
	var (
		keys [][]byte
		next []byte // the first key not yet examined; nil when done
	)
	ok := s.readBounded(c, "scan", func(v kv.View, b *budget) error {
		keys, next = keys[:0], nil
		examined, held := 0, 0
		var err error
		next, err = v.Scan(start, prefix, func(k []byte) bool {
			if examined == a.count || held >= maxScanReplyBytes {
				return false // Scan hands back this key's position
			}
			examined++
			matched := true
			if a.pattern != nil {
				var err error
				if matched, err = pattern.matchWithin(k, b); err != nil {
					return false // the budget is spent; Scan reports it
				}
			}
			if matched {
				keys = append(keys, bytes.Clone(k))
				held += len(k)
			}
			return true
		})
		if errors.Is(err, kv.ErrBadCursor) {
			return errInvalidCursor
		}
		if err != nil || a.typ == nil {
			return err
		}
		// TYPE filters what MATCH kept, one metadata read per key.
		kept := keys[:0]
		for _, k := range keys {
			info, found, err := v.Lookup(k)
			if err != nil {
				return err
			}
			if found && equalFold(a.typ, info.Type.String()) {
				kept = append(kept, k)
			}
		}
		keys = kept
		return nil
	})
	if !ok {
		return
	}
	var id uint64
	if next != nil {
		id = s.cursorPut(c, bytes.Clone(next))
	}
	writeScanReply(c, id, keys)
}

func writeScanReply(c *client, cursor uint64, keys [][]byte) {
	c.array(2)
	c.bulkString(strconv.FormatUint(cursor, 10))
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}

// cursorTable maps SCAN cursor ids to the key where the scan resumes. It is
// bounded in entries and in key bytes, evicting the least recently used.
// Entries are not removed when used: a client that retries a SCAN whose
// reply it lost must get the same page again.
type cursorTable struct {
	maxEntries, maxBytes int

	mu    sync.Mutex
	ids   map[uint64]*list.Element // of *cursorEntry
	lru   list.List                // front: most recently used
	bytes int                      // Invariant: sum of len(next) over entries
}

type cursorEntry struct {
	id   uint64
	next []byte // never modified once stored
}

func newCursorTable(maxEntries, maxBytes int) *cursorTable {
	return &cursorTable{maxEntries: maxEntries, maxBytes: maxBytes, ids: make(map[uint64]*list.Element)}
}

// get returns the resume key of cursor id.
func (t *cursorTable) get(id uint64) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.ids[id]
	if !ok {
		return nil, false
	}
	t.lru.MoveToFront(el)
	return el.Value.(*cursorEntry).next, true
}

// put stores a resume key under a fresh, non-zero, random id. Random ids
// keep one client from stumbling onto another's cursor by counting.
func (t *cursorTable) put(next []byte) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := rand.Uint64()
	for id == 0 || t.ids[id] != nil {
		id = rand.Uint64()
	}
	t.ids[id] = t.lru.PushFront(&cursorEntry{id: id, next: next})
	t.bytes += len(next)
	// Keep at least the entry just added, however large, so the scan that
	// created it can continue.
	for t.lru.Len() > 1 && (t.lru.Len() > t.maxEntries || t.bytes > t.maxBytes) {
		e := t.lru.Remove(t.lru.Back()).(*cursorEntry)
		delete(t.ids, e.id)
		t.bytes -= len(e.next)
	}
	return id
}

// len returns the number of cursors held.
func (t *cursorTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}
