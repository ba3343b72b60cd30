package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// The rank index of a sorted set: counted fences over the order index.
//
// The order index (score, member rows, keyspace/zset.go) gives ranges by
// score and by lex as range scans, but a rank (ZRANK, ZRANGE 1000000
// 1000010, ZRANDMEMBER's random pick) would cost a scan from the first
// row. The fences cut the order index into buckets and count each one:
// a fence row, under the same storage id, holds the number of order rows
// from its boundary (an order position) up to the next fence's boundary.
// A rank is the sum of the counts of the fences before a position's
// bucket plus the position's rank inside its bucket: O(N/B + B) rows read
// instead of O(N), about 4,000 + 1,000 at a million members with B = 512.
//
// Invariants (after every op; the fence rows are replicated state, written
// only by apply, from the log alone, so every replica and every replay
// holds the same fences):
//   - F1: a sorted set that exists has a first fence, whose boundary is
//     empty (it sorts before every position), so every order row is in
//     exactly one bucket: the one of the greatest boundary <= its position.
//   - F2: a fence's count is the number of order rows in its bucket.
//   - F3: no count exceeds 2B: an insert that makes a bucket 2B+1 splits
//     it at its B-th row (found by scanning the bucket, O(B) once per B
//     inserts into it: amortised O(1)).
//   - F4: a remove that leaves a bucket below B/2 merges it into its next
//     (else previous) neighbour when the two fit in 2B, so two adjacent
//     small buckets do not stay apart and the fences number O(N/B).
//
// A boundary is a cut point, not a member: removing the row a boundary was
// taken from leaves the fence in place, still counting its bucket right.
// Deleting the sorted set drops the fences with its other rows (one
// DeleteRange over the storage id), so delete and expiry stay O(1).

// zsetBucket is B, the target bucket size of the rank index. It is part
// of the replicated state's shape (where fences are cut), so it is a
// constant: changing it changes no reply but would make replicas that
// apply the same log hold different fences, so it needs a format version.
const zsetBucket = 512

// zrows reads one sorted set's element rows by suffix: the apply path's
// (read-your-writes within the chunk) or a view's.
type zrows interface {
	get(suffix []byte) ([]byte, bool, error)
	// iter calls fn for each row whose suffix is in [lo, hi) (hi nil: to
	// the end), ascending or descending, until fn returns false or an
	// error. The slices are valid only during the call.
	iter(lo, hi []byte, reverse bool, fn func(suffix, val []byte) (bool, error)) error
}

// zwriter is a zrows that can change rows (the apply path only).
type zwriter interface {
	zrows
	set(suffix, val []byte) error
	del(suffix []byte) error
}

// wsRows is collection i of a write set as zrows.
type wsRows struct {
	w *writeSet
	i int
}

func (r wsRows) get(suffix []byte) ([]byte, bool, error) { return r.w.elemGet(r.i, suffix) }
func (r wsRows) iter(lo, hi []byte, reverse bool, fn func(suffix, val []byte) (bool, error)) error {
	return r.w.elemIter(r.i, lo, hi, reverse, fn)
}
func (r wsRows) set(suffix, val []byte) error { return r.w.elemSet(r.i, suffix, val) }
func (r wsRows) del(suffix []byte) error      { return r.w.elemDel(r.i, suffix) }

// collRows is a view's collection as zrows.
type collRows struct{ c Coll }

func (r collRows) get(suffix []byte) ([]byte, bool, error) { return r.c.Get(suffix) }
func (r collRows) iter(lo, hi []byte, reverse bool, fn func(suffix, val []byte) (bool, error)) error {
	var ferr error
	err := r.c.Iter(lo, hi, reverse, func(s, v []byte) bool {
		more, err := fn(s, v)
		if err != nil {
			ferr = err
			return false
		}
		return more
	})
	if err != nil {
		return err
	}
	return ferr
}

// Suffix ranges of the three row kinds.
var (
	zMemberLo = []byte{keyspace.ZSetMemberTag}
	zOrderLo  = []byte{keyspace.ZSetOrderTag}
	zOrderHi  = []byte{keyspace.ZSetOrderTag + 1}
	zFenceLo  = []byte{keyspace.ZSetFenceTag}
	zFenceHi  = []byte{keyspace.ZSetFenceTag + 1}
)

// zindex is the rank index of one sorted set. b is zsetBucket except in
// tests, which use small buckets to exercise splits and merges.
type zindex struct {
	r zrows
	b uint64
}

func newZIndex(r zrows) zindex { return zindex{r: r, b: zsetBucket} }

// fence is one fence row, decoded.
type fence struct {
	boundary []byte // an order position; empty for the first fence
	count    uint64
}

func decodeFence(suffix, val []byte) (fence, error) {
	if len(val) != 8 {
		return fence{}, fmt.Errorf("rank index: fence %x holds %d bytes, want 8", suffix, len(val))
	}
	return fence{boundary: bytes.Clone(suffix[1:]), count: binary.BigEndian.Uint64(val)}, nil
}

