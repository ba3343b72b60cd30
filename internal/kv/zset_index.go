package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// The rank index of a sorted set: counted fences over the order index,
// grouped under counted supers.
//
// The order index (score, member rows, keyspace/zset.go) gives ranges by
// score and by lex as range scans, but a rank (ZRANK, ZRANGE 1000000
// 1000010, ZRANDMEMBER's random pick) would cost a scan from the first
// row. Fences cut the order index into buckets of B to 2B rows and count
// each; supers group S to 2S consecutive fences and count their rows and
// fences. Every fence and super row lives under the set's storage id,
// keyed by the position where its bucket or group ends (exclusive), and
// holds its counts. A rank is the rows of the supers before the
// position's, plus the rows of the fences before its bucket within its
// super, plus its rank inside the bucket: O(N/(B*S) + S + B) rows read,
// about 100 + 50 + 250 at a million members, instead of O(N).
//
// Rows are keyed by their end, not their start, so that every lookup on
// the write path is a forward seek: a fence and a super are rewritten on
// every insert and remove under them, and until a flush (or within a
// chunk's batch) a reverse step would have to pass every older version,
// while a forward seek lands on the newest. Reverse steps are taken only
// on the rare paths (splitting a super, merging into a previous one).
//
// Invariants (after every op; these rows are replicated state, written
// only by apply, from the log alone, so every replica and every replay
// holds the same):
//   - F1: a sorted set that exists has a last fence and a last super,
//     both ending at zMax (above every position): every order row is in
//     exactly one bucket (the fence with the smallest end > its position)
//     and every fence in exactly one group (the super with the smallest
//     end >= the fence's end). Every super's end is a fence's end.
//   - F2: a fence's count is the number of order rows in its bucket; a
//     super's rows are the sum of its fences' counts, its fences their
//     number.
//   - F3: no fence counts more than 2B rows and no super more than 2S
//     fences: an insert that breaks either splits the bucket at its B-th
//     row (a scan of it, O(B) once per B inserts: amortised O(1)) or the
//     group at its S-th fence.
//   - F4: a remove that leaves a bucket below B/2 merges it with a
//     neighbour of its group when the two fit in 2B, and an emptied
//     bucket always goes; a group left with S/2 fences or fewer merges
//     with its next (else previous) group when the two fit in 2S.
//
// An end is a cut point, not a member: removing the row an end was taken
// from leaves the fence in place, still counting its bucket right.
// Deleting the sorted set drops the index with its other rows (one
// DeleteRange over the storage id), so delete and expiry stay O(1).

// zsetBucket (B) and zsetSuper (S) size the rank index. They shape the
// replicated state (where rows are cut), so they are constants: changing
// them changes no reply, but replicas applying the same log must cut the
// same rows, so a change needs a format version.
const (
	zsetBucket = 256
	zsetSuper  = 32
)

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

// Suffix ranges of the row kinds.
var (
	zMemberLo = []byte{keyspace.ZSetMemberTag}
	zOrderLo  = []byte{keyspace.ZSetOrderTag}
	zOrderHi  = []byte{keyspace.ZSetOrderTag + 1}
	zFenceLo  = []byte{keyspace.ZSetFenceTag}
	zFenceHi  = []byte{keyspace.ZSetFenceTag + 1}
	zSuperLo  = []byte{keyspace.ZSetSuperTag}
	zSuperHi  = []byte{keyspace.ZSetSuperTag + 1}
)

// zindex is the rank index of one sorted set. b and s are zsetBucket and
// zsetSuper except in tests, which use small ones to exercise splits and
// merges.
type zindex struct {
	r    zrows
	b, s uint64
}

func newZIndex(r zrows) zindex { return zindex{r: r, b: zsetBucket, s: zsetSuper} }

// fence is one fence row, decoded.
type fence struct {
	end   []byte // the bucket's end, an order position (exclusive); zMax for the last
	count uint64
}

// super is one super row, decoded.
type super struct {
	end    []byte // the group's end: its last fence's end
	rows   uint64
	fences uint64
}

