package redis

import (
	"math"
	"strings"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Sorted sets (issue #15): ZADD and the other writes are one kv op each
// (kv/zset.go); the reads run kv's sorted-set reads in a view. Arguments
// are parsed, and refused, in Redis 7.2's order and words, before the key
// is looked at where Redis does so; the state machine answers WRONGTYPE.

// Error texts of the sorted-set commands.
const (
	errTextZAddXXNX       = "ERR XX and NX options at the same time are not compatible"
	errTextZAddGTLTNX     = "ERR GT, LT, and/or NX options at the same time are not compatible"
	errTextZAddIncrPair   = "ERR INCR option supports a single increment-element pair"
	errTextLimitRank      = "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
	errTextWithScoresLex  = "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
	errTextOutOfRange     = "ERR value is out of range"
	errTextWeightNotFloat = "ERR weight value is not a float"
	errTextCountZero      = "ERR count should be greater than 0"
	errTextLimitNegative  = "ERR LIMIT can't be negative"
)

// maxZRandCount bounds ZRANDMEMBER's count: a reply of more picks would
// be built in memory first (Redis streams it, but to the same client
// output buffer limit).
const maxZRandCount = 1 << 24

// The handlers that share a body, by the form they take.
var (
	cmdZRange           = zrangeCommand(zrangeForm{})
	cmdZRevRange        = zrangeCommand(zrangeForm{kind: kv.ZByRank, rev: true, fixed: true})
	cmdZRangeByScore    = zrangeCommand(zrangeForm{kind: kv.ZByScore, fixed: true})
	cmdZRevRangeByScore = zrangeCommand(zrangeForm{kind: kv.ZByScore, rev: true, fixed: true, maxFirst: true})
	cmdZRangeByLex      = zrangeCommand(zrangeForm{kind: kv.ZByLex, fixed: true})
	cmdZRevRangeByLex   = zrangeCommand(zrangeForm{kind: kv.ZByLex, rev: true, fixed: true, maxFirst: true})
	cmdZRank            = zrankCommand(false)
	cmdZRevRank         = zrankCommand(true)
	cmdZRemRangeByRank  = zremRangeCommand(kv.ZByRank)
	cmdZRemRangeByScore = zremRangeCommand(kv.ZByScore)
	cmdZRemRangeByLex   = zremRangeCommand(kv.ZByLex)
	cmdZPopMin          = zpopCommand(false)
	cmdZPopMax          = zpopCommand(true)
	cmdZUnion           = zalgebraCommand("zunion", kv.ZStoreUnion)
	cmdZInter           = zalgebraCommand("zinter", kv.ZStoreInter)
	cmdZDiff            = zalgebraCommand("zdiff", kv.ZStoreDiff)
	cmdZUnionStore      = zstoreCommand("zunionstore", kv.ZStoreUnion)
	cmdZInterStore      = zstoreCommand("zinterstore", kv.ZStoreInter)
	cmdZDiffStore       = zstoreCommand("zdiffstore", kv.ZStoreDiff)
)

// zNullArray writes RESP2's null array (*-1), Redis's "no result" for
// ZRANK WITHSCORE and ZMPOP.
func (c *client) zNullArray() {
	if !c.mute && c.charge(respOverhead) {
		c.conn.WriteRaw([]byte("*-1\r\n"))
	}
}

// zScore writes a score as Redis 7.2 formats it.
func (c *client) zScore(f float64) { c.bulk(kv.AppendScoreText(nil, f)) }

// zEntries writes members, with their scores after each if withScores.
func (c *client) zEntries(es []kv.ZEntry, withScores bool) {
	if withScores {
		c.array(2 * len(es))
	} else {
		c.array(len(es))
	}
	for _, e := range es {
		c.bulk(e.Member)
		if withScores {
			c.zScore(e.Score)
		}
	}
}

// wrongTypeReply turns a view's ErrWrongType into Redis's reply.
func wrongTypeReply(err error) error {
	if isWrongType(err) {
		return replyError(kv.ErrTextWrongType)
	}
	return err
}

func cmdZAdd(s *Server, c *client, args [][]byte) {
	var flags kv.SetFlags
	j := 2
options:
	for ; j < len(args); j++ {
		switch strings.ToLower(string(args[j])) {
		case "nx":
			flags |= kv.ZAddNX
		case "xx":
			flags |= kv.ZAddXX
		case "gt":
			flags |= kv.ZAddGT
		case "lt":
			flags |= kv.ZAddLT
		case "ch":
			flags |= kv.ZAddCH
		case "incr":
			flags |= kv.ZAddIncr
		default:
			break options
		}
	}
	zadd(s, c, args[1], flags, args[j:])
}

func cmdZIncrBy(s *Server, c *client, args [][]byte) {
	zadd(s, c, args[1], kv.ZAddIncr, args[2:4])
}

// zadd checks ZADD's options and pairs in Redis's order and proposes it.
func zadd(s *Server, c *client, key []byte, flags kv.SetFlags, pairs [][]byte) {
	switch {
	case len(pairs) == 0 || len(pairs)%2 != 0:
		c.err(errTextSyntax)
		return
	case flags&kv.ZAddNX != 0 && flags&kv.ZAddXX != 0:
		c.err(errTextZAddXXNX)
		return
	case flags&kv.ZAddNX != 0 && flags&(kv.ZAddGT|kv.ZAddLT) != 0 || flags&kv.ZAddGT != 0 && flags&kv.ZAddLT != 0:
		c.err(errTextZAddGTLTNX)
		return
	case flags&kv.ZAddIncr != 0 && len(pairs) > 2:
		c.err(errTextZAddIncrPair)
		return
	}
	values := make([][]byte, len(pairs))
	for k := 0; k < len(pairs); k += 2 {
		f, ok := kv.ParseScore(pairs[k])
		if !ok {
			c.err(kv.ErrTextNotFloat)
			return
		}
		values[k], values[k+1] = kv.EncodeScore(f), pairs[k+1]
	}
	s.writeResult(c, &kv.Command{Op: kv.OpZAdd, Flags: flags, Keys: [][]byte{key}, Values: values})
}

func cmdZRem(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpZRem, Keys: args[1:2], Values: args[2:]})
}

