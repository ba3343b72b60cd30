package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/cockroachdb/pebble/v2"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// SORT and SORT_RO (issue #16) over lists, sets and sorted sets.
//
// One engine serves both paths: SORT without STORE and SORT_RO read a
// View (Sort); SORT ... STORE is one op, OpSortStore, that computes the
// same result at apply, from the write set, and stores it. Computing at
// apply (rather than reading first and proposing the result) keeps STORE
// atomic without conditions on the stamps of every key a BY or GET
// pattern names, and every replica computes the same bytes: the sort is
// stable, its comparisons are total (numbers, then bytes), and nothing
// depends on a clock, a locale or map order.
//
// Costs: O(N) to read the N elements plus one lookup per element and
// pattern (BY, each GET), and O(N log N) to sort; BY nosort skips the
// sort. STORE writes the output as a new list, O(output).

// OpSortStore is SORT Keys[0] ... STORE Keys[1]: Flags are the Sort*
// flags, Delta the LIMIT offset, Values[0] the LIMIT count as 8 bytes
// big-endian (negative: to the end), Values[1] the BY pattern (empty with
// no BY), Values[2:] the GET patterns. It replies the number of elements
// stored; an empty result deletes Keys[1].
const OpSortStore Op = 89

// Sort flags (Command.Flags of OpSortStore).
const (
	SortDesc   SetFlags = 1 << iota // DESC
	SortAlpha                       // ALPHA: compare bytes, not numbers
	SortBy                          // Values[1] is a BY pattern with '*'
	SortNoSort                      // BY a pattern without '*': keep the collection's order
	SortLimit                       // LIMIT offset count
)

// EventSortStore is the keyspace event of SORT ... STORE's destination.
const EventSortStore = "sortstore"

// ErrTextSortNotDouble is SORT's reply when a weight is not a number.
const ErrTextSortNotDouble = "ERR One or more scores can't be converted into double"

// ErrSortNotDouble is returned by Sort when a weight is not a number.
var ErrSortNotDouble = errors.New(ErrTextSortNotDouble)

// zsetOrderSuffix starts the element-row suffix of a sorted set's order
// index (keyspace's zsetOrderTag; TestSortZSetOrderSuffix holds them
// equal).
const zsetOrderSuffix = 0x01

func init() {
	registerOps(map[Op]*opSpec{
		OpSortStore: {name: "SORTSTORE", minFormat: FormatV3, replies: intReply, validate: validateSortStore,
			apply2: applySortStore},
	})
}

// SortQuery is SORT's options.
type SortQuery struct {
	// By is the BY pattern (with a '*'), nil for none.
	By []byte
	// NoSort keeps the collection's own order (BY a pattern without '*').
	NoSort bool
	// Get are the GET patterns, in order ("#" is the element itself).
	Get [][]byte
	// Desc and Alpha are DESC and ALPHA.
	Desc, Alpha bool
	// Limit is set by LIMIT Offset Count (Count < 0: to the end).
	Limit         bool
	Offset, Count int64
}

// NewSortStore builds SORT key ... STORE dst.
func NewSortStore(key, dst []byte, q SortQuery) *Command {
	c := &Command{Op: OpSortStore, Keys: [][]byte{key, dst}, Delta: q.Offset}
	if q.Desc {
		c.Flags |= SortDesc
	}
	if q.Alpha {
		c.Flags |= SortAlpha
	}
	if q.NoSort {
		c.Flags |= SortNoSort
	}
	by := []byte{}
	if q.By != nil && !q.NoSort {
		c.Flags |= SortBy
		by = q.By
	}
	if q.Limit {
		c.Flags |= SortLimit
	} else {
		c.Delta = 0
	}
	count := q.Count
	if !q.Limit {
		count = 0
	}
	c.Values = append([][]byte{binary.BigEndian.AppendUint64(nil, uint64(count)), by}, q.Get...)
	return c
}

