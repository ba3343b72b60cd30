package main

import (
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/raft"
	"github.com/elastickv/elastickv/internal/transport"
)

func TestPeerLimitFlags(t *testing.T) {
	parse := func(args ...string) (transport.Limits, int64, error) {
		fs := flag.NewFlagSet("server", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		get := peerLimitFlags(fs, transport.DefaultLimits(), raft.DefaultMaxInboundBytes)
		require.NoError(t, fs.Parse(args))
		return get()
	}
	got, inbound, err := parse()
	require.NoError(t, err)
	require.Equal(t, transport.DefaultLimits(), got, "no flags: the transport's defaults")
	require.Equal(t, int64(raft.DefaultMaxInboundBytes), inbound)

	got, inbound, err = parse("--peer-queue-mb", "8", "--snapshot-max-inbound", "1", "--snapshot-spool-mb", "1024",
		"--snapshot-disk-margin-mb", "0", "--peer-inbound-mb", "32")
	require.NoError(t, err)
	require.Equal(t, transport.Limits{PeerQueueBytes: 8 << 20, MaxInboundSnapshots: 1, SnapshotSpoolBytes: 1 << 30}, got)
	require.Equal(t, int64(32<<20), inbound)

	for _, bad := range [][]string{
		{"--peer-queue-mb", "0"},
		{"--snapshot-spool-mb", "-1"},
		{"--snapshot-spool-mb", "9223372036854775807"},
		{"--snapshot-disk-margin-mb", "-5"},
		{"--snapshot-max-inbound", "0"},
		{"--peer-inbound-mb", "0"},
	} {
		_, _, err := parse(bad...)
		require.Error(t, err, "%v", bad)
		require.Contains(t, err.Error(), bad[0])
	}
}
