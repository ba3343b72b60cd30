package kv

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// ResultArray round-trips nested arrays (LMPOP's [key, [elements]]) with
// nil and integer elements, inside a batch too; it refuses what no op
// answers inside an array (OK, an error, a batch) and nesting deeper than
// maxArrayDepth, so a hostile peer's result cannot recurse the decoder.
func TestResultArrayEncoding(t *testing.T) {
	arr := func(rs ...Result) Result { return Result{Kind: ResultArray, Batch: rs} }
	bulk := func(s string) Result { return Result{Kind: ResultBytes, Bytes: []byte(s)} }
	lmpop := arr(bulk("k"), arr(bulk("a"), bulk("b")))
	for _, r := range []Result{
		lmpop,
		arr(),
		arr(Result{Kind: ResultNil}, Result{Kind: ResultInt, Int: -3}),
		{Kind: ResultBatch, Batch: []Result{lmpop, {Kind: ResultOK}}},
	} {
		got, err := DecodeResult(r.AppendEncode(nil))
		require.NoError(t, err)
		require.Equal(t, r.AppendEncode(nil), got.AppendEncode(nil))
		require.Equal(t, r.Kind, got.Kind)
	}
	for _, bad := range []Result{
		arr(Result{Kind: ResultOK}),
		arr(Result{Kind: ResultError, Err: "ERR x"}),
		arr(Result{Kind: ResultBatch, Batch: []Result{{Kind: ResultOK}}}),
	} {
		_, err := DecodeResult(bad.AppendEncode(nil))
		require.ErrorIs(t, err, ErrMalformed)
	}
	deep := bulk("x")
	for range maxArrayDepth {
		deep = arr(deep)
	}
	_, err := DecodeResult(deep.AppendEncode(nil))
	require.NoError(t, err, "maxArrayDepth arrays deep is allowed")
	deeper := arr(deep)
	_, err = DecodeResult(deeper.AppendEncode(nil))
	require.ErrorIs(t, err, ErrMalformed)
}