// sortQueryOf decodes an OpSortStore's query.
func sortQueryOf(c *Command) SortQuery {
	q := SortQuery{
		Desc: c.Flags&SortDesc != 0, Alpha: c.Flags&SortAlpha != 0, NoSort: c.Flags&SortNoSort != 0,
		Limit: c.Flags&SortLimit != 0, Get: c.Values[2:],
	}
	if q.Limit {
		q.Offset, q.Count = c.Delta, int64(binary.BigEndian.Uint64(c.Values[0]))
	}
	if c.Flags&SortBy != 0 {
		q.By = c.Values[1]
	}
	return q
}

func validateSortStore(c *Command) error {
	if len(c.Keys) != 2 || len(c.Values) < 2 || len(c.Values[0]) != 8 {
		return fmt.Errorf("kv: SORT STORE needs a key, a destination, a count and a BY pattern")
	}
	if err := onlyFlags(c, SortDesc|SortAlpha|SortBy|SortNoSort|SortLimit); err != nil {
		return err
	}
	hasBy := c.Flags&SortBy != 0
	if hasBy == (len(c.Values[1]) == 0) || (hasBy && c.Flags&SortNoSort != 0) {
		return fmt.Errorf("kv: SORT STORE: BY flag and pattern disagree")
	}
	if c.Flags&SortLimit == 0 && (c.Delta != 0 || binary.BigEndian.Uint64(c.Values[0]) != 0) {
		return fmt.Errorf("kv: SORT STORE: a LIMIT without its flag")
	}
	return nil
}

// sortSource is what the engine reads: the collection to sort, and the
// keys its patterns name.
type sortSource interface {
	// elements returns the elements of key in the collection's own order
	// (a list's, a sorted set's by score, a set's by bytes); ErrWrongType
	// for a string or another type.
	elements(key []byte) ([][]byte, keyspace.Type, error)
	// str returns key's value if key is a live string.
	str(key []byte) ([]byte, bool, error)
	// hashField returns field of key if key is a live hash that has it.
	hashField(key, field []byte) ([]byte, bool, error)
}

// sortPatternKey splits pattern into the key it names for elem and the
// hash field after "->" (nil when none), as Redis does: the first '*' is
// replaced by elem; "->" after it, followed by at least one byte, names
// a field. ok is false for a pattern without '*'.
func sortPatternKey(pattern, elem []byte) (key, field []byte, ok bool) {
	star := bytes.IndexByte(pattern, '*')
	if star < 0 {
		return nil, nil, false
	}
	rest := pattern[star+1:]
	if arrow := bytes.Index(rest, []byte("->")); arrow >= 0 && arrow+2 < len(rest) {
		field = rest[arrow+2:]
		rest = rest[:arrow]
	}
	key = make([]byte, 0, star+len(elem)+len(rest))
	key = append(append(append(key, pattern[:star]...), elem...), rest...)
	return key, field, true
}

// sortLookup resolves pattern for elem: the element itself for "#", the
// string or hash field it names, or false when that is missing (or of
// another type).
func sortLookup(src sortSource, pattern, elem []byte) ([]byte, bool, error) {
	if len(pattern) == 1 && pattern[0] == '#' {
		return elem, true, nil
	}
	key, field, ok := sortPatternKey(pattern, elem)
	if !ok {
		return nil, false, nil
	}
	if field != nil {
		return src.hashField(key, field)
	}
	return src.str(key)
}

