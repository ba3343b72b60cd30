package kv

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// A chunked string renamed to another slot keeps its elements on loan;
// INCRBYFLOAT rewrites it small (inline), which must clear the loan
// (EncodeMeta refuses an inline string marked foreign: every replica would
// halt on the entry).
func TestIncrByFloatOnForeignChunkedStringBecomesInline(t *testing.T) {
	d := newHS(t)
	require.NotEqual(t, keyspace.HashSlot([]byte("a")), keyspace.HashSlot([]byte("b")))
	v := strings.Repeat("0", 1100) + "1.5"
	d.apply(setC("a", v))
	d.apply(Command{Op: OpRename, Keys: bs("a", "b")})
	entries := []Entry{{Index: d.index + 1, Data: enc(Command{Op: OpIncrByFloat, Keys: kvs("b"), Values: kvs("1")}), Stamp: d.clock}}
	_, err := d.s.Apply(entries)
	require.NoError(t, err)
}

// The same with a result that stays chunked: the new rows live under a new
// storage id in the key's own slot, so the key is no longer foreign.
func TestIncrByFloatOnForeignChunkedStringStaysOwned(t *testing.T) {
	d := newHS(t)
	v := strings.Repeat("0", 1100) + "1.5"
	d.apply(setC("a", v))
	d.apply(Command{Op: OpRename, Keys: bs("a", "b")})
	requireElementsOwned(t, d.s)
	d.apply(Command{Op: OpIncrByFloat, Keys: kvs("b"), Values: kvs("1e4000")})
	requireElementsOwned(t, d.s)
}

// A lex range "+" to "+" is empty; with an offset it asked the rank index
// for the rank of a position past every fence, which failed the apply.
func TestZRangeStoreLexPlusPlusWithOffset(t *testing.T) {
	d := newHS(t)
	d.apply(Command{Op: OpZAdd, Keys: kvs("z"), Values: [][]byte{EncodeScore(0), []byte("a"), EncodeScore(0), []byte("b")}})
	s := ZRangeSpec{Kind: ZByLex, LexMin: LexBound("+"), LexMax: LexBound("+"), Offset: 1, Count: 1}
	c := Command{Op: OpZRangeStore, Keys: bs("dst", "z"), Values: s.encode()}
	require.NoError(t, c.Validate())
	d.index++
	_, err := d.s.Apply([]Entry{{Index: d.index, Data: enc(c), Stamp: d.clock}})
	require.NoError(t, err)
}

// ZLEXCOUNT z + + counts nothing, as Redis answers.
func TestZLexCountPlusPlus(t *testing.T) {
	d := newHS(t)
	d.apply(Command{Op: OpZAdd, Keys: kvs("z"), Values: [][]byte{EncodeScore(0), []byte("a"), EncodeScore(0), []byte("b")}})
	var n int64
	require.NoError(t, d.s.Read(func(v View) error {
		var err error
		n, err = ZCount(v, []byte("z"), &ZRangeSpec{Kind: ZByLex, LexMin: LexBound("+"), LexMax: LexBound("+"), Count: -1})
		return err
	}))
	require.Zero(t, n)
}