func cmdZCard(s *Server, c *client, args [][]byte) {
	var n int64
	ok := s.read(c, func(v kv.View) error {
		var err error
		n, err = kv.ZCard(v, args[1])
		return wrongTypeReply(err)
	})
	if ok {
		c.int(n)
	}
}

func cmdZScore(s *Server, c *client, args [][]byte) {
	var f float64
	var found bool
	ok := s.read(c, func(v kv.View) error {
		var err error
		f, found, err = kv.ZScore(v, args[1], args[2])
		return wrongTypeReply(err)
	})
	switch {
	case !ok:
	case !found:
		c.null()
	default:
		c.zScore(f)
	}
}

func cmdZMScore(s *Server, c *client, args [][]byte) {
	var scores []float64
	var found []bool
	ok := s.read(c, func(v kv.View) error {
		var err error
		scores, found, err = kv.ZMScore(v, args[1], args[2:])
		return wrongTypeReply(err)
	})
	if !ok {
		return
	}
	c.array(len(scores))
	for k, f := range scores {
		if found[k] {
			c.zScore(f)
		} else {
			c.null()
		}
	}
}

func zrankCommand(rev bool) func(s *Server, c *client, args [][]byte) {
	return func(s *Server, c *client, args [][]byte) {
		withScore := false
		if len(args) > 4 || len(args) == 4 && !equalFold(args[3], "withscore") {
			c.err(errTextSyntax)
			return
		}
		withScore = len(args) == 4
		var rank int64
		var f float64
		var found bool
		ok := s.read(c, func(v kv.View) error {
			var err error
			rank, f, found, err = kv.ZRank(v, args[1], args[2], rev)
			return wrongTypeReply(err)
		})
		switch {
		case !ok:
		case !found && withScore:
			c.zNullArray()
		case !found:
			c.null()
		case withScore:
			c.array(2)
			c.int(rank)
			c.zScore(f)
		default:
			c.int(rank)
		}
	}
}

