package redis

import (
	"context"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/elastickv/elastickv/internal/kv"
)

// Server and introspection commands: INFO, COMMAND, CONFIG.

// infoSections lists INFO's sections in output order.
var infoSections = []string{"server", "clients", "stats", "replication", "raft", "keyspace"}

// keyspaceInfoTimeout bounds INFO's key count read: INFO must stay quick
// when the cluster has no quorum, and then simply omits the count.
const keyspaceInfoTimeout = time.Second

// keyspaceScanBudget bounds the key count's scan in INFO: about half a
// million keys on the machine of docs/benchmarks.md (100k keys in 19 ms).
const keyspaceScanBudget = 100 * time.Millisecond

func cmdInfo(s *Server, c *client, args [][]byte) {
	want := make(map[string]bool, len(infoSections))
	if len(args) == 1 {
		for _, sec := range infoSections {
			want[sec] = true
		}
	}
	for _, a := range args[1:] {
		sec := strings.ToLower(string(a))
		switch sec {
		case "all", "default", "everything":
			for _, name := range infoSections {
				want[name] = true
			}
		default:
			want[sec] = true // unknown sections produce nothing, as in Redis
		}
	}
	st := s.cfg.Backend.Status()
	var b strings.Builder
	line := func(k, v string) { b.WriteString(k + ":" + v + "\r\n") }
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	for _, sec := range infoSections {
		if !want[sec] {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		switch sec {
		case "server":
			b.WriteString("# Server\r\n")
			uptime := time.Since(s.started)
			line("redis_version", redisCompatVersion)
			line("redis_mode", "standalone")
			line("elastickv_version", s.cfg.Version)
			line("go_version", runtime.Version())
			line("arch_bits", strconv.Itoa(strconv.IntSize))
			line("process_id", strconv.Itoa(pid))
			line("run_id", s.runID)
			line("tcp_port", strconv.Itoa(s.tcpPort()))
			line("uptime_in_seconds", strconv.FormatInt(int64(uptime/time.Second), 10))
			line("uptime_in_days", strconv.FormatInt(int64(uptime/(24*time.Hour)), 10))
		case "clients":
			b.WriteString("# Clients\r\n")
			line("connected_clients", strconv.FormatInt(s.clients.Load(), 10))
			line("maxclients", strconv.FormatInt(s.live.maxClients.Load(), 10))
			line("client_buffer_input_bytes", strconv.FormatInt(s.mem.in.Load(), 10))
			line("client_buffer_output_bytes", strconv.FormatInt(s.mem.out.Load(), 10))
			// Clients waiting in a blocking command on this node (blocking.go).
			line("blocked_clients", strconv.FormatInt(s.blocked.blockedClients(), 10))
		case "stats":
			b.WriteString("# Stats\r\n")
			// Keys this node deleted because they expired (on apply, so
			// every replica counts the same deletions).
			line("expired_keys", u(st.ExpiredKeys))
		case "replication":
			// Redis's vocabulary: the Raft leader is the master, every
			// other node a replica ("slave" in INFO).
			b.WriteString("# Replication\r\n")
			if st.RaftState == RaftStateLeader {
				line("role", "master")
			} else {
				line("role", "slave")
				status := "down"
				if st.LeaderID != "" {
					status = "up"
				}
				line("master_link_status", status)
			}
			line("connected_slaves", "0")
		case "raft":
			b.WriteString("# Raft\r\n")
			line("raft_node_id", st.NodeID)
			line("raft_state", infoRaftState(st.RaftState))
			line("raft_leader_id", st.LeaderID)
			line("raft_term", u(st.Term))
			line("raft_commit_index", u(st.CommitIndex))
			line("raft_applied_index", u(st.AppliedIndex))
			// The replicated log's format version, what this binary
			// supports, and the lowest any member advertises: the cluster
			// version rises once the last reaches a newer version.
			line("cluster_format", u(uint64(st.ClusterFormat)))
			line("binary_max_format", u(uint64(st.BinaryMaxFormat)))
			line("min_member_format", u(uint64(st.MinMemberFormat)))
			if st.Failure != "" {
				// raft_state is "failed": say why, on one line.
				line("raft_failure", strings.Join(strings.Fields(st.Failure), " "))
			}
		case "keyspace":
			b.WriteString("# Keyspace\r\n")
			if k, ok := s.keyCount(); ok && k.keys > 0 {
				// Redis leaves an empty database out of INFO keyspace.
				line("db0", "keys="+strconv.FormatInt(k.keys, 10)+",expires="+u(k.expires)+",avg_ttl="+u(k.avgTTL))
			}
		}
	}
	c.bulkString(b.String())
}

// infoRaftState folds pre-vote into candidate: INFO promises leader,
// follower, candidate, learner or failed (the node stopped serving after a
// storage failure), and pre-vote is a detail of the election.
func infoRaftState(state string) string {
	state = strings.ToLower(state)
	if state == "precandidate" {
		return "candidate"
	}
	return state
}

// keyspaceInfo is INFO's db0 line.
type keyspaceInfo struct {
	keys    int64
	expires uint64
	avgTTL  uint64 // ms, estimated
}

// avgTTLSamples is how many random keys INFO looks at to estimate avg_ttl.
const avgTTLSamples = 20

// keyCount reads the number of keys, and of keys with an expiry, for INFO,
// and estimates their average remaining TTL, giving up quickly.
func (s *Server) keyCount() (keyspaceInfo, bool) {
	ctx, cancel := context.WithTimeout(s.baseCtx, min(s.cfg.RequestTimeout, keyspaceInfoTimeout))
	defer cancel()
	// At format 2 the counts are O(1) rows. At format 1 keys are counted
	// by a scan, so the line is left out of INFO when the keyspace is too
	// large to count within keyspaceScanBudget: monitoring polls INFO,
	// DBSIZE is the command that counts under the full request timeout.
	b := s.newBudget("info keyspace", min(s.cfg.RequestTimeout, keyspaceScanBudget))
	var k keyspaceInfo
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	err := s.cfg.Backend.Read(ctx, func(v kv.View) error {
		var err error
		k = keyspaceInfo{}
		bv := boundedView{v: v, b: b}
		if k.keys, err = bv.DBSize(); err != nil {
			return err
		}
		// O(1) once the keyspace is in the v2 layout; before, a count
		// that fit the budget above is small enough to count again.
		if _, k.expires, err = v.Counts(); err != nil || k.expires == 0 {
			return err
		}
		k.avgTTL, err = sampleAvgTTL(bv, rnd)
		return err
	})
	if b.reason != "" {
		s.metrics.commandAborted("info", b.reason)
	}
	if err != nil {
		s.log.Debug("INFO: key count unavailable", "err", err, "examined", b.examined)
		return keyspaceInfo{}, false
	}
	return k, true
}

// sampleAvgTTL estimates the average remaining TTL, in ms, of the keys that
// have one, from avgTTLSamples random keys, as Redis estimates avg_ttl from
// the keys its expiry cycle samples: 0 when no sampled key has a TTL.
func sampleAvgTTL(v kv.View, rnd *rand.Rand) (uint64, error) {
	var sum, n uint64
	now := v.Now()
	for range avgTTLSamples {
		key, found, err := v.RandomKey(rnd)
		if err != nil || !found {
			return 0, err
		}
		info, ok, err := v.Lookup(key)
		if err != nil {
			return 0, err
		}
		if ok && info.ExpireAt > now {
			sum += info.ExpireAt - now
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	return sum / n, nil
}

// cmdTime answers TIME with this node's clock, as Redis answers with its
// server's: seconds and microseconds as two bulk strings. Key expiry does
// not use it: deadlines follow the replicated time (docs/keyspace.md).
func cmdTime(_ *Server, c *client, _ [][]byte) {
	now := time.Now()
	if c.exec != nil {
		// On apply (EXEC, scripts) every replica must reply alike: the
		// entry's apply time, to the millisecond.
		now = time.UnixMilli(c.nowMillis())
	}
	c.array(2)
	c.bulkString(strconv.FormatInt(now.Unix(), 10))
	c.bulkString(strconv.FormatInt(int64(now.Nanosecond()/1000), 10))
}
