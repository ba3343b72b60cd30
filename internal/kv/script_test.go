package kv_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv"
)

// The script cache and the function libraries are state-machine rows:
// these tests apply their ops through a store and read them back.

func TestScriptCacheRowsSurviveFlushAllAndGoWithScriptFlush(t *testing.T) {
	d := openExecStore(t)
	body := []byte("return 1")
	sha := kv.ScriptSHA(body)
	r := d.apply(kv.NewScriptLoad(body))
	require.Equal(t, kv.ResultBytes, r.Kind)
	require.Equal(t, sha, string(r.Bytes), "the row is named by the SHA1 apply computes")

	read := func(sha string) (string, bool) {
		var got []byte
		var found bool
		require.NoError(t, d.s.Read(func(v kv.View) error {
			var err error
			got, found, err = kv.ScriptBody(v, sha)
			return err
		}))
		return string(got), found
	}
	got, found := read(sha)
	require.True(t, found)
	require.Equal(t, "return 1", got)

	d.apply(&kv.Command{Op: kv.OpFlushAll})
	_, found = read(sha)
	require.True(t, found, "FLUSHALL keeps the script cache, as in Redis")

	d.apply(kv.NewScriptFlush())
	_, found = read(sha)
	require.False(t, found)
}

func TestFunctionRowsFollowTheirLibrary(t *testing.T) {
	d := openExecStore(t)
	owner := func(fn string) (string, bool) {
		var lib string
		var found bool
		require.NoError(t, d.s.Read(func(v kv.View) error {
			var err error
			lib, found, err = kv.FunctionOwner(v, fn)
			return err
		}))
		return lib, found
	}
	d.apply(kv.NewFunctionPut("lib", []byte("code v1"), []string{"a", "b"}))
	lib, found := owner("a")
	require.True(t, found)
	require.Equal(t, "lib", lib)

	// A replacement drops the functions the new code no longer registers.
	d.apply(kv.NewFunctionPut("lib", []byte("code v2"), []string{"b", "c"}))
	_, found = owner("a")
	require.False(t, found)
	_, found = owner("c")
	require.True(t, found)
	var libs []kv.FunctionLibrary
	require.NoError(t, d.s.Read(func(v kv.View) error {
		var err error
		libs, err = kv.FunctionLibraries(v)
		return err
	}))
	require.Equal(t, []kv.FunctionLibrary{{Name: "lib", Code: []byte("code v2"), Functions: []string{"b", "c"}}}, libs)

	r := d.apply(kv.NewFunctionDelete("lib"))
	require.Equal(t, int64(1), r.Int)
	r = d.apply(kv.NewFunctionDelete("lib"))
	require.Equal(t, int64(0), r.Int)
	_, found = owner("b")
	require.False(t, found)

	d.apply(kv.NewFunctionPut("other", []byte("x"), []string{"z"}))
	d.apply(kv.NewFunctionFlush())
	_, found = owner("z")
	require.False(t, found)
}

func TestScriptOpsNeedFormat4(t *testing.T) {
	for _, c := range []*kv.Command{kv.NewScriptLoad([]byte("x")), kv.NewScriptFlush(),
		kv.NewFunctionPut("l", []byte("x"), []string{"f"}), kv.NewFunctionDelete("l"), kv.NewFunctionFlush()} {
		require.NoError(t, c.Validate())
		require.Equal(t, kv.FormatV4, c.MinFormat(), "op %d", c.Op)
	}
	require.Error(t, (&kv.Command{Op: kv.OpScriptLoad}).Validate())
	require.Error(t, (&kv.Command{Op: kv.OpFunctionPut, Values: [][]byte{nil, nil}}).Validate(), "a library has a name")
}
