package kv

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

func TestSortZSetOrderSuffix(t *testing.T) {
	sid := keyspace.Stamp{Index: 3, Pos: 1}
	lo, hi := keyspace.ZSetOrderRange(5, sid)
	p := keyspace.ElementsPrefix(nil, 5, sid)
	l, h := sortRowRange(keyspace.TypeZSet)
	require.Equal(t, lo, append(p, l...))
	require.Equal(t, hi, append(p, h...))
}

func TestSortPatternKey(t *testing.T) {
	for _, tc := range []struct {
		pattern, elem, key, field string
		ok                        bool
	}{
		{"w_*", "3", "w_3", "", true},
		{"w_*->f", "3", "w_3", "f", true},
		{"w_*->", "3", "w_3->", "", true},
		{"*_*", "a", "a_*", "", true},
		{"{t}*x->a->b", "1", "{t}1x", "a->b", true},
		{"nostar", "1", "", "", false},
	} {
		k, f, ok := sortPatternKey([]byte(tc.pattern), []byte(tc.elem))
		require.Equal(t, tc.ok, ok, tc.pattern)
		require.Equal(t, tc.key, string(k), tc.pattern)
		require.Equal(t, tc.field, string(f), tc.pattern)
	}
}

func (d *v2) sort(k string, q SortQuery) ([]string, error) {
	d.t.Helper()
	var out []string
	err := d.s.Read(func(v View) error {
		vals, err := Sort(v, []byte(k), q)
		out = out[:0]
		for _, x := range vals {
			if x == nil {
				out = append(out, "<nil>")
			} else {
				out = append(out, string(x))
			}
		}
		return err
	})
	return out, err
}

func TestSortListsAndStore(t *testing.T) {
	d := newV3(t)
	d.apply(pushC("l", false, "3", "10", "1", "2.5", "-inf"))
	for _, w := range [][2]string{{"w_3", "c"}, {"w_10", "a"}, {"w_1", "b"}, {"o_3", "x"}} {
		d.apply(setC(w[0], w[1]))
	}
	got, err := d.sort("l", SortQuery{})
	require.NoError(t, err)
	require.Equal(t, []string{"-inf", "1", "2.5", "3", "10"}, got)
	got, _ = d.sort("l", SortQuery{Alpha: true, Desc: true})
	require.Equal(t, []string{"3", "2.5", "10", "1", "-inf"}, got)
	got, _ = d.sort("l", SortQuery{Limit: true, Offset: 1, Count: 2})
	require.Equal(t, []string{"1", "2.5"}, got)
	got, _ = d.sort("l", SortQuery{Limit: true, Offset: -5, Count: -1, Desc: true})
	require.Equal(t, []string{"10", "3", "2.5", "1", "-inf"}, got)
	// BY a string pattern, ALPHA: the missing weights come first, in list
	// order (the sort is stable).
	got, _ = d.sort("l", SortQuery{By: []byte("w_*"), Alpha: true})
	require.Equal(t, []string{"2.5", "-inf", "10", "1", "3"}, got)
	got, _ = d.sort("l", SortQuery{NoSort: true, Desc: true, Limit: true, Offset: 1, Count: 2, Get: [][]byte{[]byte("#"), []byte("o_*")}})
	require.Equal(t, []string{"2.5", "<nil>", "1", "<nil>"}, got)
	_, err = d.sort("l", SortQuery{By: []byte("w_*")})
	require.ErrorIs(t, err, ErrSortNotDouble)
	d.apply(setC("s", "x"))
	_, err = d.sort("s", SortQuery{})
	require.ErrorIs(t, err, ErrWrongType)
	got, err = d.sort("missing", SortQuery{})
	require.NoError(t, err)
	require.Empty(t, got)

	// STORE at apply, in one chunk with the pushes before it: the
	// destination becomes a list (a missing GET stored as ""), its TTL
	// gone.
	d.apply(Command{Op: OpSetX, Flags: SetPX, Delta: 100000, Keys: kvs("dst"), Values: kvs("old")})
	d.index++
	ents := []Entry{
		{Index: d.index, Data: enc(pushC("l", false, "0")), Stamp: d.clock},
		{Index: d.index + 1, Data: enc(*NewSortStore([]byte("l"), []byte("dst"), SortQuery{Get: [][]byte{[]byte("#"), []byte("o_*")}, Limit: true, Offset: 3, Count: 2})), Stamp: d.clock},
		{Index: d.index + 2, Data: enc(*NewSortStore([]byte("s"), []byte("x"), SortQuery{})), Stamp: d.clock},
		{Index: d.index + 3, Data: enc(*NewSortStore([]byte("l"), []byte("y"), SortQuery{By: []byte("w_*")})), Stamp: d.clock},
	}
	d.index += 3
	res, err := d.s.Apply(ents)
	require.NoError(t, err)
	require.Equal(t, Result{Kind: ResultInt, Int: 4}, res[1])
	require.Equal(t, wrongType(), res[2])
	require.Equal(t, Result{Kind: ResultError, Err: ErrTextSortNotDouble}, res[3])
	got, _ = d.list("dst")
	require.Equal(t, []string{"2.5", "", "3", "x"}, got)
	ki, _ := d.lookup("dst")
	require.Equal(t, uint64(0), ki.ExpireAt)
	// An empty result deletes the destination.
	require.Equal(t, Result{Kind: ResultInt, Int: 0}, d.apply(*NewSortStore([]byte("missing"), []byte("dst"), SortQuery{})))
	_, found := d.lookup("dst")
	require.False(t, found)
}
