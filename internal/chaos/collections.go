package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// The collection keys extend the linearizability check to hashes, sets and
// lists (issues #15 and #16). Each key has one type for the whole run, set
// by its name ("chaos:h<i>" a hash, "chaos:s<i>" a set, "chaos:l<i>" a
// list), so the model's state per key is that collection and WRONGTYPE can
// only come from a server bug. The keys are few and their contents small
// (four hash fields, six set members, lists that pops keep short), so the
// number of states porcupine explores stays small even with the unknown
// outcomes of a fault.

// The collection operations. As for the register keys, the values are the
// Redis commands the clients send.
const (
	// OpHSet is HSET key Input.Field Input.Arg: 1 if the field is new, 0
	// if it replaced a value.
	OpHSet OpKind = "hset"
	// OpHGet is HGET key Input.Field: the value, or nil.
	OpHGet OpKind = "hget"
	// OpHDel is HDEL key Input.Field: 1 if the field was there, else 0.
	OpHDel OpKind = "hdel"
	// OpHGetAll is HGETALL key: the field/value pairs. Redis does not
	// promise an order, so the pairs are compared sorted by field.
	OpHGetAll OpKind = "hgetall"
	// OpSAdd is SADD key Input.Field: 1 if the member is new, else 0.
	OpSAdd OpKind = "sadd"
	// OpSRem is SREM key Input.Field: 1 if the member was there, else 0.
	OpSRem OpKind = "srem"
	// OpSMembers is SMEMBERS key, compared as a sorted list.
	OpSMembers OpKind = "smembers"
	// OpSPop is SPOP key: a random member, removed, or nil. The model
	// accepts any member the set holds (stepSPop).
	OpSPop OpKind = "spop"
	// OpLPush is LPUSH key Input.Arg: the length after the push.
	OpLPush OpKind = "lpush"
	// OpRPop is RPOP key: the last element, or nil.
	OpRPop OpKind = "rpop"
	// OpLRange is LRANGE key Input.Start Input.Stop, Redis's index rules
	// (negative from the end, out of range clamped).
	OpLRange OpKind = "lrange"
	// OpZAdd is ZADD key Input.Arg Input.Field (score, member): 1 if the
	// member is new, 0 if it was there (its score replaced).
	OpZAdd OpKind = "zadd"
	// OpZRem is ZREM key Input.Field: 1 if the member was there, else 0.
	OpZRem OpKind = "zrem"
	// OpZScore is ZSCORE key Input.Field: the score, or nil.
	OpZScore OpKind = "zscore"
	// OpZRange is ZRANGE key 0 -1 WITHSCORES: members and scores, by
	// score then member.
	OpZRange OpKind = "zrange"
	// OpZPopMin is ZPOPMIN key: the lowest member and its score (ties by
	// member), or an empty array.
	OpZPopMin OpKind = "zpopmin"
)

// OutArr is an array reply. Output.Str holds its elements in the canonical
// encoding of encodeElems, so Output stays a comparable value.
const OutArr OutKind = "arr"

// errWrongType is Redis's reply to a command on a key of another type. The
// model never produces it (every collection key keeps one type), so a
// server that answers it fails the check.
const errWrongType = "WRONGTYPE Operation against a key holding the wrong kind of value"

// The collection key prefixes; the register keys are "chaos:k<i>" and the
// expiry keys "chaos:x<i>", so no two families share a key.
const (
	hashKeyPrefix = "chaos:h"
	setKeyPrefix  = "chaos:s"
	listKeyPrefix = "chaos:l"
	zsetKeyPrefix = "chaos:z"
)

// The sizes that keep the model's states small: the fields a hash key's
// commands name, and the members a set key's commands name. Pops are as
// frequent as pushes, which keeps the lists short.
const (
	hashFields = 4
	setMembers = 6
	// zsetMembers and zsetScores: few members and few integer scores, so
	// ties (ordered by member) are common and ZADD often moves a member.
	zsetMembers = 5
	zsetScores  = 4
	// collShare is the percentage of a client's operations that go to the
	// collection keys when both they and the register keys run.
	collShare = 30
)

// collFamily is the type of a collection key, from its name.
type collFamily byte

const (
	notColl collFamily = iota
	hashColl
	setColl
	listColl
	zsetColl
)