func decodeFence(suffix, val []byte) (fence, error) {
	if len(val) != 8 {
		return fence{}, fmt.Errorf("rank index: fence %x holds %d bytes, want 8", suffix, len(val))
	}
	return fence{end: bytes.Clone(suffix[1:]), count: binary.BigEndian.Uint64(val)}, nil
}

func decodeSuper(suffix, val []byte) (super, error) {
	if len(val) != 16 {
		return super{}, fmt.Errorf("rank index: super %x holds %d bytes, want 16", suffix, len(val))
	}
	return super{end: bytes.Clone(suffix[1:]), rows: binary.BigEndian.Uint64(val), fences: binary.BigEndian.Uint64(val[8:])}, nil
}

func encodeCount(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func encodeSuper(sp super) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, sp.rows), sp.fences)
}

// orderSuffix returns the order row suffix of position pos.
func orderSuffix(pos []byte) []byte { return keyspace.AppendZSetOrderSuffix(nil, pos) }

// fenceSuffix returns the suffix of the fence whose bucket ends at end.
func fenceSuffix(end []byte) []byte { return keyspace.AppendZSetFenceSuffix(nil, end) }

// superSuffix returns the suffix of the super whose group ends at end.
func superSuffix(end []byte) []byte { return keyspace.AppendZSetSuperSuffix(nil, end) }

// after returns the smallest suffix above every suffix with prefix p's
// key exactly: p + 0x00.
func after(p []byte) []byte { return append(p, 0) }

func (x zindex) setFence(w zwriter, f fence) error {
	return w.set(fenceSuffix(f.end), encodeCount(f.count))
}
func (x zindex) setSuper(w zwriter, sp super) error {
	return w.set(superSuffix(sp.end), encodeSuper(sp))
}

// firstFence returns the first fence iter gives, if any.
func (x zindex) firstFence(lo, hi []byte, reverse bool) (fence, bool, error) {
	return firstRow(x.r, lo, hi, reverse, decodeFence)
}

// firstSuper returns the first super iter gives, if any.
func (x zindex) firstSuper(lo, hi []byte, reverse bool) (super, bool, error) {
	return firstRow(x.r, lo, hi, reverse, decodeSuper)
}

// firstRow decodes the first row r's iter gives in [lo, hi), if any.
func firstRow[T any](r zrows, lo, hi []byte, reverse bool, decode func(s, v []byte) (T, error)) (T, bool, error) {
	var row T
	var found bool
	err := r.iter(lo, hi, reverse, func(s, v []byte) (bool, error) {
		var err error
		row, err = decode(s, v)
		found = err == nil
		return false, err
	})
	return row, found, err
}

// fenceOf returns the fence of pos's bucket: the smallest end > pos.
func (x zindex) fenceOf(pos []byte) (fence, error) {
	f, ok, err := x.firstFence(after(fenceSuffix(pos)), zFenceHi, false)
	if err != nil {
		return fence{}, err
	}
	if !ok {
		return fence{}, fmt.Errorf("rank index: no fence above %x (F1 broken)", pos)
	}
	return f, nil
}

// superOf returns the super of pos's group: the smallest end > pos.
func (x zindex) superOf(pos []byte) (super, error) {
	sp, ok, err := x.firstSuper(after(superSuffix(pos)), zSuperHi, false)
	if err != nil {
		return super{}, err
	}
	if !ok {
		return super{}, fmt.Errorf("rank index: no super above %x (F1 broken)", pos)
	}
	return sp, nil
}

// init writes the last fence and super of a sorted set createColl made.
func (x zindex) init(w zwriter) error {
	if err := x.setFence(w, fence{end: zMax}); err != nil {
		return err
	}
	return x.setSuper(w, super{end: zMax, fences: 1})
}