// parseScoreRange parses min and max of a score range.
func parseScoreRange(min, max []byte) (kv.ScoreBound, kv.ScoreBound, error) {
	lo, ok1 := kv.ParseScoreBound(min)
	hi, ok2 := kv.ParseScoreBound(max)
	if !ok1 || !ok2 {
		return lo, hi, replyError(kv.ErrTextMinMaxFloat)
	}
	return lo, hi, nil
}

// parseLexRange checks min and max of a lex range.
func parseLexRange(min, max []byte) (kv.LexBound, kv.LexBound, error) {
	if !kv.ValidLexBound(min) || !kv.ValidLexBound(max) {
		return nil, nil, replyError(kv.ErrTextMinMaxString)
	}
	return kv.LexBound(min), kv.LexBound(max), nil
}

func cmdZCount(s *Server, c *client, args [][]byte) {
	lo, hi, err := parseScoreRange(args[2], args[3])
	if err != nil {
		c.err(err.Error())
		return
	}
	zcount(s, c, args[1], &kv.ZRangeSpec{Kind: kv.ZByScore, Min: lo, Max: hi})
}

func cmdZLexCount(s *Server, c *client, args [][]byte) {
	lo, hi, err := parseLexRange(args[2], args[3])
	if err != nil {
		c.err(err.Error())
		return
	}
	zcount(s, c, args[1], &kv.ZRangeSpec{Kind: kv.ZByLex, LexMin: lo, LexMax: hi})
}

func zcount(s *Server, c *client, key []byte, spec *kv.ZRangeSpec) {
	var n int64
	ok := s.read(c, func(v kv.View) error {
		var err error
		n, err = kv.ZCount(v, key, spec)
		return wrongTypeReply(err)
	})
	if ok {
		c.int(n)
	}
}

// zrangeForm is how a ZRANGE-family command fixes its range: the older
// commands fix the kind and the direction, ZRANGE and ZRANGESTORE take
// them as options.
type zrangeForm struct {
	kind     kv.ZRangeKind
	rev      bool
	fixed    bool // kind and direction are fixed: no BYSCORE/BYLEX/REV
	store    bool // ZRANGESTORE: no WITHSCORES
	maxFirst bool // ZREV*BY*: the range comes as max min
}

// parseZRange parses "min max [options]" of a ZRANGE-family command.
func parseZRange(form zrangeForm, args [][]byte) (spec kv.ZRangeSpec, withScores bool, err error) {
	spec.Kind, spec.Rev = form.kind, form.rev
	auto := !form.fixed
	kindSet, revSet := false, false
	limit := int64(-1)
	for j := 2; j < len(args); j++ {
		left := len(args) - j - 1
		switch {
		case !form.store && equalFold(args[j], "withscores"):
			withScores = true
		case equalFold(args[j], "limit") && left >= 2:
			if spec.Offset, err = parseInt(args[j+1]); err != nil {
				return spec, false, err
			}
			if limit, err = parseInt(args[j+2]); err != nil {
				return spec, false, err
			}
			j += 2
		case auto && !revSet && equalFold(args[j], "rev"):
			spec.Rev, revSet = true, true
		case auto && !kindSet && equalFold(args[j], "bylex"):
			spec.Kind, kindSet = kv.ZByLex, true
		case auto && !kindSet && equalFold(args[j], "byscore"):
			spec.Kind, kindSet = kv.ZByScore, true
		default:
			return spec, false, errSyntax
		}
	}
	spec.Count = limit
	if limit != -1 && spec.Kind == kv.ZByRank {
		return spec, false, replyError(errTextLimitRank)
	}
	if withScores && spec.Kind == kv.ZByLex {
		return spec, false, replyError(errTextWithScoresLex)
	}
	min, max := args[0], args[1]
	if spec.Kind != kv.ZByRank && (form.maxFirst || auto && spec.Rev) {
		min, max = max, min
	}
	switch spec.Kind {
	case kv.ZByRank:
		if spec.Start, err = parseInt(min); err != nil {
			return spec, false, err
		}
		if spec.Stop, err = parseInt(max); err != nil {
			return spec, false, err
		}
	case kv.ZByScore:
		spec.Min, spec.Max, err = parseScoreRange(min, max)
	case kv.ZByLex:
		spec.LexMin, spec.LexMax, err = parseLexRange(min, max)
	}
	return spec, withScores, err
}

