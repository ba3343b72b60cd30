package chaos

import (
	"math/rand/v2"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

func hset(k, f, v string) Input { return Input{Op: OpHSet, Key: k, Field: f, Arg: v} }
func hget(k, f string) Input    { return Input{Op: OpHGet, Key: k, Field: f} }
func hdel(k, f string) Input    { return Input{Op: OpHDel, Key: k, Field: f} }
func hgetall(k string) Input    { return Input{Op: OpHGetAll, Key: k} }
func sadd(k, m string) Input    { return Input{Op: OpSAdd, Key: k, Field: m} }
func srem(k, m string) Input    { return Input{Op: OpSRem, Key: k, Field: m} }
func smembers(k string) Input   { return Input{Op: OpSMembers, Key: k} }
func lpush(k, e string) Input   { return Input{Op: OpLPush, Key: k, Arg: e} }
func rpop(k string) Input       { return Input{Op: OpRPop, Key: k} }
func lrange(k string, start, stop int64) Input {
	return Input{Op: OpLRange, Key: k, Start: start, Stop: stop}
}
func del(k string) Input         { return Input{Op: OpDel, Key: k} }
func arr(elems ...string) Output { return arrOut(elems) }
func zadd(k, score, m string) Input {
	return Input{Op: OpZAdd, Key: k, Field: m, Arg: score}
}
func zrem(k, m string) Input   { return Input{Op: OpZRem, Key: k, Field: m} }
func zscore(k, m string) Input { return Input{Op: OpZScore, Key: k, Field: m} }
func zrange(k string) Input    { return Input{Op: OpZRange, Key: k} }

// TestCollectionModelSemantics walks each collection type through Redis
// 7.2's replies, including the edge cases: a replaced field counts 0, a
// collection that loses its last element is gone (DEL then answers 0),
// LRANGE's negative and out-of-range indexes.
func TestCollectionModelSemantics(t *testing.T) {
	const h, s, l, z = "chaos:h0", "chaos:s0", "chaos:l0", "chaos:z0"
	steps := []struct {
		in   Input
		want Output
	}{
		{hget(h, "f1"), nilOut},
		{hgetall(h), arr()},
		{hset(h, "f2", "a"), intOut(1)},
		{hset(h, "f1", "b"), intOut(1)},
		{hset(h, "f2", "c"), intOut(0)}, // replaced
		{hget(h, "f2"), str("c")},
		{hgetall(h), arr("f1", "b", "f2", "c")},
		{hdel(h, "f3"), intOut(0)},
		{hdel(h, "f1"), intOut(1)},
		{hdel(h, "f2"), intOut(1)},
		{del(h), intOut(0)}, // the last field took the key with it
		{hset(h, "f1", "d"), intOut(1)},
		{del(h), intOut(1)},
		{hgetall(h), arr()},

		{smembers(s), arr()},
		{sadd(s, "m3"), intOut(1)},
		{sadd(s, "m1"), intOut(1)},
		{sadd(s, "m3"), intOut(0)},
		{smembers(s), arr("m1", "m3")},
		{srem(s, "m2"), intOut(0)},
		{srem(s, "m3"), intOut(1)},
		{srem(s, "m1"), intOut(1)},
		{del(s), intOut(0)},

		{rpop(l), nilOut},
		{lrange(l, 0, -1), arr()},
		{lpush(l, "a"), intOut(1)},
		{lpush(l, "b"), intOut(2)},
		{lpush(l, "c"), intOut(3)}, // c b a
		{lrange(l, 0, -1), arr("c", "b", "a")},
		{lrange(l, -2, -1), arr("b", "a")},
		{lrange(l, -100, 0), arr("c")},
		{lrange(l, 1, 100), arr("b", "a")},
		{lrange(l, 2, 1), arr()},
		{lrange(l, 3, 5), arr()},
		{lrange(l, -1, -3), arr()},
		{rpop(l), str("a")},
		{rpop(l), str("b")},
		{rpop(l), str("c")},
		{rpop(l), nilOut},
		{del(l), intOut(0)},

		{zrange(z), arr()},
		{zscore(z, "b"), nilOut},
		{zadd(z, "2", "b"), intOut(1)},
		{zadd(z, "2", "a"), intOut(1)}, // a tie: ordered by member
		{zadd(z, "1", "c"), intOut(1)},
		{zrange(z), arr("c", "1", "a", "2", "b", "2")},
		{zadd(z, "3", "a"), intOut(0)}, // moved, not added
		{zrange(z), arr("c", "1", "b", "2", "a", "3")},
		{zscore(z, "a"), str("3")},
		{zadd(z, "0", "a"), intOut(0)},
		{zrange(z), arr("a", "0", "c", "1", "b", "2")},
		{Input{Op: OpZPopMin, Key: z}, arr("a", "0")},
		{zadd(z, "0", "a"), intOut(1)},
		{zrem(z, "d"), intOut(0)},
		{zrem(z, "a"), intOut(1)},
		{zrem(z, "b"), intOut(1)},
		{zrem(z, "c"), intOut(1)},
		{del(z), intOut(0)},
		{Input{Op: OpZPopMin, Key: z}, arr()},
	}
	states := map[string]coll{}
	for i, st := range steps {
		var got Output
		states[st.in.Key], got = applyColl(states[st.in.Key], st.in)
		require.Equal(t, st.want, got, "step %d: %s", i, describeOp(st.in, st.want))
	}
}

// TestCollectionRepliesCompareUnordered: HGETALL and SMEMBERS promise no
// order, so any order of the right contents passes, and a duplicated or
// missing element does not.
func TestCollectionRepliesCompareUnordered(t *testing.T) {
	ops := []Op{
		op(0, hset("chaos:h0", "f2", "x"), intOut(1), OutcomeOK, 0, 10),
		op(0, hset("chaos:h0", "f1", "y"), intOut(1), OutcomeOK, 20, 30),
		op(1, hgetall("chaos:h0"), arr("f2", "x", "f1", "y"), OutcomeOK, 40, 50),
		op(0, sadd("chaos:s0", "m2"), intOut(1), OutcomeOK, 0, 10),
		op(0, sadd("chaos:s0", "m1"), intOut(1), OutcomeOK, 20, 30),
		op(1, smembers("chaos:s0"), arr("m2", "m1"), OutcomeOK, 40, 50),
	}
	require.Equal(t, porcupine.Ok, check(t, ops))

	dupField := append([]Op(nil), ops...)
	dupField[2] = op(1, hgetall("chaos:h0"), arr("f2", "x", "f1", "y", "f1", "y"), OutcomeOK, 40, 50)
	require.Equal(t, porcupine.Illegal, check(t, dupField))

	missing := append([]Op(nil), ops...)
	missing[5] = op(1, smembers("chaos:s0"), arr("m2"), OutcomeOK, 40, 50)
	require.Equal(t, porcupine.Illegal, check(t, missing))
}

// TestCollectionCheckerCatchesViolations: histories a broken server could
// produce, each of which the checker must reject, next to the legal
// variant where one exists.
func TestCollectionCheckerCatchesViolations(t *testing.T) {
	const h, s, l = "chaos:h0", "chaos:s0", "chaos:l0"
	cases := []struct {
		name string
		ops  []Op
	}{
		{"stale HGET after an acknowledged HSET", []Op{
			op(0, hset(h, "f0", "v1"), intOut(1), OutcomeOK, 0, 10),
			op(0, hset(h, "f0", "v2"), intOut(0), OutcomeOK, 20, 30),
			op(1, hget(h, "f0"), str("v1"), OutcomeOK, 40, 50),
		}},
		{"HDEL undone", []Op{
			op(0, hset(h, "f0", "v1"), intOut(1), OutcomeOK, 0, 10),
			op(0, hdel(h, "f0"), intOut(1), OutcomeOK, 20, 30),
			op(1, hget(h, "f0"), str("v1"), OutcomeOK, 40, 50),
		}},
		{"fields resurrected after DEL of the hash", []Op{
			op(0, hset(h, "f0", "v1"), intOut(1), OutcomeOK, 0, 10),
			op(0, del(h), intOut(1), OutcomeOK, 20, 30),
			op(0, hset(h, "f1", "v2"), intOut(1), OutcomeOK, 40, 50),
			op(1, hgetall(h), arr("f0", "v1", "f1", "v2"), OutcomeOK, 60, 70),
		}},
		{"two SADDs of one member both added it", []Op{
			op(0, sadd(s, "m0"), intOut(1), OutcomeOK, 0, 10),
			op(1, sadd(s, "m0"), intOut(1), OutcomeOK, 5, 15),
		}},
		{"SREM lost", []Op{
			op(0, sadd(s, "m0"), intOut(1), OutcomeOK, 0, 10),
			op(0, srem(s, "m0"), intOut(1), OutcomeOK, 20, 30),
			op(1, smembers(s), arr("m0"), OutcomeOK, 40, 50),
		}},
		{"an element popped twice", []Op{
			op(0, lpush(l, "e1"), intOut(1), OutcomeOK, 0, 10),
			op(1, rpop(l), str("e1"), OutcomeOK, 20, 30),
			op(2, rpop(l), str("e1"), OutcomeOK, 25, 35),
		}},
		{"LPUSH lost", []Op{
			op(0, lpush(l, "e1"), intOut(1), OutcomeOK, 0, 10),
			op(0, lpush(l, "e2"), intOut(2), OutcomeOK, 20, 30),
			op(1, lrange(l, 0, -1), arr("e2"), OutcomeOK, 40, 50),
		}},
		{"list order reversed", []Op{
			op(0, lpush(l, "e1"), intOut(1), OutcomeOK, 0, 10),
			op(0, lpush(l, "e2"), intOut(2), OutcomeOK, 20, 30),
			op(1, lrange(l, 0, -1), arr("e1", "e2"), OutcomeOK, 40, 50),
		}},
		{"RPOP from the wrong end", []Op{
			op(0, lpush(l, "e1"), intOut(1), OutcomeOK, 0, 10),
			op(0, lpush(l, "e2"), intOut(2), OutcomeOK, 20, 30),
			op(1, rpop(l), str("e2"), OutcomeOK, 40, 50),
		}},
		{"ZADD's new score not seen", []Op{
			op(0, zadd("chaos:z0", "1", "a"), intOut(1), OutcomeOK, 0, 10),
			op(0, zadd("chaos:z0", "3", "a"), intOut(0), OutcomeOK, 20, 30),
			op(1, zscore("chaos:z0", "a"), str("1"), OutcomeOK, 40, 50),
		}},
		{"ZRANGE out of score order", []Op{
			op(0, zadd("chaos:z0", "2", "a"), intOut(1), OutcomeOK, 0, 10),
			op(0, zadd("chaos:z0", "1", "b"), intOut(1), OutcomeOK, 20, 30),
			op(1, zrange("chaos:z0"), arr("a", "2", "b", "1"), OutcomeOK, 40, 50),
		}},
		{"ZPOPMIN took the wrong member", []Op{
			op(0, zadd("chaos:z0", "2", "a"), intOut(1), OutcomeOK, 0, 10),
			op(0, zadd("chaos:z0", "1", "b"), intOut(1), OutcomeOK, 20, 30),
			op(1, Input{Op: OpZPopMin, Key: "chaos:z0"}, arr("a", "2"), OutcomeOK, 40, 50),
		}},
		{"a member popped twice", []Op{
			op(0, zadd("chaos:z0", "2", "a"), intOut(1), OutcomeOK, 0, 10),
			op(1, Input{Op: OpZPopMin, Key: "chaos:z0"}, arr("a", "2"), OutcomeOK, 20, 30),
			op(2, Input{Op: OpZPopMin, Key: "chaos:z0"}, arr("a", "2"), OutcomeOK, 25, 35),
		}},
		{"a moved member counted as added", []Op{
			op(0, zadd("chaos:z0", "2", "a"), intOut(1), OutcomeOK, 0, 10),
			op(0, zadd("chaos:z0", "1", "a"), intOut(1), OutcomeOK, 20, 30),
		}},
		{"WRONGTYPE on a key of one type", []Op{
			op(0, lpush(l, "e1"), Output{Kind: OutErr, Str: errWrongType}, OutcomeOK, 0, 10),
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, porcupine.Illegal, check(t, c.ops))
		})
	}

	// Concurrent pops may return in either order, and an unknown LPUSH may
	// show up later or never.
	ok := []Op{
		op(0, lpush(l, "e1"), intOut(1), OutcomeOK, 0, 10),
		op(0, lpush(l, "e2"), intOut(2), OutcomeOK, 20, 30),
		op(1, rpop(l), str("e2"), OutcomeOK, 40, 60),
		op(2, rpop(l), str("e1"), OutcomeOK, 45, 55),
		op(3, lpush(l, "e3"), Output{}, OutcomeUnknown, 70, 80),
		op(1, rpop(l), nilOut, OutcomeOK, 90, 100),
		op(1, lrange(l, 0, -1), arr("e3"), OutcomeOK, 110, 120),
	}
	require.Equal(t, porcupine.Ok, check(t, ok))
}