// inserted accounts for the order row at pos, which the caller has just
// written.
func (x zindex) inserted(w zwriter, pos []byte) error {
	f, err := x.fenceOf(pos)
	if err != nil {
		return err
	}
	sp, err := x.superOf(pos)
	if err != nil {
		return err
	}
	f.count++
	sp.rows++
	if f.count <= 2*x.b {
		if err := x.setFence(w, f); err != nil {
			return err
		}
		return x.setSuper(w, sp)
	}
	// Split the bucket (F3): its rows are the last f.count order rows
	// below its end; the new fence ends at its row B (0-based from its
	// start), which is row f.count-1-B counting back from the end.
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
	if err := x.setFence(w, fence{end: mid, count: x.b}); err != nil {
		return err
	}
	if err := x.setFence(w, fence{end: f.end, count: f.count - x.b}); err != nil {
		return err
	}
	sp.fences++
	if sp.fences <= 2*x.s {
		return x.setSuper(w, sp)
	}
	// Split the group (F3) at its S-th fence: read its fences back from
	// its end (a reverse walk, once per S bucket splits).
	group := make([]fence, 0, sp.fences)
	err = x.r.iter(zFenceLo, after(fenceSuffix(sp.end)), true, func(s, v []byte) (bool, error) {
		g, err := decodeFence(s, v)
		if err != nil {
			return false, err
		}
		group = append(group, g)
		return uint64(len(group)) < sp.fences, nil
	})
	if err != nil {
		return err
	}
	if uint64(len(group)) != sp.fences {
		return fmt.Errorf("rank index: group ending %x counts %d fences, found %d (F2 broken)", sp.end, sp.fences, len(group))
	}
	// group runs backwards: its first S fences are its last S entries.
	first := super{end: group[len(group)-int(x.s)].end, fences: x.s}
	for _, g := range group[len(group)-int(x.s):] {
		first.rows += g.count
	}
	if err := x.setSuper(w, first); err != nil {
		return err
	}
	sp.rows -= first.rows
	sp.fences -= x.s
	return x.setSuper(w, sp)
}

// removed accounts for the order row at pos, which the caller has just
// deleted.
func (x zindex) removed(w zwriter, pos []byte) error {
	f, err := x.fenceOf(pos)
	if err != nil {
		return err
	}
	sp, err := x.superOf(pos)
	if err != nil {
		return err
	}
	if f.count == 0 || sp.rows == 0 {
		return fmt.Errorf("rank index: bucket ending %x counts no row but one was removed (F2 broken)", f.end)
	}
	f.count--
	sp.rows--
	merged, err := x.mergeFence(w, f, &sp)
	if err != nil {
		return err
	}
	if !merged {
		if err := x.setFence(w, f); err != nil {
			return err
		}
	}
	return x.mergeSuper(w, sp)
}

// mergeFence merges fence f, small after a remove, with a neighbour in
// its group (F4), writing the result; it reports whether it did. An
// empty bucket always goes (it will never see another remove to merge
// it): a group of only that bucket is dropped whole.
func (x zindex) mergeFence(w zwriter, f fence, sp *super) (bool, error) {
	if f.count >= x.b/2 {
		return false, nil
	}
	last := bytes.Equal(f.end, sp.end)
	if !last {
		// The next fence is in the group: f's bucket joins it.
		next, ok, err := x.firstFence(after(fenceSuffix(f.end)), zFenceHi, false)
		if err != nil {
			return false, err
		}
		if ok && f.count+next.count <= 2*x.b {
			if err := w.del(fenceSuffix(f.end)); err != nil {
				return false, err
			}
			sp.fences--
			next.count += f.count
			return true, x.setFence(w, next)
		}
	}
	// The previous fence joins f's bucket if it is in the group (reverse
	// steps, on this rare path).
	prev, ok, err := x.firstFence(zFenceLo, fenceSuffix(f.end), true)
	if err != nil {
		return false, err
	}
	inGroup := ok && sp.fences > 1
	if inGroup && !last {
		ps, found, err := x.firstSuper(zSuperLo, superSuffix(sp.end), true)
		if err != nil {
			return false, err
		}
		inGroup = !found || bytes.Compare(prev.end, ps.end) > 0
	}
	if inGroup && prev.count+f.count <= 2*x.b {
		if err := w.del(fenceSuffix(prev.end)); err != nil {
			return false, err
		}
		sp.fences--
		f.count += prev.count
		return true, x.setFence(w, f)
	}
	if f.count == 0 && sp.fences == 1 && !bytes.Equal(sp.end, zMax) {
		// An empty group of one empty bucket: drop both; the next group
		// now starts where this one did.
		if err := w.del(fenceSuffix(f.end)); err != nil {
			return false, err
		}
		sp.fences = 0
		return true, nil
	}
	return false, nil
}

