package redis

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Connection commands: they touch only the connection's own state and never
// the Backend, so they answer even when the cluster has no quorum.

func cmdPing(_ *Server, c *client, args [][]byte) {
	switch len(args) {
	case 1:
		c.simple("PONG")
	case 2:
		c.bulk(args[1])
	default:
		c.err(wrongArity("ping"))
	}
}

func cmdEcho(_ *Server, c *client, args [][]byte) { c.bulk(args[1]) }

// cmdQuit answers OK, then closes the connection. Commands pipelined after
// QUIT are dropped unexecuted, as the client asked to leave before them.
func cmdQuit(_ *Server, c *client, _ [][]byte) {
	c.ok()
	c.quit = true
	c.conn.ReadPipeline()
	_ = c.conn.Close() // flushes the OK first
}

// cmdSelect accepts only database 0. elastickv has one keyspace, as Redis
// Cluster does, so it answers any other index with Redis Cluster's error
// rather than Redis's "DB index is out of range": a client switching
// databases learns that it is talking to a cluster-like server, not that
// it picked a bad number. Like Redis, the index must first parse as a
// 32-bit integer.
func cmdSelect(_ *Server, c *client, args [][]byte) {
	n, err := parseInt(args[1])
	switch {
	case err != nil:
		c.err(err.Error())
	case n < math.MinInt32 || n > math.MaxInt32:
		c.err(errTextSelectIndexRange)
	case n != 0:
		c.err(errTextSelectCluster)
	default:
		c.ok()
	}
}

// Replies of SELECT, word for word Redis 7.2's in cluster mode.
const (
	errTextSelectCluster    = "ERR SELECT is not allowed in cluster mode"
	errTextSelectIndexRange = "ERR value is out of range, value must between -2147483648 and 2147483647"
)

// cmdAuth answers as Redis does when no password is configured: elastickv
// has no authentication yet, and pretending a password was checked would
// mislead the client.
func cmdAuth(_ *Server, c *client, _ [][]byte) {
	c.err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
}

// validClientString reports whether s may be a client name or library
// name: printable ASCII without spaces, so CLIENT INFO stays parseable.
func validClientString(s []byte) bool {
	for _, ch := range s {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

func cmdClient(s *Server, c *client, args [][]byte) {
	sub := args[1]
	switch {
	case equalFold(sub, "setname"):
		if len(args) != 3 {
			c.err(wrongArity("client|setname"))
			return
		}
		if !validClientString(args[2]) {
			c.err("ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.name = string(args[2])
		c.ok()
	case equalFold(sub, "getname"):
		if len(args) != 2 {
			c.err(wrongArity("client|getname"))
			return
		}
		if c.name == "" {
			c.null()
			return
		}
		c.bulkString(c.name)
	case equalFold(sub, "id"):
		if len(args) != 2 {
			c.err(wrongArity("client|id"))
			return
		}
		c.int(int64(c.id))
	case equalFold(sub, "setinfo"):
		clientSetInfo(c, args)
	case equalFold(sub, "info"):
		if len(args) != 2 {
			c.err(wrongArity("client|info"))
			return
		}
		c.bulkString(s.clientInfo(c))
	case equalFold(sub, "unblock"):
		clientUnblock(s, c, args) // blocking.go
	default:
		c.err("ERR unknown subcommand '" + truncate(sub) + "'. Try CLIENT HELP.")
	}
}

// clientSetInfo records the library name and version go-redis and other
// clients announce on connect.
func clientSetInfo(c *client, args [][]byte) {
	if len(args) != 4 {
		c.err(wrongArity("client|setinfo"))
		return
	}
	attr, val := args[2], args[3]
	var dst *string
	switch {
	case equalFold(attr, "lib-name"):
		dst = &c.libName
	case equalFold(attr, "lib-ver"):
		dst = &c.libVer
	default:
		c.err("ERR Unrecognized option '" + truncate(attr) + "'")
		return
	}
	if !validClientString(val) {
		c.err("ERR " + strings.ToLower(string(attr)) + " cannot contain spaces, newlines or special characters.")
		return
	}
	*dst = string(val)
	c.ok()
}

// clientInfo is the CLIENT INFO line of c.
func (s *Server) clientInfo(c *client) string {
	var b strings.Builder
	b.WriteString("id=" + strconv.FormatUint(c.id, 10))
	b.WriteString(" addr=" + c.addr)
	b.WriteString(" laddr=" + s.Addr().String())
	b.WriteString(" name=" + c.name)
	b.WriteString(" age=" + strconv.FormatInt(int64(time.Since(c.created)/time.Second), 10))
	b.WriteString(" db=0 resp=2")
	b.WriteString(" lib-name=" + c.libName)
	b.WriteString(" lib-ver=" + c.libVer)
	b.WriteString("\n")
	return b.String()
}

// redisCompatVersion is the Redis version whose command set and replies
// elastickv follows, reported by HELLO and INFO for clients that gate
// features on it.
const redisCompatVersion = "7.2.0"

// cmdHello negotiates the protocol. Only RESP2 is spoken: HELLO 3 is
// refused with NOPROTO, which clients (go-redis included) take as the
// signal to carry on in RESP2.
func cmdHello(s *Server, c *client, args [][]byte) {
	var name []byte
	if len(args) >= 2 {
		ver, err := parseInt(args[1])
		if err != nil {
			c.err("ERR Protocol version is not an integer or out of range")
			return
		}
		switch ver {
		case 2:
		case 3:
			c.err("NOPROTO sorry, this protocol version is not supported")
			return
		default:
			c.err("NOPROTO unsupported protocol version")
			return
		}
		opts := args[2:]
		for i := 0; i < len(opts); i++ {
			switch left := len(opts) - i - 1; {
			case equalFold(opts[i], "auth") && left >= 2:
				// No authentication exists, so every user/password pair
				// is accepted, as Redis's default user without a
				// password would.
				i += 2
			case equalFold(opts[i], "setname") && left >= 1:
				name = opts[i+1]
				if !validClientString(name) {
					c.err("ERR Client names cannot contain spaces, newlines or special characters.")
					return
				}
				i++
			default:
				c.err("ERR Syntax error in HELLO option '" + truncate(opts[i]) + "'")
				return
			}
		}
	}
	if name != nil {
		c.name = string(name)
	}
	role := "replica"
	if s.cfg.Backend.Status().RaftState == RaftStateLeader {
		role = "master"
	}
	// In RESP2 a map is a flat array of alternating keys and values.
	c.array(14)
	c.bulkString("server")
	c.bulkString("elastickv")
	c.bulkString("version")
	c.bulkString(redisCompatVersion)
	c.bulkString("proto")
	c.int(2)
	c.bulkString("id")
	c.int(int64(c.id))
	c.bulkString("mode")
	c.bulkString("standalone")
	c.bulkString("role")
	c.bulkString(role)
	c.bulkString("modules")
	c.array(0)
}

// truncate bounds how much of a client's argument an error echoes.
func truncate(arg []byte) string {
	return string(arg[:min(len(arg), maxErrorEcho)])
}