func zrangeCommand(form zrangeForm) func(s *Server, c *client, args [][]byte) {
	return func(s *Server, c *client, args [][]byte) {
		spec, withScores, err := parseZRange(form, args[2:])
		if err != nil {
			c.err(err.Error())
			return
		}
		var es []kv.ZEntry
		ok := s.readBounded(c, "zrange", func(v kv.View, _ *budget) error {
			var err error
			es, err = kv.ZRange(v, args[1], &spec)
			return wrongTypeReply(err)
		})
		if ok {
			c.zEntries(es, withScores)
		}
	}
}

func cmdZRangeStore(s *Server, c *client, args [][]byte) {
	spec, _, err := parseZRange(zrangeForm{store: true}, args[3:])
	if err != nil {
		c.err(err.Error())
		return
	}
	s.writeResult(c, kv.ZRangeStoreCommand(args[1], args[2], &spec))
}

func zremRangeCommand(kind kv.ZRangeKind) func(s *Server, c *client, args [][]byte) {
	return func(s *Server, c *client, args [][]byte) {
		spec := kv.ZRangeSpec{Kind: kind}
		var err error
		switch kind {
		case kv.ZByRank:
			if spec.Start, err = parseInt(args[2]); err == nil {
				spec.Stop, err = parseInt(args[3])
			}
		case kv.ZByScore:
			spec.Min, spec.Max, err = parseScoreRange(args[2], args[3])
		case kv.ZByLex:
			spec.LexMin, spec.LexMax, err = parseLexRange(args[2], args[3])
		}
		if err != nil {
			c.err(err.Error())
			return
		}
		s.writeResult(c, kv.ZRemRangeCommand(args[1], &spec))
	}
}

func zpopCommand(max bool) func(s *Server, c *client, args [][]byte) {
	return func(s *Server, c *client, args [][]byte) {
		if len(args) > 3 {
			c.err(errTextSyntax)
			return
		}
		count := int64(1)
		if len(args) == 3 {
			n, err := parseInt(args[2])
			if err != nil {
				c.err(err.Error())
				return
			}
			if n < 0 {
				c.err(errTextMustBePositive)
				return
			}
			count = n // 0 still checks the key's type, then answers []
		}
		r, ok := s.write(c, kv.ZPopCommand(args[1:2], count, max))
		if !ok {
			return
		}
		switch r.Kind {
		case kv.ResultNil:
			c.array(0)
		case kv.ResultArray:
			c.result(kv.Result{Kind: kv.ResultArray, Batch: r.Batch[1:]})
		default:
			c.result(r)
		}
	}
}

// parseNumKeys parses ZMPOP's numkeys, which must be
// positive (Redis answers a non-number with the same words) and name no
// more keys than the arguments hold.
func parseNumKeys(arg []byte, rest int, tooMany string) (int, error) {
	n, err := parseInt(arg)
	if err != nil || n <= 0 {
		return 0, replyError(errTextNumKeys)
	}
	if n > int64(rest) {
		return 0, replyError(tooMany)
	}
	return int(n), nil
}

func cmdZMPop(s *Server, c *client, args [][]byte) {
	n, err := parseNumKeys(args[1], len(args)-2, errTextSyntax)
	if err != nil {
		c.err(err.Error())
		return
	}
	keys := args[2 : 2+n]
	rest := args[2+n:]
	if len(rest) == 0 {
		c.err(errTextSyntax)
		return
	}
	var max bool
	switch {
	case equalFold(rest[0], "min"):
	case equalFold(rest[0], "max"):
		max = true
	default:
		c.err(errTextSyntax)
		return
	}
	count := int64(-1)
	for j := 1; j < len(rest); j++ {
		if count == -1 && equalFold(rest[j], "count") && j+1 < len(rest) {
			j++
			v, err := parseInt(rest[j])
			if err != nil || v <= 0 {
				c.err(errTextCountZero)
				return
			}
			count = v
			continue
		}
		c.err(errTextSyntax)
		return
	}
	if count == -1 {
		count = 1
	}
	r, ok := s.write(c, kv.ZPopCommand(keys, count, max))
	if !ok {
		return
	}
	writeZMPopReply(c, r)
}

