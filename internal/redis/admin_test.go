package redis

import (
	"os"
	"strconv"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestInfoSections(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.MSet(ctx, "a", 1, "b", 2).Err())

	info, err := f.rdb.InfoMap(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, redisCompatVersion, info["Server"]["redis_version"])
	require.NotEmpty(t, info["Server"]["elastickv_version"])
	require.Equal(t, strconv.Itoa(os.Getpid()), info["Server"]["process_id"])
	require.Equal(t, strconv.Itoa(f.srv.tcpPort()), info["Server"]["tcp_port"])
	require.Equal(t, "master", info["Replication"]["role"])
	require.Equal(t, "leader", info["Raft"]["raft_state"])
	require.Equal(t, "n1", info["Raft"]["raft_leader_id"])
	require.Equal(t, "3", info["Raft"]["raft_term"])
	// Index 1 is the fixture's format raise, 2 the MSET.
	require.Equal(t, "2", info["Raft"]["raft_commit_index"])
	require.Equal(t, "2", info["Raft"]["raft_applied_index"])
	require.Equal(t, "keys=2,expires=0,avg_ttl=0", info["Keyspace"]["db0"])
	require.Equal(t, "1", info["Clients"]["connected_clients"])

	// One section, case-insensitively; a follower is a slave; pre-vote shows
	// as candidate.
	f.backend.setStatus(Status{NodeID: "n1", RaftState: "follower", LeaderID: "n2", Term: 4})
	info, err = f.rdb.InfoMap(ctx, "REPLICATION").Result()
	require.NoError(t, err)
	require.Equal(t, map[string]map[string]string{
		"Replication": {"role": "slave", "master_link_status": "up", "connected_slaves": "0"},
	}, info)
	f.backend.setStatus(Status{NodeID: "n1", RaftState: "precandidate"})
	info, err = f.rdb.InfoMap(ctx, "raft", "replication").Result()
	require.NoError(t, err)
	require.Equal(t, "candidate", info["Raft"]["raft_state"])
	require.Equal(t, "", info["Raft"]["raft_leader_id"])
	require.Equal(t, "down", info["Replication"]["master_link_status"])
	require.Len(t, info, 2)

	raw, err := f.rdb.Info(ctx, "nosuchsection").Result()
	require.NoError(t, err)
	require.Empty(t, raw)
}

func TestCommandDescribesTheTable(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx

	// go-redis parses the full COMMAND reply (it needs Redis 7's shape).
	infos, err := f.rdb.Command(ctx).Result()
	require.NoError(t, err)
	require.Len(t, infos, len(commandTable))
	get := infos["get"]
	require.NotNil(t, get)
	require.Equal(t, int8(2), get.Arity)
	require.True(t, get.ReadOnly)
	require.Equal(t, int8(1), get.FirstKeyPos)
	mset := infos["mset"]
	require.Equal(t, int8(-3), mset.Arity)
	require.Equal(t, int8(2), mset.StepCount)
	require.Contains(t, mset.Flags, "write")

	n, err := f.do("COMMAND", "COUNT").Int()
	require.NoError(t, err)
	require.Equal(t, len(commandTable), n)

	docs, err := f.do("COMMAND", "DOCS").Slice()
	require.NoError(t, err)
	require.Len(t, docs, 2*len(commandTable)) // a flat map: name, docs

	one, err := f.do("COMMAND", "INFO", "GET", "nosuch").Slice()
	require.NoError(t, err)
	require.Len(t, one, 2)
	require.Equal(t, "get", one[0].([]any)[0])
	require.Nil(t, one[1])

	list, err := f.do("COMMAND", "LIST").StringSlice()
	require.NoError(t, err)
	require.Contains(t, list, "scan")
	requireErr(t, f.do("COMMAND", "FROB").Err(), "ERR unknown subcommand 'FROB'. Try COMMAND HELP.")
}

func TestTypeOfMissingAndPresentKeyViaGoRedisDo(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.rdb.Set(f.ctx, "k", "v", 0).Err())
	typ, err := f.do("TYPE", "k").Text()
	require.NoError(t, err)
	require.Equal(t, "string", typ)
	require.ErrorIs(t, f.do("GET", "nope").Err(), goredis.Nil)
}