func familyOf(key string) collFamily {
	switch {
	case strings.HasPrefix(key, hashKeyPrefix):
		return hashColl
	case strings.HasPrefix(key, setKeyPrefix):
		return setColl
	case strings.HasPrefix(key, listKeyPrefix):
		return listColl
	case strings.HasPrefix(key, zsetKeyPrefix):
		return zsetColl
	}
	return notColl
}

// IsCollectionKey reports whether key is one of the hash, set, list or
// sorted-set keys that the collection model checks.
func IsCollectionKey(key string) bool { return familyOf(key) != notColl }

// coll is the model's state for one collection key, in a canonical and
// comparable form (encodeElems): a list's elements in order, a set's
// members sorted, a hash's fields sorted, each followed by its value, a
// sorted set's members by score then member, each followed by its score
// (an integer, which Redis prints as one: ZRANGE's WITHSCORES reply). The
// empty encoding is the missing key: Redis deletes a collection that
// loses its last element.
type coll string

// encodeElems joins elements as Go-quoted strings separated by spaces:
// unambiguous whatever the bytes, and readable in a visualisation.
func encodeElems(elems []string) string {
	var b strings.Builder
	for i, e := range elems {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Quote(e))
	}
	return b.String()
}

// decodeElems is encodeElems's inverse. Its input is always an encoding the
// model or the workload made, so an error means a programming mistake;
// the partial result is returned and the mismatch shows in the check.
func decodeElems(s string) []string {
	var out []string
	for s != "" {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return out
		}
		v, _ := strconv.Unquote(q)
		out = append(out, v)
		s = strings.TrimPrefix(s[len(q):], " ")
	}
	return out
}

// sortedPairs sorts a flat field/value list by field, the canonical order
// of a hash's state and of HGETALL replies.
func sortedPairs(flat []string) []string {
	type pair struct{ f, v string }
	ps := make([]pair, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		ps = append(ps, pair{flat[i], flat[i+1]})
	}
	slices.SortStableFunc(ps, func(a, b pair) int { return strings.Compare(a.f, b.f) })
	out := make([]string, 0, len(flat))
	for _, p := range ps {
		out = append(out, p.f, p.v)
	}
	if len(flat)%2 == 1 {
		// An odd reply is malformed; keep the stray element so it cannot
		// match any state.
		out = append(out, flat[len(flat)-1])
	}
	return out
}

// arrOut is the Output of an array reply.
func arrOut(elems []string) Output { return Output{Kind: OutArr, Str: encodeElems(elems)} }