// parseSortScore parses a weight as Redis's strtod-based check accepts
// it: leading blanks, then the whole rest a number (infinities included),
// not NaN, not out of float64's range.
func parseSortScore(b []byte) (float64, bool) {
	f, err := strconv.ParseFloat(string(bytes.TrimLeft(b, " \t\n\v\f\r")), 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// sortItem is one element with what it sorts by.
type sortItem struct {
	elem  []byte
	score float64
	by    []byte // ALPHA BY: the weight, nil when missing
}

// runSort computes SORT key q's output: each value, or nil for a GET
// whose key is missing. Present values are never nil.
func runSort(src sortSource, key []byte, q SortQuery) ([][]byte, error) {
	elems, _, err := src.elements(key)
	if err != nil {
		return nil, err
	}
	n := int64(len(elems))
	start, end := int64(0), n
	if q.Limit {
		start = min(max(q.Offset, 0), n)
		count := min(max(q.Count, -1), n)
		end = n
		if count >= 0 {
			end = min(start+count, n)
		}
	}
	// BY nosort keeps a list's order and a sorted set's score order,
	// reversed by DESC. A set has no order of its own: Redis sorts it
	// ALPHA for STORE (so that replicas agree); here its rows' byte order
	// is that order already, so every SORT of a set gets it.
	noSort := q.NoSort
	var out [][]byte
	emit := func(elem []byte) error {
		if len(q.Get) == 0 {
			out = append(out, elem)
			return nil
		}
		for _, g := range q.Get {
			v, ok, err := sortLookup(src, g, elem)
			if err != nil {
				return err
			}
			if ok && v == nil {
				v = []byte{}
			}
			if !ok {
				v = nil
			}
			out = append(out, v)
		}
		return nil
	}
	if noSort {
		if q.Desc {
			slices.Reverse(elems)
		}
		for _, e := range elems[start:max(start, end)] {
			if err := emit(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	items := make([]sortItem, len(elems))
	notDouble := false
	for j, e := range elems {
		items[j].elem = e
		w, ok := e, true
		if q.By != nil {
			if w, ok, err = sortLookup(src, q.By, e); err != nil {
				return nil, err
			}
		}
		if !ok {
			continue // a missing weight: 0, or first in ALPHA order
		}
		if q.Alpha {
			if q.By != nil {
				items[j].by = w
				if items[j].by == nil {
					items[j].by = []byte{}
				}
			}
			continue
		}
		f, good := parseSortScore(w)
		if !good {
			notDouble = true
		}
		items[j].score = f
	}
	if notDouble {
		return nil, ErrSortNotDouble
	}
	slices.SortStableFunc(items, func(a, b sortItem) int {
		var c int
		switch {
		case !q.Alpha:
			c = cmpFloat(a.score, b.score)
			if c == 0 {
				c = bytes.Compare(a.elem, b.elem)
			}
		case q.By != nil:
			switch {
			case a.by == nil && b.by == nil:
				c = 0
			case a.by == nil:
				c = -1
			case b.by == nil:
				c = 1
			default:
				c = bytes.Compare(a.by, b.by)
			}
		default:
			c = bytes.Compare(a.elem, b.elem)
		}
		if q.Desc {
			c = -c
		}
		return c
	})
	for _, it := range items[start:max(start, end)] {
		if err := emit(it.elem); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// cmpFloat orders two scores that are never NaN.
func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Sort computes SORT (without STORE) or SORT_RO of key on v: the output
// values in order, nil for a GET whose key is missing. Errors: one that
// errors.Is ErrWrongType when key is not a list, set or sorted set, and
// ErrSortNotDouble.
func Sort(v View, key []byte, q SortQuery) ([][]byte, error) {
	return runSort(viewSortSource{v}, key, q)
}

// viewSortSource reads a View.
type viewSortSource struct{ v View }

func (s viewSortSource) elements(key []byte) ([][]byte, keyspace.Type, error) {
	ki, found, err := s.v.Lookup(key)
	if err != nil || !found {
		return nil, keyspace.TypeList, err
	}
	switch ki.Type {
	case keyspace.TypeList, keyspace.TypeSet, keyspace.TypeZSet:
	default:
		return nil, 0, ErrWrongType
	}
	c, ok, err := s.v.Collection(key, ki.Type)
	if err != nil || !ok {
		return nil, ki.Type, err
	}
	var out [][]byte
	var perr error
	lo, hi := sortRowRange(ki.Type)
	err = c.Iter(lo, hi, false, func(suffix, val []byte) bool {
		e, err := sortElement(ki.Type, suffix, val)
		if err != nil {
			perr = err
			return false
		}
		out = append(out, e)
		return true
	})
	if err == nil {
		err = perr
	}
	return out, ki.Type, err
}

func (s viewSortSource) str(key []byte) ([]byte, bool, error) {
	v, ok, err := s.v.Get(key)
	if errors.Is(err, ErrWrongType) {
		return nil, false, nil
	}
	return v, ok, err
}

func (s viewSortSource) hashField(key, field []byte) ([]byte, bool, error) {
	c, ok, err := s.v.Collection(key, keyspace.TypeHash)
	if errors.Is(err, ErrWrongType) || (err == nil && !ok) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return c.Get(field)
}

// sortRowRange bounds the element rows that hold a collection's elements
// in its own order: all of a list's or set's, a sorted set's order index.
func sortRowRange(t keyspace.Type) (lo, hi []byte) {
	if t == keyspace.TypeZSet {
		return []byte{zsetOrderSuffix}, []byte{zsetOrderSuffix + 1}
	}
	return nil, nil
}

// sortElement decodes one element from its row (sortRowRange's rows).
func sortElement(t keyspace.Type, suffix, val []byte) ([]byte, error) {
	switch t {
	case keyspace.TypeList:
		return bytes.Clone(val), nil
	case keyspace.TypeSet:
		return bytes.Clone(suffix), nil
	default:
		if len(suffix) < 1+keyspace.ScoreLen {
			return nil, fmt.Errorf("sorted-set order row suffix %x: %w", suffix, ErrCorrupt)
		}
		return bytes.Clone(suffix[1+keyspace.ScoreLen:]), nil
	}
}

// writeSortSource reads the write set, so SORT ... STORE sees the ops
// before it in its chunk.
type writeSortSource struct{ w *writeSet }

func (s writeSortSource) elements(key []byte) ([][]byte, keyspace.Type, error) {
	w := s.w
	i, err := w.load(key)
	if err != nil {
		return nil, 0, fmt.Errorf("sort: %w", err)
	}
	if !w.s2[i].exists {
		return nil, keyspace.TypeList, nil
	}
	t := w.s2[i].cur.Type
	switch t {
	case keyspace.TypeList, keyspace.TypeSet, keyspace.TypeZSet:
	default:
		return nil, 0, ErrWrongType
	}
	var out [][]byte
	lo, hi := sortRowRange(t)
	err = w.elemIter(i, lo, hi, false, func(suffix, val []byte) (bool, error) {
		e, err := sortElement(t, suffix, val)
		if err != nil {
			return false, err
		}
		out = append(out, e)
		return true, nil
	})
	return out, t, err
}

func (s writeSortSource) str(key []byte) ([]byte, bool, error) {
	w := s.w
	i, err := w.load(key)
	if err != nil {
		return nil, false, fmt.Errorf("sort: %w", err)
	}
	if !w.s2[i].exists || w.s2[i].cur.Type != keyspace.TypeString {
		return nil, false, nil
	}
	v, err := w.value(i)
	if err != nil {
		return nil, false, fmt.Errorf("sort: %w", err)
	}
	return bytes.Clone(v), true, nil
}

func (s writeSortSource) hashField(key, field []byte) ([]byte, bool, error) {
	w := s.w
	i, err := w.loadColl(key, keyspace.TypeHash)
	if errors.Is(err, errWrongType) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("sort: %w", err)
	}
	if !w.collExists(i) {
		return nil, false, nil
	}
	return w.elemGet(i, field)
}

func applySortStore(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	out, err := runSort(writeSortSource{w}, c.Keys[0], sortQueryOf(c))
	switch {
	case errors.Is(err, ErrWrongType):
		return wrongType(), nil
	case errors.Is(err, ErrSortNotDouble):
		return Result{Kind: ResultError, Err: ErrTextSortNotDouble}, nil
	case err != nil:
		return Result{}, err
	}
	dst := c.Keys[1]
	di, err := w.load(dst)
	if err != nil {
		return Result{}, fmt.Errorf("sort store: %w", err)
	}
	existed := w.s2[di].exists
	if len(out) == 0 {
		if existed {
			w.del2(di)
			w.event(dst, EventDel)
		}
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	// The destination becomes a new list whatever it held, with no TTL.
	w.del2(di)
	w.createColl(di, keyspace.TypeList)
	for j := range out {
		if out[j] == nil {
			out[j] = []byte{} // a missing GET is stored as an empty string
		}
	}
	if _, ok, err := w.listPush(di, false, out); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("sort store into %q: a new list has no room: %w", dst, ErrCorrupt)
		}
		return Result{}, err
	}
	w.event(dst, EventSortStore)
	return Result{Kind: ResultInt, Int: int64(len(out))}, nil
}