func encodeCount(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// orderSuffix returns the order row suffix of position pos.
func orderSuffix(pos []byte) []byte { return keyspace.AppendZSetOrderSuffix(nil, pos) }

// fenceSuffix returns the suffix of the fence whose boundary is pos.
func fenceSuffix(pos []byte) []byte { return keyspace.AppendZSetFenceSuffix(nil, pos) }

// first returns the first row iter gives, if any.
func (x zindex) first(lo, hi []byte, reverse bool) (fence, bool, error) {
	var f fence
	var found bool
	err := x.r.iter(lo, hi, reverse, func(s, v []byte) (bool, error) {
		var err error
		f, err = decodeFence(s, v)
		found = err == nil
		return false, err
	})
	return f, found, err
}

// fenceOf returns the fence of pos's bucket: the greatest boundary <= pos.
func (x zindex) fenceOf(pos []byte) (fence, error) {
	hi := append(fenceSuffix(pos), 0)
	f, ok, err := x.first(zFenceLo, hi, true)
	if err != nil {
		return fence{}, err
	}
	if !ok {
		return fence{}, fmt.Errorf("rank index: no fence at or below %x (F1 broken)", pos)
	}
	return f, nil
}

// init writes the first fence of a sorted set createColl just made.
func (x zindex) init(w zwriter) error { return w.set(fenceSuffix(nil), encodeCount(0)) }

// inserted accounts for the order row at pos, which the caller has just
// written.
func (x zindex) inserted(w zwriter, pos []byte) error {
	f, err := x.fenceOf(pos)
	if err != nil {
		return err
	}
	f.count++
	if f.count <= 2*x.b {
		return w.set(fenceSuffix(f.boundary), encodeCount(f.count))
	}
	// Split at the bucket's B-th row (F3): the bucket is the order rows
	// from the boundary on, and it has 2B+1 of them, so its B-th row
	// (0-based) exists before the next fence.
	var mid []byte
	skip := x.b
	err = x.r.iter(orderSuffix(f.boundary), zOrderHi, false, func(s, _ []byte) (bool, error) {
		if skip > 0 {
			skip--
			return true, nil
		}
		mid = bytes.Clone(s[1:])
		return false, nil
	})
	if err != nil {
		return err
	}
	if mid == nil {
		return fmt.Errorf("rank index: bucket %x counts %d rows but holds fewer (F2 broken)", f.boundary, f.count)
	}
	if err := w.set(fenceSuffix(f.boundary), encodeCount(x.b)); err != nil {
		return err
	}
	return w.set(fenceSuffix(mid), encodeCount(f.count-x.b))
}

// removed accounts for the order row at pos, which the caller has just
// deleted.
func (x zindex) removed(w zwriter, pos []byte) error {
	f, err := x.fenceOf(pos)
	if err != nil {
		return err
	}
	if f.count == 0 {
		return fmt.Errorf("rank index: bucket %x counts no row but one was removed (F2 broken)", f.boundary)
	}
	f.count--
	if f.count >= x.b/2 {
		return w.set(fenceSuffix(f.boundary), encodeCount(f.count))
	}
	// F4: merge a small bucket into a neighbour it fits with.
	next, ok, err := x.first(append(fenceSuffix(f.boundary), 0), zFenceHi, false)
	if err != nil {
		return err
	}
	if ok && f.count+next.count <= 2*x.b {
		if err := w.del(fenceSuffix(next.boundary)); err != nil {
			return err
		}
		return w.set(fenceSuffix(f.boundary), encodeCount(f.count+next.count))
	}
	if len(f.boundary) > 0 {
		prev, ok, err := x.first(zFenceLo, fenceSuffix(f.boundary), true)
		if err != nil {
			return err
		}
		if ok && prev.count+f.count <= 2*x.b {
			if err := w.del(fenceSuffix(f.boundary)); err != nil {
				return err
			}
			return w.set(fenceSuffix(prev.boundary), encodeCount(prev.count+f.count))
		}
	}
	return w.set(fenceSuffix(f.boundary), encodeCount(f.count))
}

// rank returns the number of order rows whose position is below pos; nil
// pos is the end (the set's length is then n).
func (x zindex) rank(pos []byte, n uint64) (uint64, error) {
	if pos == nil {
		return n, nil
	}
	f, err := x.fenceOf(pos)
	if err != nil {
		return 0, err
	}
	var before uint64
	err = x.r.iter(zFenceLo, fenceSuffix(f.boundary), false, func(_, v []byte) (bool, error) {
		if len(v) != 8 {
			return false, fmt.Errorf("rank index: a fence holds %d bytes, want 8", len(v))
		}
		before += binary.BigEndian.Uint64(v)
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	err = x.r.iter(orderSuffix(f.boundary), orderSuffix(pos), false, func(_, _ []byte) (bool, error) {
		before++
		return true, nil
	})
	return before, err
}

// at returns the position of the row of rank r (0-based, r < n). It walks
// the fences from the nearer end.
func (x zindex) at(r, n uint64) ([]byte, error) {
	if r >= n {
		return nil, fmt.Errorf("rank index: rank %d of %d rows", r, n)
	}
	var bucket fence
	var inBucket uint64
	found := false
	if r < n/2 {
		var cum uint64
		err := x.r.iter(zFenceLo, zFenceHi, false, func(s, v []byte) (bool, error) {
			f, err := decodeFence(s, v)
			if err != nil {
				return false, err
			}
			if cum+f.count > r {
				bucket, inBucket, found = f, r-cum, true
				return false, nil
			}
			cum += f.count
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	} else {
		back := n - 1 - r // rank from the end
		var cum uint64
		err := x.r.iter(zFenceLo, zFenceHi, true, func(s, v []byte) (bool, error) {
			f, err := decodeFence(s, v)
			if err != nil {
				return false, err
			}
			if cum+f.count > back {
				bucket, inBucket, found = f, f.count-1-(back-cum), true
				return false, nil
			}
			cum += f.count
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, fmt.Errorf("rank index: the fences count fewer than %d rows (F2 broken)", r+1)
	}
	var pos []byte
	err := x.r.iter(orderSuffix(bucket.boundary), zOrderHi, false, func(s, _ []byte) (bool, error) {
		if inBucket > 0 {
			inBucket--
			return true, nil
		}
		pos = bytes.Clone(s[1:])
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	if pos == nil {
		return nil, fmt.Errorf("rank index: bucket %x holds fewer rows than it counts (F2 broken)", bucket.boundary)
	}
	return pos, nil
}

// build writes the rows of a sorted set that createColl just made from
// entries sorted by position, with fences every B rows: ZRANGESTORE and
// the STORE forms of the set algebra write their result in O(N) without
// a split.
func (x zindex) build(w zwriter, entries []zentry) error {
	for k, e := range entries {
		if err := w.set(keyspace.AppendZSetMemberSuffix(nil, e.member), scoreBits(e.score)); err != nil {
			return err
		}
		if err := w.set(orderSuffix(e.pos), nil); err != nil {
			return err
		}
		if k%int(x.b) == 0 {
			boundary := e.pos
			if k == 0 {
				boundary = nil
			}
			cnt := min(x.b, uint64(len(entries)-k))
			if err := w.set(fenceSuffix(boundary), encodeCount(cnt)); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkFences verifies F1 to F3 against the order rows (tests).
func (x zindex) checkFences(n uint64) error {
	var fences []fence
	err := x.r.iter(zFenceLo, zFenceHi, false, func(s, v []byte) (bool, error) {
		f, err := decodeFence(s, v)
		fences = append(fences, f)
		return true, err
	})
	if err != nil {
		return err
	}
	if len(fences) == 0 || len(fences[0].boundary) != 0 {
		return fmt.Errorf("F1: no first fence")
	}
	var total uint64
	for k, f := range fences {
		var hi []byte = zOrderHi
		if k+1 < len(fences) {
			hi = orderSuffix(fences[k+1].boundary)
		}
		var got uint64
		if err := x.r.iter(orderSuffix(f.boundary), hi, false, func(_, _ []byte) (bool, error) { got++; return true, nil }); err != nil {
			return err
		}
		if got != f.count {
			return fmt.Errorf("F2: fence %d (%x) counts %d, bucket holds %d", k, f.boundary, f.count, got)
		}
		if f.count > 2*x.b {
			return fmt.Errorf("F3: fence %d counts %d > 2B", k, f.count)
		}
		total += got
	}
	if total != n {
		return fmt.Errorf("fences count %d rows, the set has %d", total, n)
	}
	return nil
}

// atMany returns the positions of ranks (ascending, each < n): one walk
// over the fences and one scan of each bucket holding a wanted rank, so
// ZRANDMEMBER's k picks cost O(N/B + k*B) at most, not k walks.
func (x zindex) atMany(ranks []uint64, n uint64) ([][]byte, error) {
	out := make([][]byte, 0, len(ranks))
	if len(ranks) == 0 {
		return out, nil
	}
	var fences []fence
	err := x.r.iter(zFenceLo, zFenceHi, false, func(s, v []byte) (bool, error) {
		f, err := decodeFence(s, v)
		fences = append(fences, f)
		return true, err
	})
	if err != nil {
		return nil, err
	}
	var cum uint64
	k := 0
	for _, f := range fences {
		if k == len(ranks) {
			break
		}
		if ranks[k] >= cum+f.count {
			cum += f.count
			continue
		}
		var idx uint64
		err := x.r.iter(orderSuffix(f.boundary), zOrderHi, false, func(s, _ []byte) (bool, error) {
			for k < len(ranks) && ranks[k] == cum+idx {
				out = append(out, bytes.Clone(s[1:]))
				k++
			}
			idx++
			return k < len(ranks) && idx < f.count, nil
		})
		if err != nil {
			return nil, err
		}
		cum += f.count
	}
	if k != len(ranks) {
		return nil, fmt.Errorf("rank index: the fences count fewer rows than rank %d of %d (F2 broken)", ranks[k], n)
	}
	return out, nil
}