// writeZMPopReply writes an OpZPop result as ZMPOP replies it: a null
// array, or [key, [[member, score], ...]].
func writeZMPopReply(c *client, r kv.Result) {
	switch r.Kind {
	case kv.ResultNil:
		c.zNullArray()
	case kv.ResultArray:
		c.array(2)
		c.result(r.Batch[0])
		pairs := r.Batch[1:]
		c.array(len(pairs) / 2)
		for k := 0; k+1 < len(pairs); k += 2 {
			c.array(2)
			c.result(pairs[k])
			c.result(pairs[k+1])
		}
	default:
		c.result(r)
	}
}

func cmdZRandMember(s *Server, c *client, args [][]byte) {
	if len(args) > 4 || len(args) == 4 && !equalFold(args[3], "withscores") {
		c.err(errTextSyntax)
		return
	}
	if len(args) == 2 {
		var es []kv.ZEntry
		var found bool
		ok := s.read(c, func(v kv.View) error {
			var err error
			es, found, err = kv.ZRandMember(v, args[1], 1, c.rng())
			return wrongTypeReply(err)
		})
		switch {
		case !ok:
		case !found || len(es) == 0:
			c.null()
		default:
			c.bulk(es[0].Member)
		}
		return
	}
	count, err := parseInt(args[2])
	if err != nil {
		c.err(err.Error())
		return
	}
	withScores := len(args) == 4
	if count == math.MinInt64 || withScores && (count < -math.MaxInt64/2 || count > math.MaxInt64/2) {
		c.err(errTextOutOfRange)
		return
	}
	if count < -maxZRandCount {
		// A reply this long would be built in memory (a documented limit).
		c.err(errTextOutOfRange)
		return
	}
	if count == 0 {
		c.array(0)
		return
	}
	var es []kv.ZEntry
	ok := s.readBounded(c, "zrandmember", func(v kv.View, _ *budget) error {
		var err error
		es, _, err = kv.ZRandMember(v, args[1], count, c.rng())
		return wrongTypeReply(err)
	})
	if ok {
		c.zEntries(es, withScores)
	}
}

// zalgebraArgs are the parsed arguments of ZUNION, ZINTER, ZDIFF and
// their STORE forms.
type zalgebraArgs struct {
	keys       [][]byte
	weights    []float64
	agg        kv.SetFlags
	withScores bool
}

// parseZAlgebra parses "numkeys key... [WEIGHTS w...] [AGGREGATE a]
// [WITHSCORES]" for command name (lowercase), op and store.
func parseZAlgebra(name string, op kv.SetFlags, store bool, args [][]byte) (zalgebraArgs, error) {
	var a zalgebraArgs
	n, err := parseInt(args[0])
	if err != nil {
		return a, err
	}
	if n < 1 {
		return a, replyError("ERR at least 1 input key is needed for '" + name + "' command")
	}
	if n > int64(len(args)-1) {
		return a, errSyntax
	}
	a.keys = args[1 : 1+n]
	rest := args[1+n:]
	for j := 0; j < len(rest); {
		left := len(rest) - j
		switch {
		case op != kv.ZStoreDiff && left >= len(a.keys)+1 && equalFold(rest[j], "weights"):
			a.weights = make([]float64, len(a.keys))
			for k := range a.keys {
				f, ok := kv.ParseScore(rest[j+1+k])
				if !ok {
					return a, replyError(errTextWeightNotFloat)
				}
				a.weights[k] = f
			}
			j += 1 + len(a.keys)
		case op != kv.ZStoreDiff && left >= 2 && equalFold(rest[j], "aggregate"):
			switch {
			case equalFold(rest[j+1], "sum"):
				a.agg = 0
			case equalFold(rest[j+1], "min"):
				a.agg = kv.ZAggMin
			case equalFold(rest[j+1], "max"):
				a.agg = kv.ZAggMax
			default:
				return a, errSyntax
			}
			j += 2
		case !store && equalFold(rest[j], "withscores"):
			a.withScores = true
			j++
		default:
			return a, errSyntax
		}
	}
	return a, nil
}

