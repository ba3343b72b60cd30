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
// row. The fences cut the order index into buckets and count each one: a
// fence row, under the same storage id, is keyed by its bucket's end (an
// order position, exclusive) and holds the number of order rows from the
// previous fence's end (the start for the first) up to its own. A rank is
// the sum of the counts of the buckets before a position's plus the
// position's rank inside its bucket: O(N/B + B) rows read instead of
// O(N), about 4,000 + 1,000 at a million members with B = 512.
//
// Fences are keyed by their end, not their start, so that every lookup
// on the write path is a forward seek: a fence row is rewritten on every
// insert and remove into its bucket, and until a flush (or within a
// chunk's batch) a reverse step would have to pass every older version of
// it, while a forward seek lands on the newest.
//
// Invariants (after every op; the fence rows are replicated state, written
// only by apply, from the log alone, so every replica and every replay
// holds the same fences):
//   - F1: a sorted set that exists has a last fence, whose end is zMax
//     (above every position), so every order row is in exactly one
//     bucket: the one of the smallest end > its position.
//   - F2: a fence's count is the number of order rows in its bucket.
//   - F3: no count exceeds 2B: an insert that makes a bucket 2B+1 splits
//     it at its B-th row (found by scanning the bucket, O(B) once per B
//     inserts into it: amortised O(1)).
//   - F4: a remove that leaves a bucket below B/2 merges it with its next
//     (else its previous) neighbour when the two fit in 2B, so two
//     adjacent small buckets do not stay apart and the fences number at
//     most about 4N/B.
//
// An end is a cut point, not a member: removing the row an end was taken
// from leaves the fence in place, still counting its bucket right.
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
	end   []byte // the bucket's end, an order position (exclusive); zMax for the last
	count uint64
}

func decodeFence(suffix, val []byte) (fence, error) {
	if len(val) != 8 {
		return fence{}, fmt.Errorf("rank index: fence %x holds %d bytes, want 8", suffix, len(val))
	}
	return fence{end: bytes.Clone(suffix[1:]), count: binary.BigEndian.Uint64(val)}, nil
}

