package cluster

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/elastickv/elastickv/internal/node"
)

// RaftAddr returns node i's peer (gRPC) address, where its admin service
// also listens.
func (c *Cluster) RaftAddr(i int) string { return c.cfgs[i].RaftAddr }

// Admin returns an admin client talking to node i's peer address, closed at
// test end.
func (c *Cluster) Admin(i int) *node.AdminClient {
	c.t.Helper()
	cl, err := node.DialAdmin(c.RaftAddr(i))
	if err != nil {
		c.t.Fatalf("admin client for %s: %v", c.Name(i), err)
	}
	c.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// Join starts a new node n<k> with an empty data directory that joins the
// running cluster through node via's peer address, and returns its index.
// The new node gets the same settings as node 0 (options given to New
// included), minus the bootstrap peers. On error the slot stays, stopped.
func (c *Cluster) Join(via int, opts ...Option) (int, error) {
	return c.JoinAs(fmt.Sprintf("n%d", len(c.nodes)+1), via, opts...)
}

// JoinAs is Join with an explicit node name (tests of refused joins).
func (c *Cluster) JoinAs(name string, via int, opts ...Option) (int, error) {
	c.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatalf("reserve raft port: %v", err)
	}
	i := len(c.nodes)
	cfg := c.cfgs[0]
	cfg.Name = name
	cfg.DataDir = filepath.Join(c.Dir, fmt.Sprintf("%s-%d", name, i))
	cfg.RaftAddr = ln.Addr().String()
	cfg.RaftListener = ln
	cfg.RedisAddr = "127.0.0.1:0"
	cfg.Peers = nil
	cfg.Join = c.RaftAddr(via)
	cfg.Logger = c.cfgs[0].Logger.With("joined", name)
	for _, o := range opts {
		o(i, &cfg)
	}
	c.cfgs = append(c.cfgs, cfg)
	c.nodes = append(c.nodes, nil)
	c.clients = append(c.clients, nil)
	if err := c.TryRestart(i); err != nil {
		return i, err
	}
	return i, nil
}