// applyColl is the sequential specification of the collection commands on
// one key: the state after in and Redis 7.2's reply. It never mutates s.
func applyColl(s coll, in Input) (coll, Output) {
	elems := decodeElems(string(s))
	switch in.Op {
	case OpDel:
		if len(elems) == 0 {
			return s, Output{Kind: OutInt, Int: 0}
		}
		return "", Output{Kind: OutInt, Int: 1}
	case OpHSet:
		for i := 0; i+1 < len(elems); i += 2 {
			if elems[i] == in.Field {
				next := slices.Clone(elems)
				next[i+1] = in.Arg
				return coll(encodeElems(next)), Output{Kind: OutInt, Int: 0}
			}
		}
		next := sortedPairs(append(slices.Clone(elems), in.Field, in.Arg))
		return coll(encodeElems(next)), Output{Kind: OutInt, Int: 1}
	case OpHGet:
		for i := 0; i+1 < len(elems); i += 2 {
			if elems[i] == in.Field {
				return s, Output{Kind: OutStr, Str: elems[i+1]}
			}
		}
		return s, Output{Kind: OutNil}
	case OpHDel:
		for i := 0; i+1 < len(elems); i += 2 {
			if elems[i] == in.Field {
				next := slices.Delete(slices.Clone(elems), i, i+2)
				return coll(encodeElems(next)), Output{Kind: OutInt, Int: 1}
			}
		}
		return s, Output{Kind: OutInt, Int: 0}
	case OpHGetAll:
		return s, arrOut(elems)
	case OpSAdd:
		i, found := slices.BinarySearch(elems, in.Field)
		if found {
			return s, Output{Kind: OutInt, Int: 0}
		}
		next := slices.Insert(slices.Clone(elems), i, in.Field)
		return coll(encodeElems(next)), Output{Kind: OutInt, Int: 1}
	case OpSRem:
		i, found := slices.BinarySearch(elems, in.Field)
		if !found {
			return s, Output{Kind: OutInt, Int: 0}
		}
		next := slices.Delete(slices.Clone(elems), i, i+1)
		return coll(encodeElems(next)), Output{Kind: OutInt, Int: 1}
	case OpSMembers:
		return s, arrOut(elems)
	case OpLPush:
		next := append([]string{in.Arg}, elems...)
		return coll(encodeElems(next)), Output{Kind: OutInt, Int: int64(len(next))}
	case OpRPop:
		if len(elems) == 0 {
			return s, Output{Kind: OutNil}
		}
		return coll(encodeElems(elems[:len(elems)-1])), Output{Kind: OutStr, Str: elems[len(elems)-1]}
	case OpLRange:
		lo, hi, ok := listRange(int64(len(elems)), in.Start, in.Stop)
		if !ok {
			return s, arrOut(nil)
		}
		return s, arrOut(elems[lo : hi+1])
	case OpZAdd:
		next, removed := withoutPair(elems, in.Field)
		next = sortedByScore(append(next, in.Field, in.Arg))
		added := int64(1)
		if removed {
			added = 0
		}
		return coll(encodeElems(next)), Output{Kind: OutInt, Int: added}
	case OpZRem:
		next, removed := withoutPair(elems, in.Field)
		if !removed {
			return s, Output{Kind: OutInt, Int: 0}
		}
		return coll(encodeElems(next)), Output{Kind: OutInt, Int: 1}
	case OpZScore:
		for i := 0; i+1 < len(elems); i += 2 {
			if elems[i] == in.Field {
				return s, Output{Kind: OutStr, Str: elems[i+1]}
			}
		}
		return s, Output{Kind: OutNil}
	case OpZRange:
		return s, arrOut(elems)
	case OpZPopMin:
		if len(elems) < 2 {
			return s, arrOut(nil)
		}
		return coll(encodeElems(elems[2:])), arrOut(elems[:2])
	case OpSPop:
		// Random: stepColl steps it (stepSPop), never through here.
	case OpGet, OpSet, OpSetNX, OpIncr, OpAppend, OpPExpire, OpPersist, OpPTTL,
		OpQPush, OpBLPop, OpBLMove:
		// Not collection commands: the workload never sends them to a
		// collection key.
	}
	panic(fmt.Sprintf("chaos: unknown collection op %q", in.Op))
}

// withoutPair returns a flat member/score list without member's pair, and
// whether it was there. It never mutates flat.
func withoutPair(flat []string, member string) ([]string, bool) {
	for i := 0; i+1 < len(flat); i += 2 {
		if flat[i] == member {
			return slices.Delete(slices.Clone(flat), i, i+2), true
		}
	}
	return slices.Clone(flat), false
}

// sortedByScore orders a flat member/score list as ZRANGE does: by score
// (integers here), then by member.
func sortedByScore(flat []string) []string {
	type pair struct {
		m     string
		score int64
		s     string
	}
	ps := make([]pair, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		n, _ := strconv.ParseInt(flat[i+1], 10, 64)
		ps = append(ps, pair{flat[i], n, flat[i+1]})
	}
	slices.SortFunc(ps, func(a, b pair) int {
		if c := cmp.Compare(a.score, b.score); c != 0 {
			return c
		}
		return strings.Compare(a.m, b.m)
	})
	out := make([]string, 0, len(flat))
	for _, p := range ps {
		out = append(out, p.m, p.s)
	}
	return out
}

// listRange applies Redis's LRANGE index rules to a list of length n:
// negative indexes count from the end, a start before the head is the
// head, a stop past the tail is the tail, and an empty range is ok=false.
func listRange(n, start, stop int64) (lo, hi int64, ok bool) {
	if start < 0 {
		start += n
	}
	if stop < 0 {
		stop += n
	}
	start = max(start, 0)
	if start > stop || start >= n {
		return 0, 0, false
	}
	return start, min(stop, n-1), true
}

// normalizeColl puts an unordered reply (HGETALL, SMEMBERS) in the model's
// canonical order, so only its contents are compared.
func normalizeColl(in Input, out Output) Output {
	switch {
	case out.Kind != OutArr:
		return out
	case in.Op == OpHGetAll:
		return arrOut(sortedPairs(decodeElems(out.Str)))
	case in.Op == OpSMembers:
		e := decodeElems(out.Str)
		slices.Sort(e)
		return arrOut(e)
	}
	return out
}