// mergeSuper writes super sp, merging it with a neighbouring group when
// it is small and the two fit (F4).
func (x zindex) mergeSuper(w zwriter, sp super) error {
	if sp.fences == 0 {
		return w.del(superSuffix(sp.end)) // mergeFence dropped its only fence
	}
	if sp.fences > x.s/2 {
		return x.setSuper(w, sp)
	}
	if !bytes.Equal(sp.end, zMax) {
		next, ok, err := x.firstSuper(after(superSuffix(sp.end)), zSuperHi, false)
		if err != nil {
			return err
		}
		if ok && sp.fences+next.fences <= 2*x.s {
			if err := w.del(superSuffix(sp.end)); err != nil {
				return err
			}
			next.rows += sp.rows
			next.fences += sp.fences
			return x.setSuper(w, next)
		}
	}
	prev, ok, err := x.firstSuper(zSuperLo, superSuffix(sp.end), true)
	if err != nil {
		return err
	}
	if ok && prev.fences+sp.fences <= 2*x.s {
		if err := w.del(superSuffix(prev.end)); err != nil {
			return err
		}
		sp.rows += prev.rows
		sp.fences += prev.fences
	}
	return x.setSuper(w, sp)
}

// fencesFrom returns the lower bound of the fence rows after position
// start (the end of the previous group or bucket; empty: the first).
func fencesFrom(start []byte) []byte {
	if len(start) == 0 {
		return zFenceLo
	}
	return after(fenceSuffix(start))
}

