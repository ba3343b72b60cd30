package kv

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// TestCollectionEncodingFromCount: Lookup's encoding of a collection
// follows Redis 7.2's default entry limits.
func TestCollectionEncodingFromCount(t *testing.T) {
	for _, tc := range []struct {
		t    keyspace.Type
		n    uint64
		want string
	}{
		{keyspace.TypeHash, 128, "listpack"}, {keyspace.TypeHash, 129, "hashtable"},
		{keyspace.TypeSet, 128, "listpack"}, {keyspace.TypeSet, 129, "hashtable"},
		{keyspace.TypeZSet, 128, "listpack"}, {keyspace.TypeZSet, 129, "skiplist"},
		{keyspace.TypeList, 10, "listpack"}, {keyspace.TypeList, 5000, "quicklist"},
	} {
		m := keyspace.Meta{Type: tc.t, Len: tc.n}
		require.Equal(t, tc.want, collectionEncoding(&m), "%v of %d", tc.t, tc.n)
	}
}

// TestObjectEncodingReadsSmallCollections: ObjectEncoding looks at the
// elements of a collection small enough for a small encoding.
func TestObjectEncodingReadsSmallCollections(t *testing.T) {
	d := newHS(t)
	d.apply(hset("h", "a", "1"))
	d.apply(hset("hlong", "a", strings.Repeat("x", 65)))
	d.apply(hset("hlongfield", strings.Repeat("x", 65), "1"))
	d.apply(sadd("ints", "1", "-2", "9223372036854775807"))
	d.apply(sadd("notint", "1", "01"))
	d.apply(sadd("long", strings.Repeat("x", 65)))
	var big []string
	for i := range 300 {
		big = append(big, strconv.Itoa(i))
	}
	d.apply(sadd("bigints", big...))
	d.apply(sadd("bigstr", append(big, "x")...))
	d.apply(setC("str", "12"))
	want := map[string]string{
		"h": "listpack", "hlong": "hashtable", "hlongfield": "hashtable",
		"ints": "intset", "notint": "listpack", "long": "hashtable",
		"bigints": "intset", "bigstr": "hashtable", "str": "int",
	}
	require.NoError(t, d.s.Read(func(v View) error {
		for k, w := range want {
			got, ok, err := ObjectEncoding(v, []byte(k), DefaultEncodingLimits())
			if err != nil {
				return err
			}
			require.True(t, ok, k)
			require.Equal(t, w, got, k)
		}
		_, ok, err := ObjectEncoding(v, []byte("nokey"), DefaultEncodingLimits())
		require.False(t, ok)
		return err
	}))
}