// stepColl is the collection model's porcupine Step. The partition's first
// state is Init's register{}: on a collection key it is the missing key.
func stepColl(state any, in Input, out Output) []any {
	s, _ := state.(coll)
	if in.Op == OpSPop {
		return stepSPop(s, out)
	}
	next, want := applyColl(s, in)
	if out.Kind != OutUnknown && want != normalizeColl(in, out) {
		return nil
	}
	return []any{next}
}

// stepSPop is SPOP's step: the named member leaves the set, nil means the
// set was empty, and an unknown reply may have taken any member.
func stepSPop(s coll, out Output) []any {
	members := decodeElems(string(s))
	switch out.Kind {
	case OutUnknown:
		if len(members) == 0 {
			return []any{s}
		}
		next := make([]any, 0, len(members))
		for i := range members {
			next = append(next, coll(encodeElems(slices.Delete(slices.Clone(members), i, i+1))))
		}
		return next
	case OutNil:
		if len(members) == 0 {
			return []any{s}
		}
	case OutStr:
		if i, found := slices.BinarySearch(members, out.Str); found {
			return []any{coll(encodeElems(slices.Delete(slices.Clone(members), i, i+1)))}
		}
	case OutOK, OutInt, OutErr, OutArr:
		// Not a reply SPOP gives.
	}
	return nil
}

func hashColl64(s coll) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte{'c'})
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

func (s coll) String() string {
	if s == "" {
		return "(empty)"
	}
	return "[" + string(s) + "]"
}

// collKeyNames returns the collection keys of a run: perType keys of each
// enabled family.
func collKeyNames(perType int, hashes, sets, lists, zsets bool) []string {
	var out []string
	for i := range perType {
		if hashes {
			out = append(out, hashKeyPrefix+strconv.Itoa(i))
		}
		if sets {
			out = append(out, setKeyPrefix+strconv.Itoa(i))
		}
		if lists {
			out = append(out, listKeyPrefix+strconv.Itoa(i))
		}
		if zsets {
			out = append(out, zsetKeyPrefix+strconv.Itoa(i))
		}
	}
	return out
}

// randomCollInput picks an operation on a collection key. Hash values and
// list elements are unique to the client and sequence number, so a read
// ties to the one write it can come from; fields and members come from a
// small fixed set, so writes collide and replace or remove each other.
func randomCollInput(rng *rand.Rand, keys []string, id, seq int) Input {
	key := keys[rng.IntN(len(keys))]
	unique := fmt.Sprintf("%d-%d", id+1, seq)
	r := rng.IntN(100)
	switch familyOf(key) {
	case hashColl:
		field := "f" + strconv.Itoa(rng.IntN(hashFields))
		switch {
		case r < 40:
			return Input{Op: OpHSet, Key: key, Field: field, Arg: "v" + unique}
		case r < 65:
			return Input{Op: OpHGet, Key: key, Field: field}
		case r < 85:
			return Input{Op: OpHDel, Key: key, Field: field}
		case r < 96:
			return Input{Op: OpHGetAll, Key: key}
		default:
			return Input{Op: OpDel, Key: key}
		}
	case setColl:
		member := "m" + strconv.Itoa(rng.IntN(setMembers))
		switch {
		case r < 40:
			return Input{Op: OpSAdd, Key: key, Field: member}
		case r < 62:
			return Input{Op: OpSRem, Key: key, Field: member}
		case r < 70:
			return Input{Op: OpSPop, Key: key}
		case r < 96:
			return Input{Op: OpSMembers, Key: key}
		default:
			return Input{Op: OpDel, Key: key}
		}
	case zsetColl:
		member := "z" + strconv.Itoa(rng.IntN(zsetMembers))
		switch {
		case r < 40:
			return Input{Op: OpZAdd, Key: key, Field: member, Arg: strconv.Itoa(rng.IntN(zsetScores))}
		case r < 52:
			return Input{Op: OpZRem, Key: key, Field: member}
		case r < 60:
			return Input{Op: OpZPopMin, Key: key}
		case r < 75:
			return Input{Op: OpZScore, Key: key, Field: member}
		case r < 96:
			return Input{Op: OpZRange, Key: key}
		default:
			return Input{Op: OpDel, Key: key}
		}
	default:
		switch {
		case r < 36:
			return Input{Op: OpLPush, Key: key, Arg: "e" + unique}
		case r < 72:
			return Input{Op: OpRPop, Key: key}
		case r < 88:
			return Input{Op: OpLRange, Key: key, Start: 0, Stop: -1}
		case r < 97:
			// Small indexes of both signs, to check Redis's index rules.
			return Input{Op: OpLRange, Key: key, Start: rng.Int64N(7) - 3, Stop: rng.Int64N(7) - 3}
		default:
			return Input{Op: OpDel, Key: key}
		}
	}
}