func encodeCount(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// orderSuffix returns the order row suffix of position pos.
func orderSuffix(pos []byte) []byte { return keyspace.AppendZSetOrderSuffix(nil, pos) }

// fenceSuffix returns the suffix of the fence whose bucket ends at end.
func fenceSuffix(end []byte) []byte { return keyspace.AppendZSetFenceSuffix(nil, end) }

// first returns the first fence iter gives, if any.
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

// fenceOf returns the fence of pos's bucket: the smallest end > pos.
func (x zindex) fenceOf(pos []byte) (fence, error) {
	f, ok, err := x.first(append(fenceSuffix(pos), 0), zFenceHi, false)
	if err != nil {
		return fence{}, err
	}
	if !ok {
		return fence{}, fmt.Errorf("rank index: no fence above %x (F1 broken)", pos)
	}
	return f, nil
}

// prevFence returns the fence before f, if any (a reverse step: only on
// the rare paths, a merge into the previous bucket).
func (x zindex) prevFence(f fence) (fence, bool, error) {
	return x.first(zFenceLo, fenceSuffix(f.end), true)
}

// init writes the last fence of a sorted set createColl just made.
func (x zindex) init(w zwriter) error { return w.set(fenceSuffix(zMax), encodeCount(0)) }

// inserted accounts for the order row at pos, which the caller has just
// written.
func (x zindex) inserted(w zwriter, pos []byte) error {
	f, err := x.fenceOf(pos)
	if err != nil {
		return err
	}
	f.count++
	if f.count <= 2*x.b {
		return w.set(fenceSuffix(f.end), encodeCount(f.count))
	}
	// Split (F3): the bucket's rows are the last f.count order rows below
	// its end; the new fence ends at its row B (0-based from its start),
	// which is row f.count-1-B counting back from the end.
	var mid []byte
	skip := f.count - 1 - x.b
	err = x.r.iter(zOrderLo, orderSuffix(f.end), true, func(s, _ []byte) (bool, error) {
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
		return fmt.Errorf("rank index: bucket ending %x counts %d rows but holds fewer (F2 broken)", f.end, f.count)
	}
	if err := w.set(fenceSuffix(mid), encodeCount(x.b)); err != nil {
		return err
	}
	return w.set(fenceSuffix(f.end), encodeCount(f.count-x.b))
}

// removed accounts for the order row at pos, which the caller has just
// deleted.
func (x zindex) removed(w zwriter, pos []byte) error {
	f, err := x.fenceOf(pos)
	if err != nil {
		return err
	}
	if f.count == 0 {
		return fmt.Errorf("rank index: bucket ending %x counts no row but one was removed (F2 broken)", f.end)
	}
	f.count--
	if f.count >= x.b/2 {
		return w.set(fenceSuffix(f.end), encodeCount(f.count))
	}
	// F4: merge a small bucket into a neighbour it fits with. Merging
	// into the next bucket drops this fence (the next one's bucket then
	// starts where this one started); the last bucket merges the previous
	// one into itself.
	if !bytes.Equal(f.end, zMax) {
		next, ok, err := x.first(append(fenceSuffix(f.end), 0), zFenceHi, false)
		if err != nil {
			return err
		}
		if ok && f.count+next.count <= 2*x.b {
			if err := w.del(fenceSuffix(f.end)); err != nil {
				return err
			}
			return w.set(fenceSuffix(next.end), encodeCount(f.count+next.count))
		}
	}
	// The previous bucket merges into this one (a reverse step, taken
	// only when this bucket is small and the next one is nearly full).
	prev, ok, err := x.prevFence(f)
	if err != nil {
		return err
	}
	if ok && prev.count+f.count <= 2*x.b {
		if err := w.del(fenceSuffix(prev.end)); err != nil {
			return err
		}
		return w.set(fenceSuffix(f.end), encodeCount(prev.count+f.count))
	}
	return w.set(fenceSuffix(f.end), encodeCount(f.count))
}

// rank returns the number of order rows whose position is below pos; nil
// pos is the end (the set's length is then n). It sums the buckets up to
// and including pos's, then takes off the rows of pos's bucket at or
// above pos: forward steps only.
func (x zindex) rank(pos []byte, n uint64) (uint64, error) {
	// A position at or past zMax (a lex bound of "+") is past every row,
	// like nil: no fence ends above it.
	if pos == nil || bytes.Compare(pos, zMax) >= 0 {
		return n, nil
	}
	var upTo uint64
	var bucket fence
	found := false
	err := x.r.iter(zFenceLo, zFenceHi, false, func(s, v []byte) (bool, error) {
		f, err := decodeFence(s, v)
		if err != nil {
			return false, err
		}
		upTo += f.count
		if bytes.Compare(f.end, pos) > 0 {
			bucket, found = f, true
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("rank index: no fence above %x (F1 broken)", pos)
	}
	var above uint64
	err = x.r.iter(orderSuffix(pos), orderSuffix(bucket.end), false, func(_, _ []byte) (bool, error) {
		above++
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	if above > upTo {
		return 0, fmt.Errorf("rank index: bucket ending %x holds more rows than counted (F2 broken)", bucket.end)
	}
	return upTo - above, nil
}

// at returns the position of the row of rank r (0-based, r < n).
func (x zindex) at(r, n uint64) ([]byte, error) {
	out, err := x.atMany([]uint64{r}, n)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// atMany returns the positions of ranks (ascending, each < n): one walk
// over the fences and one scan of each bucket holding a wanted rank, so
// ZRANDMEMBER's k picks cost O(N/B + k*B) at most, not k walks.
func (x zindex) atMany(ranks []uint64, n uint64) ([][]byte, error) {
	out := make([][]byte, 0, len(ranks))
	if len(ranks) == 0 {
		return out, nil
	}
	if ranks[len(ranks)-1] >= n {
		return nil, fmt.Errorf("rank index: rank %d of %d rows", ranks[len(ranks)-1], n)
	}
	type bucket struct {
		start, end []byte
		cum        uint64 // rows before the bucket
	}
	var want []bucket
	var cum uint64
	start := []byte{}
	k := 0
	err := x.r.iter(zFenceLo, zFenceHi, false, func(s, v []byte) (bool, error) {
		f, err := decodeFence(s, v)
		if err != nil {
			return false, err
		}
		if k < len(ranks) && ranks[k] < cum+f.count {
			want = append(want, bucket{start: start, end: f.end, cum: cum})
			for k < len(ranks) && ranks[k] < cum+f.count {
				k++
			}
		}
		cum += f.count
		start = f.end
		return k < len(ranks), nil
	})
	if err != nil {
		return nil, err
	}
	if k != len(ranks) {
		return nil, fmt.Errorf("rank index: the fences count fewer rows than rank %d of %d (F2 broken)", ranks[k], n)
	}
	k = 0
	for _, b := range want {
		idx := b.cum
		err := x.r.iter(orderSuffix(b.start), orderSuffix(b.end), false, func(s, _ []byte) (bool, error) {
			for k < len(ranks) && ranks[k] == idx {
				out = append(out, bytes.Clone(s[1:]))
				k++
			}
			idx++
			return k < len(ranks), nil
		})
		if err != nil {
			return nil, err
		}
	}
	if k != len(ranks) {
		return nil, fmt.Errorf("rank index: a bucket holds fewer rows than it counts (F2 broken)")
	}
	return out, nil
}

// build writes the rows of a sorted set that createColl just made from
// entries sorted by position, with a fence after every B rows:
// ZRANGESTORE and the STORE forms of the set algebra write their result
// in O(N) without a split.
func (x zindex) build(w zwriter, entries []zentry) error {
	for _, e := range entries {
		if err := w.set(keyspace.AppendZSetMemberSuffix(nil, e.member), scoreBits(e.score)); err != nil {
			return err
		}
		if err := w.set(orderSuffix(e.pos), nil); err != nil {
			return err
		}
	}
	for k := 0; k < len(entries); k += int(x.b) {
		end, cnt := zMax, uint64(len(entries)-k)
		if cnt > x.b {
			end, cnt = entries[k+int(x.b)].pos, x.b
		}
		if err := w.set(fenceSuffix(end), encodeCount(cnt)); err != nil {
			return err
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
	if len(fences) == 0 || !bytes.Equal(fences[len(fences)-1].end, zMax) {
		return fmt.Errorf("F1: no last fence")
	}
	var total uint64
	start := []byte{}
	for k, f := range fences {
		var got uint64
		if err := x.r.iter(orderSuffix(start), orderSuffix(f.end), false, func(_, _ []byte) (bool, error) { got++; return true, nil }); err != nil {
			return err
		}
		if got != f.count {
			return fmt.Errorf("F2: fence %d (%x) counts %d, bucket holds %d", k, f.end, f.count, got)
		}
		if f.count > 2*x.b {
			return fmt.Errorf("F3: fence %d counts %d > 2B", k, f.count)
		}
		total += got
		start = f.end
	}
	if total != n {
		return fmt.Errorf("fences count %d rows, the set has %d", total, n)
	}
	return nil
}
