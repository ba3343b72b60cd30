package redis

import (
	"context"
	"fmt"
	"strings"
)

// Digester is an optional Backend capability: a digest of the whole state
// machine, so operators and tests can check that replicas hold identical
// data. Replicas at the same applied index must report the same digest.
type Digester interface {
	// Digest hashes the state; it stops with ctx's error once ctx is
	// done, releasing whatever it holds (DEBUG DIGEST runs under the
	// request timeout, and Server.Close cancels it).
	Digest(ctx context.Context) (applied uint64, digest uint64, err error)
}

// cmdDebug implements DEBUG DIGEST, which replies "<applied index>:<hex
// digest>" for this node's local state (not a linearizable read: it is
// meant for comparing replicas once writes have stopped).
func cmdDebug(s *Server, c *client, args [][]byte) {
	if !strings.EqualFold(string(args[1]), "digest") || len(args) != 2 {
		c.err("ERR DEBUG subcommand not supported; only DEBUG DIGEST is")
		return
	}
	d, ok := s.cfg.Backend.(Digester)
	if !ok {
		c.err("ERR DEBUG DIGEST is not available on this node")
		return
	}
	applied, digest, err := s.digestWithin(d)
	if err != nil {
		s.backendError(c, "read", err)
		return
	}
	c.bulk([]byte(fmt.Sprintf("%d:%016x", applied, digest)))
}