// sendColl sends one collection command and returns the reply in the
// model's terms. HGETALL and SMEMBERS go through Do so that a duplicated
// field or member in the reply is seen (go-redis's map would hide it).
func sendColl(ctx context.Context, cl *goredis.Client, in Input) (Output, error) {
	switch in.Op {
	case OpDel:
		n, err := cl.Del(ctx, in.Key).Result()
		return Output{Kind: OutInt, Int: n}, err
	case OpHSet:
		n, err := cl.HSet(ctx, in.Key, in.Field, in.Arg).Result()
		return Output{Kind: OutInt, Int: n}, err
	case OpHGet:
		v, err := cl.HGet(ctx, in.Key, in.Field).Result()
		return Output{Kind: OutStr, Str: v}, err
	case OpHDel:
		n, err := cl.HDel(ctx, in.Key, in.Field).Result()
		return Output{Kind: OutInt, Int: n}, err
	case OpHGetAll, OpSMembers:
		v, err := cl.Do(ctx, string(in.Op), in.Key).StringSlice()
		return arrOut(v), err
	case OpSAdd:
		n, err := cl.SAdd(ctx, in.Key, in.Field).Result()
		return Output{Kind: OutInt, Int: n}, err
	case OpSRem:
		n, err := cl.SRem(ctx, in.Key, in.Field).Result()
		return Output{Kind: OutInt, Int: n}, err
	case OpSPop:
		v, err := cl.SPop(ctx, in.Key).Result()
		return Output{Kind: OutStr, Str: v}, err
	case OpLPush:
		n, err := cl.LPush(ctx, in.Key, in.Arg).Result()
		return Output{Kind: OutInt, Int: n}, err
	case OpRPop:
		v, err := cl.RPop(ctx, in.Key).Result()
		return Output{Kind: OutStr, Str: v}, err
	case OpLRange:
		v, err := cl.LRange(ctx, in.Key, in.Start, in.Stop).Result()
		return arrOut(v), err
	case OpZAdd:
		n, err := cl.Do(ctx, "zadd", in.Key, in.Arg, in.Field).Int64()
		return Output{Kind: OutInt, Int: n}, err
	case OpZRem:
		n, err := cl.ZRem(ctx, in.Key, in.Field).Result()
		return Output{Kind: OutInt, Int: n}, err
	case OpZScore:
		// Raw: go-redis would parse the score into a float.
		v, err := cl.Do(ctx, "zscore", in.Key, in.Field).Text()
		return Output{Kind: OutStr, Str: v}, err
	case OpZRange:
		v, err := cl.Do(ctx, "zrange", in.Key, 0, -1, "withscores").StringSlice()
		return arrOut(v), err
	case OpZPopMin:
		v, err := cl.Do(ctx, "zpopmin", in.Key).StringSlice()
		return arrOut(v), err
	case OpGet, OpSet, OpSetNX, OpIncr, OpAppend, OpPExpire, OpPersist, OpPTTL,
		OpQPush, OpBLPop, OpBLMove:
		// Not sent to a collection key.
	}
	return Output{}, fmt.Errorf("chaos: no client for op %q on a collection key", in.Op)
}

// wrongType reports whether err is a WRONGTYPE reply: a definite outcome
// (the state machine refused the command after ordering it), which the
// model never allows on these keys.
func wrongType(err error) bool {
	var rerr goredis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(err.Error(), "WRONGTYPE")
}

// finalCollReads are the reads that show a collection key's whole state.
func finalCollReads(keys []string) []Input {
	var out []Input
	for _, k := range keys {
		switch familyOf(k) {
		case hashColl:
			out = append(out, Input{Op: OpHGetAll, Key: k})
		case setColl:
			out = append(out, Input{Op: OpSMembers, Key: k})
		case listColl:
			out = append(out, Input{Op: OpLRange, Key: k, Start: 0, Stop: -1})
		case zsetColl:
			out = append(out, Input{Op: OpZRange, Key: k})
		case notColl:
			// collKeys holds collection keys only.
		}
	}
	return out
}
