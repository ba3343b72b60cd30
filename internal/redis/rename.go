package redis

import (
	"bytes"

	"github.com/elastickv/elastickv/internal/kv"
)

// RENAME, RENAMENX and COPY. RENAME is O(1) on apply whatever the value's
// size (only the metadata record moves; docs/keyspace.md); COPY
// duplicates the value, O(N) as in Redis.

func cmdRename(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpRename, Keys: args[1:3]})
}

func cmdRenameNX(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpRename, Flags: kv.RenameNX, Keys: args[1:3]})
}

// copyDBs is the number of databases Redis's COPY ... DB n accepts before
// the cluster-mode check (its default "databases" setting).
const copyDBs = 16

// cmdCopy answers COPY src dst [DB n] [REPLACE] with Redis 7.2's replies
// in cluster mode: elastickv, like Redis Cluster, has database 0 only.
func cmdCopy(s *Server, c *client, args [][]byte) {
	var flags kv.SetFlags
	db := int64(0)
	for j := 3; j < len(args); j++ {
		switch {
		case equalFold(args[j], "replace"):
			flags |= kv.CopyReplace
		case equalFold(args[j], "db") && j+1 < len(args):
			n, err := parseInt(args[j+1])
			if err != nil {
				c.err(err.Error())
				return
			}
			if n < 0 || n >= copyDBs {
				c.err("ERR DB index is out of range")
				return
			}
			db = n
			j++
		default:
			c.err(errTextSyntax)
			return
		}
	}
	if db != 0 {
		c.err("ERR Copying to another database is not allowed in cluster mode")
		return
	}
	if bytes.Equal(args[1], args[2]) {
		c.err("ERR source and destination objects are the same")
		return
	}
	s.writeResult(c, &kv.Command{Op: kv.OpCopy, Flags: flags, Keys: args[1:3]})
}
