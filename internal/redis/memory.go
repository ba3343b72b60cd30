package redis

import (
	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// MEMORY USAGE and MEMORY HELP. elastickv's values live in Pebble rows,
// not in allocations, so MEMORY USAGE answers an estimate of the bytes the
// key's rows hold: the key and its metadata, plus, for a collection, its
// element count times the mean size of the first SAMPLES elements (5 by
// default, 0 for all of them, as Redis samples), each with a fixed
// per-element overhead. A missing key answers nil.

// Estimate's fixed parts, in bytes.
const (
	memKeyOverhead  = 48 // the metadata record and its row key
	memElemOverhead = 16 // an element row's key prefix (slot, tag, storage id)
	memDefaultSamps = 5
)

var memoryHelp = []string{
	"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"USAGE <key> [SAMPLES <count>]",
	"    Return an estimate of the bytes the rows of <key> hold. For a collection,",
	"    the first <count> elements are sampled (default 5; 0 samples them all).",
	"HELP",
	"    Print this help.",
}

func cmdMemory(s *Server, c *client, args [][]byte) {
	if equalFold(args[1], "help") {
		c.array(len(memoryHelp))
		for _, l := range memoryHelp {
			c.simple(l)
		}
		return
	}
	samples := int64(memDefaultSamps)
	opts := args[3:]
	if len(opts) != 0 && len(opts) != 2 || len(opts) == 2 && !equalFold(opts[0], "samples") {
		c.err(errTextSyntax)
		return
	}
	if len(opts) == 2 {
		n, err := parseInt(opts[1])
		if err != nil {
			c.err(err.Error())
			return
		}
		if n < 0 {
			c.err(errTextSyntax)
			return
		}
		samples = n
	}
	var (
		size  uint64
		found bool
	)
	ok := s.readBounded(c, "memory", func(v kv.View, _ *budget) error {
		size = 0
		var (
			info kv.KeyInfo
			err  error
		)
		info, found, err = v.Lookup(args[2])
		if err != nil || !found {
			return err
		}
		size = uint64(len(args[2])) + memKeyOverhead
		if info.Type == keyspace.TypeString {
			size += info.Len
			return nil
		}
		coll, ok, err := v.Collection(args[2], info.Type)
		if err != nil || !ok {
			found = ok
			return err
		}
		var seen, bytes uint64
		err = coll.Iter(nil, nil, false, func(suffix, val []byte) bool {
			seen++
			bytes += uint64(len(suffix)+len(val)) + memElemOverhead
			return samples == 0 || seen < uint64(samples)
		})
		if err != nil {
			return err
		}
		if seen > 0 {
			size += coll.Meta().Len * bytes / seen
		}
		return nil
	})
	switch {
	case !ok:
	case !found:
		c.null()
	default:
		c.int(int64(size))
	}
}
