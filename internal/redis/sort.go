package redis

import (
	"errors"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// SORT and SORT_RO (issue #16). The sort itself is kv's (kv/sort.go):
// SORT without STORE and SORT_RO read a linearizable view under the
// request's budget; SORT ... STORE is one op computed at apply. As in
// Redis Cluster, a BY or GET pattern must name keys in the sorted key's
// hash slot (a hash tag does it: SORT {u}ids BY {u}w_*); any other is
// refused with Redis Cluster's words, before anything is read.

const (
	errTextSortByCluster  = "ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
	errTextSortGetCluster = "ERR GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
)

// patternSlot is the one hash slot every key pattern can match, or -1
// when its keys may be in several: Redis Cluster's rule. A glob character
// or a backslash before a complete non-empty hash tag means any slot; a
// tag decides the slot; a pattern with neither names one key.
func patternSlot(pattern []byte) int {
	open := -1
	for i, ch := range pattern {
		switch {
		case ch == '*' || ch == '?' || ch == '[' || ch == '\\':
			return -1
		case open < 0 && ch == '{':
			open = i
		case open >= 0 && ch == '}' && i == open+1:
			return -1 // "{}": the whole key is hashed, and it has a wildcard part
		case open >= 0 && ch == '}':
			return int(keyspace.HashSlot(pattern[open+1 : i]))
		}
	}
	return int(keyspace.HashSlot(pattern))
}

// sortArgs are SORT's parsed options.
type sortArgs struct {
	q     kv.SortQuery
	store []byte // nil: no STORE
}

// parseSort parses the arguments after SORT key (readonly: SORT_RO, which
// has no STORE), in Redis's order of checks.
func parseSort(key []byte, opts [][]byte, readonly bool) (sortArgs, error) {
	var a sortArgs
	slot := int(keyspace.HashSlot(key))
	for j := 0; j < len(opts); j++ {
		left := len(opts) - j - 1
		o := opts[j]
		switch {
		case equalFold(o, "asc"):
			a.q.Desc = false
		case equalFold(o, "desc"):
			a.q.Desc = true
		case equalFold(o, "alpha"):
			a.q.Alpha = true
		case equalFold(o, "limit") && left >= 2:
			off, err := parseInt(opts[j+1])
			if err != nil {
				return a, err
			}
			cnt, err := parseInt(opts[j+2])
			if err != nil {
				return a, err
			}
			a.q.Limit, a.q.Offset, a.q.Count = true, off, cnt
			j += 2
		case !readonly && equalFold(o, "store") && left >= 1:
			a.store = opts[j+1]
			j++
		case equalFold(o, "by") && left >= 1:
			p := opts[j+1]
			j++
			if !containsByte(p, '*') {
				a.q.NoSort, a.q.By = true, nil
				continue
			}
			if patternSlot(p) != slot {
				return a, replyError(errTextSortByCluster)
			}
			a.q.By = p // an earlier BY without '*' still means no sort, as in Redis
		case equalFold(o, "get") && left >= 1:
			p := opts[j+1]
			j++
			if !(len(p) == 1 && p[0] == '#') && patternSlot(p) != slot {
				return a, replyError(errTextSortGetCluster)
			}
			a.q.Get = append(a.q.Get, p)
		default:
			return a, errSyntax
		}
	}
	return a, nil
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

func cmdSort(s *Server, c *client, args [][]byte)   { sortCommand(s, c, args, false) }
func cmdSortRO(s *Server, c *client, args [][]byte) { sortCommand(s, c, args, true) }

func sortCommand(s *Server, c *client, args [][]byte, readonly bool) {
	a, err := parseSort(args[1], args[2:], readonly)
	if err != nil {
		c.err(err.Error())
		return
	}
	if a.store != nil {
		s.writeResult(c, kv.NewSortStore(args[1], a.store, a.q))
		return
	}
	var out [][]byte
	ok := s.readBounded(c, "sort", func(v kv.View, _ *budget) error {
		var err error
		out, err = kv.Sort(v, args[1], a.q)
		if errors.Is(err, kv.ErrSortNotDouble) {
			return replyError(kv.ErrTextSortNotDouble)
		}
		return listWrongType(err)
	})
	if !ok {
		return
	}
	c.array(len(out))
	for _, v := range out {
		if v == nil {
			c.null()
		} else {
			c.bulk(v)
		}
	}
}