// TestCollectionKeysStayOutOfOtherChecks: the register-only checks
// (lostWrites) and the expiry checker ignore collection keys, and the
// queue's keys are not in the porcupine model.
func TestCollectionKeysStayOutOfOtherChecks(t *testing.T) {
	require.True(t, IsCollectionKey("chaos:h1"))
	require.True(t, IsCollectionKey("chaos:s0"))
	require.True(t, IsCollectionKey("chaos:l3"))
	require.True(t, IsCollectionKey("chaos:z0"))
	require.False(t, IsCollectionKey("chaos:k0"))
	require.False(t, IsCollectionKey(queueKey))
	require.False(t, isRegisterKey("chaos:h0"))
	require.False(t, isRegisterKey(doneKey))
	require.True(t, isRegisterKey("chaos:k0"))
	ops := []Op{
		op(0, del("chaos:h0"), intOut(0), OutcomeOK, 0, 10),
		op(1, Input{Op: OpLRange, Key: queueKey, Stop: -1}, arr("q0-1"), OutcomeOK, 0, 10),
	}
	require.Len(t, modelOps(ops), 1)
	require.Empty(t, lostWrites(ops, ops))
}

// TestRandomCollInputStaysInFamily: every operation the workload draws for
// a key is one of that key's type, and reads and writes are classified as
// the linearizability check expects.
func TestRandomCollInputStaysInFamily(t *testing.T) {
	keys := collKeyNames(2, true, true, true, true)
	require.Len(t, keys, 8)
	allowed := map[collFamily][]OpKind{
		hashColl: {OpHSet, OpHGet, OpHDel, OpHGetAll, OpDel},
		setColl:  {OpSAdd, OpSRem, OpSMembers, OpSPop, OpDel},
		listColl: {OpLPush, OpRPop, OpLRange, OpDel},
		zsetColl: {OpZAdd, OpZRem, OpZScore, OpZRange, OpZPopMin, OpDel},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[OpKind]bool{}
	for i := range 5000 {
		in := randomCollInput(rng, keys, 0, i)
		require.Contains(t, allowed[familyOf(in.Key)], in.Op, "%s on %s", in.Op, in.Key)
		seen[in.Op] = true
	}
	for _, kinds := range allowed {
		for _, k := range kinds {
			require.True(t, seen[k], "%s never drawn", k)
		}
	}
	for _, r := range []OpKind{OpHGet, OpHGetAll, OpSMembers, OpLRange, OpZScore, OpZRange} {
		require.False(t, r.isWrite(), "%s is a read", r)
	}
	for _, w := range []OpKind{OpHSet, OpHDel, OpSAdd, OpSRem, OpSPop, OpLPush, OpRPop, OpZAdd, OpZRem, OpZPopMin, OpQPush, OpBLPop, OpBLMove} {
		require.True(t, w.isWrite(), "%s is a write", w)
	}
	require.Equal(t, []string{"a b", "", "\"x\""}, decodeElems(encodeElems([]string{"a b", "", "\"x\""})))
}

func TestParseWorkloads(t *testing.T) {
	all, err := ParseWorkloads("all")
	require.NoError(t, err)
	require.Equal(t, []string{WorkloadRegisters, WorkloadCollections, WorkloadQueue, WorkloadTxn, WorkloadCAS, WorkloadLock}, all)
	// The transaction workloads run only when asked for.
	require.Equal(t, []string{WorkloadRegisters, WorkloadCollections, WorkloadQueue}, DefaultConfig().Workloads)
	got, err := ParseWorkloads(" queue, collections,queue ")
	require.NoError(t, err)
	require.Equal(t, []string{WorkloadQueue, WorkloadCollections}, got)
	_, err = ParseWorkloads("lists")
	require.ErrorContains(t, err, `unknown workload "lists"`)
	_, err = ParseWorkloads(" , ")
	require.ErrorContains(t, err, "no workload")

	cfg := DefaultConfig()
	cfg.Binary, cfg.OutDir = "x", "y"
	require.NoError(t, cfg.validate())
	cfg.Workloads = []string{"queue", "streams"}
	require.ErrorContains(t, cfg.validate(), `unknown workload "streams"`)
	cfg.Workloads = nil
	require.ErrorContains(t, cfg.validate(), "no workload")
}

// TestClassifyWrongType: WRONGTYPE is the state machine's answer, a
// definite outcome for reads and writes alike, which the model then
// rejects; it must not be dropped or turned into an unknown outcome.
func TestClassifyWrongType(t *testing.T) {
	for _, k := range []OpKind{OpHSet, OpHGet, OpLPush, OpSMembers} {
		out, outcome := classify(k, Output{}, goredisError(errWrongType))
		require.Equal(t, OutcomeOK, outcome, "%s", k)
		require.Equal(t, Output{Kind: OutErr, Str: errWrongType}, out, "%s", k)
	}
}

// TestSPopIsCheckedThoughRandom: SPOP may return any member the set holds,
// once; nil only from an empty set; and an SPOP whose reply was lost may
// have taken any one member, which later reads resolve.
func TestSPopIsCheckedThoughRandom(t *testing.T) {
	const s = "chaos:s0"
	spop := Input{Op: OpSPop, Key: s}
	base := []Op{
		op(0, sadd(s, "m1"), intOut(1), OutcomeOK, 0, 10),
		op(0, sadd(s, "m2"), intOut(1), OutcomeOK, 20, 30),
	}
	with := func(more ...Op) []Op { return append(append([]Op(nil), base...), more...) }

	require.Equal(t, porcupine.Ok, check(t, with(
		op(1, spop, str("m2"), OutcomeOK, 40, 50),
		op(1, smembers(s), arr("m1"), OutcomeOK, 60, 70),
	)))
	require.Equal(t, porcupine.Ok, check(t, with(
		op(1, spop, Output{}, OutcomeUnknown, 40, 50),
		op(2, smembers(s), arr("m2"), OutcomeOK, 60, 70), // it took m1
		op(2, spop, str("m2"), OutcomeOK, 80, 90),
		op(2, spop, nilOut, OutcomeOK, 100, 110),
	)))
	for name, h := range map[string][]Op{
		"a member the set never held": with(op(1, spop, str("m3"), OutcomeOK, 40, 50)),
		"a member popped twice": with(
			op(1, spop, str("m1"), OutcomeOK, 40, 50),
			op(2, spop, str("m1"), OutcomeOK, 45, 55)),
		"nil from a set that has members": with(op(1, spop, nilOut, OutcomeOK, 40, 50)),
		"the popped member still there": with(
			op(1, spop, str("m1"), OutcomeOK, 40, 50),
			op(1, smembers(s), arr("m1", "m2"), OutcomeOK, 60, 70)),
		"an unknown pop took two members": with(
			op(1, spop, Output{}, OutcomeUnknown, 40, 50),
			op(2, smembers(s), arr(), OutcomeOK, 60, 70)),
	} {
		require.Equal(t, porcupine.Illegal, check(t, h), name)
	}
}