// algebraError answers a parse error as Redis does: it looks the input
// keys up before it parses the options, so a key of the wrong type wins.
func (s *Server) algebraError(c *client, keys [][]byte, perr error) {
	wrong := false
	ok := s.read(c, func(v kv.View) error {
		wrong = false
		for _, k := range keys {
			info, found, err := v.Lookup(k)
			if err != nil {
				return err
			}
			if found && info.Type != keyspace.TypeZSet && info.Type != keyspace.TypeSet {
				wrong = true
			}
		}
		return nil
	})
	switch {
	case !ok:
	case wrong:
		c.err(kv.ErrTextWrongType)
	default:
		c.err(perr.Error())
	}
}

func zalgebraCommand(name string, op kv.SetFlags) func(s *Server, c *client, args [][]byte) {
	return func(s *Server, c *client, args [][]byte) {
		a, err := parseZAlgebra(name, op, false, args[1:])
		if err != nil {
			s.algebraError(c, a.keys, err)
			return
		}
		var es []kv.ZEntry
		ok := s.readBounded(c, name, func(v kv.View, _ *budget) error {
			var err error
			es, err = kv.ZAlgebra(v, a.keys, op, a.agg, a.weights)
			return wrongTypeReply(err)
		})
		if ok {
			c.zEntries(es, a.withScores)
		}
	}
}

func zstoreCommand(name string, op kv.SetFlags) func(s *Server, c *client, args [][]byte) {
	return func(s *Server, c *client, args [][]byte) {
		a, err := parseZAlgebra(name, op, true, args[2:])
		if err != nil {
			s.algebraError(c, a.keys, err)
			return
		}
		cmd := &kv.Command{Op: kv.OpZStore, Flags: op | a.agg, Keys: append([][]byte{args[1]}, a.keys...)}
		for _, w := range a.weights {
			cmd.Values = append(cmd.Values, kv.EncodeScore(w))
		}
		s.writeResult(c, cmd)
	}
}

func cmdZInterCard(s *Server, c *client, args [][]byte) {
	// ZINTERCARD shares ZINTER's numkeys checks and words.
	n, err := parseInt(args[1])
	switch {
	case err != nil:
		c.err(err.Error())
		return
	case n < 1:
		c.err("ERR at least 1 input key is needed for 'zintercard' command")
		return
	case n > int64(len(args)-2):
		c.err(errTextSyntax)
		return
	}
	keys := args[2 : 2+n]
	var limit int64
	rest := args[2+n:]
	for j := 0; j < len(rest); j++ {
		if equalFold(rest[j], "limit") && j+1 < len(rest) {
			j++
			v, err := parseInt(rest[j])
			if err != nil || v < 0 {
				c.err(errTextLimitNegative)
				return
			}
			limit = v
			continue
		}
		c.err(errTextSyntax)
		return
	}
	var card int64
	ok := s.readBounded(c, "zintercard", func(v kv.View, _ *budget) error {
		var err error
		card, err = kv.ZInterCard(v, keys, limit)
		return wrongTypeReply(err)
	})
	if ok {
		c.int(card)
	}
}

// cmdZScan walks the member index (member order) with the collection-scan
// cursor (collscan.go); scores come as ZSCORE formats them.
func cmdZScan(s *Server, c *client, args [][]byte) {
	s.collScan(c, "zscan", args, func(v kv.View, key, from []byte, emit func(pos []byte, items ...[]byte) bool) (bool, error) {
		return kv.ZScanMembers(v, key, from, func(m []byte, f float64) bool {
			return emit(m, m, kv.AppendScoreText(nil, f))
		})
	})
}