// rank returns the number of order rows whose position is below pos; nil
// pos is the end (the set's length is then n). It sums the groups before
// pos's, then the buckets of pos's group up to and including pos's, then
// takes off the rows of pos's bucket at or above pos: forward steps only.
func (x zindex) rank(pos []byte, n uint64) (uint64, error) {
	// A position at or past zMax (a lex bound of "+") is past every row,
	// like nil: no fence ends above it.
	if pos == nil || bytes.Compare(pos, zMax) >= 0 {
		return n, nil
	}
	var upTo uint64
	start := []byte{}
	found := false
	err := x.r.iter(zSuperLo, zSuperHi, false, func(s, v []byte) (bool, error) {
		sp, err := decodeSuper(s, v)
		if err != nil {
			return false, err
		}
		if bytes.Compare(sp.end, pos) > 0 {
			found = true
			return false, nil
		}
		upTo += sp.rows
		start = sp.end
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("rank index: no super above %x (F1 broken)", pos)
	}
	var bucket fence
	found = false
	err = x.r.iter(fencesFrom(start), zFenceHi, false, func(s, v []byte) (bool, error) {
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

// span is a run of order rows to visit: (start, end) positions and the
// rows before it.
type span struct {
	start, end []byte
	cum        uint64
}

// atMany returns the positions of ranks (ascending, each < n): one walk
// over the supers, one over the fences of each group holding a wanted
// rank and one scan of each such bucket, so ZRANDMEMBER's k picks cost
// O(N/(B*S) + k*(S+B)) at most, not k walks.
func (x zindex) atMany(ranks []uint64, n uint64) ([][]byte, error) {
	out := make([][]byte, 0, len(ranks))
	if len(ranks) == 0 {
		return out, nil
	}
	if ranks[len(ranks)-1] >= n {
		return nil, fmt.Errorf("rank index: rank %d of %d rows", ranks[len(ranks)-1], n)
	}
	// pick returns the spans, among those walk lists in order with their
	// sizes, that hold a wanted rank.
	pick := func(lo, hi []byte, from span, size func(s, v []byte) ([]byte, uint64, error)) ([]span, error) {
		var spans []span
		k := 0
		for k < len(ranks) && ranks[k] < from.cum {
			k++
		}
		cum, start := from.cum, from.start
		err := x.r.iter(lo, hi, false, func(s, v []byte) (bool, error) {
			end, cnt, err := size(s, v)
			if err != nil {
				return false, err
			}
			if k < len(ranks) && ranks[k] < cum+cnt {
				spans = append(spans, span{start: start, end: end, cum: cum})
				for k < len(ranks) && ranks[k] < cum+cnt {
					k++
				}
			}
			cum += cnt
			start = end
			return k < len(ranks) && !bytes.Equal(end, from.end), nil
		})
		return spans, err
	}
	groups, err := pick(zSuperLo, zSuperHi, span{start: []byte{}, end: zMax}, func(s, v []byte) ([]byte, uint64, error) {
		sp, err := decodeSuper(s, v)
		return sp.end, sp.rows, err
	})
	if err != nil {
		return nil, err
	}
	k := 0
	for _, g := range groups {
		buckets, err := pick(fencesFrom(g.start), zFenceHi, g, func(s, v []byte) ([]byte, uint64, error) {
			f, err := decodeFence(s, v)
			return f.end, f.count, err
		})
		if err != nil {
			return nil, err
		}
		for _, b := range buckets {
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
	}
	if k != len(ranks) {
		return nil, fmt.Errorf("rank index: the counts hold fewer rows than rank %d of %d (F2 broken)", ranks[k], n)
	}
	return out, nil
}

// build writes the rows of a sorted set that createColl just made from
// entries sorted by position, with a fence after every B rows and a super
// after every S fences: ZRANGESTORE and the STORE forms of the set
// algebra write their result in O(N) without a split.
func (x zindex) build(w zwriter, entries []zentry) error {
	for _, e := range entries {
		if err := w.set(keyspace.AppendZSetMemberSuffix(nil, e.member), scoreBits(e.score)); err != nil {
			return err
		}
		if err := w.set(orderSuffix(e.pos), nil); err != nil {
			return err
		}
	}
	var fences []fence
	for k := 0; k < len(entries); k += int(x.b) {
		f := fence{end: zMax, count: uint64(len(entries) - k)}
		if f.count > x.b {
			f = fence{end: entries[k+int(x.b)].pos, count: x.b}
		}
		fences = append(fences, f)
	}
	if len(fences) == 0 {
		fences = append(fences, fence{end: zMax})
	}
	var sp super
	for k, f := range fences {
		if err := x.setFence(w, f); err != nil {
			return err
		}
		sp.rows += f.count
		sp.fences++
		if sp.fences == x.s || k == len(fences)-1 {
			sp.end = f.end
			if k == len(fences)-1 {
				sp.end = zMax
			}
			if err := x.setSuper(w, sp); err != nil {
				return err
			}
			sp = super{}
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
	var supers []super
	err = x.r.iter(zSuperLo, zSuperHi, false, func(s, v []byte) (bool, error) {
		sp, err := decodeSuper(s, v)
		supers = append(supers, sp)
		return true, err
	})
	if err != nil {
		return err
	}
	if len(fences) == 0 || !bytes.Equal(fences[len(fences)-1].end, zMax) {
		return fmt.Errorf("F1: no last fence")
	}
	if len(supers) == 0 || !bytes.Equal(supers[len(supers)-1].end, zMax) {
		return fmt.Errorf("F1: no last super")
	}
	var total uint64
	start := []byte{}
	g := 0
	var gRows, gFences uint64
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
		gRows += f.count
		gFences++
		if c := bytes.Compare(f.end, supers[g].end); c > 0 {
			return fmt.Errorf("F1: super %d ends at %x, not at a fence end", g, supers[g].end)
		} else if c == 0 {
			if gRows != supers[g].rows || gFences != supers[g].fences {
				return fmt.Errorf("F2: super %d counts %d rows in %d fences, holds %d in %d", g, supers[g].rows, supers[g].fences, gRows, gFences)
			}
			if gFences > 2*x.s {
				return fmt.Errorf("F3: super %d holds %d fences > 2S", g, gFences)
			}
			g++
			gRows, gFences = 0, 0
		}
	}
	if g != len(supers) {
		return fmt.Errorf("F1: %d supers, %d closed by fences", len(supers), g)
	}
	if total != n {
		return fmt.Errorf("fences count %d rows, the set has %d", total, n)
	}
	return nil
}
