package redis

import (
	"bytes"

	"github.com/elastickv/elastickv/internal/kv"
)

// Keyspace commands.

func cmdDel(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpDel, Keys: args[1:]})
}

// cmdUnlink is DEL: kv deletes a key in O(1) on apply whatever its size,
// so there is nothing left to reclaim in the background.
func cmdUnlink(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpDel, Keys: args[1:]})
}

func cmdExists(s *Server, c *client, args [][]byte) {
	countExisting(s, c, "exists", args)
}

// cmdTouch counts the keys that exist, as EXISTS does. kv keeps no access
// time, so there is nothing to update and TOUCH stays a read.
func cmdTouch(s *Server, c *client, args [][]byte) {
	countExisting(s, c, "touch", args)
}

// cmdRandomKey answers a key picked from one consistent view, or nil when
// there are none. The pick is made here, on the node serving the read, with
// its own random draws; it is not uniform (see kv's RandomKey).
func cmdRandomKey(s *Server, c *client, _ [][]byte) {
	rnd := c.rng()
	var key []byte
	var found bool
	ok := s.read(c, func(v kv.View) error {
		var err error
		key, found, err = v.RandomKey(rnd)
		return err
	})
	switch {
	case !ok:
	case found:
		c.bulk(key)
	default:
		c.null()
	}
}

// countExisting answers the number of args[1:] that exist, for EXISTS and
// TOUCH.
func countExisting(s *Server, c *client, cmd string, args [][]byte) {
	var n int64
	ok := s.readKeys(c, cmd, len(args)-1, func(v kv.View) error {
		n = 0 // a Backend may retry fn
		// A key named twice counts twice, as in Redis.
		for _, k := range args[1:] {
			found, err := v.Exists(k)
			if err != nil {
				return err
			}
			if found {
				n++
			}
		}
		return nil
	})
	if ok {
		c.int(n)
	}
}

func cmdType(s *Server, c *client, args [][]byte) {
	var (
		info  kv.KeyInfo
		found bool
	)
	ok := s.read(c, func(v kv.View) error {
		var err error
		info, found, err = v.Lookup(args[1])
		return err
	})
	switch {
	case !ok:
	case found:
		c.simple(info.Type.String())
	default:
		c.simple("none")
	}
}

// cmdDBSize counts the keys, O(keys): kv keeps no running count (see the
// README). The count stops at the request timeout.
func cmdDBSize(s *Server, c *client, _ [][]byte) {
	var n int64
	ok := s.readBounded(c, "dbsize", func(v kv.View, _ *budget) error {
		var err error
		n, err = v.DBSize()
		return err
	})
	if ok {
		c.int(n)
	}
}

// cmdKeys lists every key matching a pattern. Like Redis's KEYS it is
// O(keys with the pattern's literal prefix), each match O(pattern x key);
// it stops at the request timeout, and its reply is refused past
// maxReplyBytes. SCAN is the incremental alternative.
func cmdKeys(s *Server, c *client, args [][]byte) {
	pattern := compileGlob(args[1])
	prefix := literalPrefix(args[1])
	var keys [][]byte
	ok := s.readBounded(c, "keys", func(v kv.View, b *budget) error {
		keys = keys[:0]
		held := 0
		_, err := v.Scan(nil, prefix, func(k []byte) bool {
			matched, err := pattern.matchWithin(k, b)
			if err != nil {
				return false // the budget is spent; Scan reports it
			}
			if matched {
				if held += len(k) + respOverhead; held > s.maxReply() {
					return false
				}
				keys = append(keys, bytes.Clone(k))
			}
			return true
		})
		if err == nil && held > s.maxReply() {
			return errReplyTooLarge
		}
		return err
	})
	if !ok {
		return
	}
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}

// cmdFlushAll serves FLUSHALL and FLUSHDB: there is a single database. The
// flush is always applied synchronously through the log, so ASYNC and SYNC
// are accepted and mean the same.
func cmdFlushAll(s *Server, c *client, args [][]byte) {
	switch {
	case len(args) == 1:
	case len(args) == 2 && (equalFold(args[1], "async") || equalFold(args[1], "sync")):
	default:
		c.err(errTextSyntax)
		return
	}
	s.writeResult(c, &kv.Command{Op: kv.OpFlushAll})
}
