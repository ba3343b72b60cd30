package main

import (
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/transport"
)

func TestPeerLimitFlags(t *testing.T) {
	parse := func(args ...string) (transport.Limits, error) {
		fs := flag.NewFlagSet("server", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		get := peerLimitFlags(fs, transport.DefaultLimits())
		require.NoError(t, fs.Parse(args))
		return get()
	}
	got, err := parse()
	require.NoError(t, err)
	require.Equal(t, transport.DefaultLimits(), got, "no flags: the transport's defaults")

	got, err = parse("--peer-queue-mb", "8", "--snapshot-max-inbound", "1", "--snapshot-spool-mb", "1024", "--snapshot-disk-margin-mb", "0")
	require.NoError(t, err)
	require.Equal(t, transport.Limits{PeerQueueBytes: 8 << 20, MaxInboundSnapshots: 1, SnapshotSpoolBytes: 1 << 30}, got)

	for _, bad := range [][]string{
		{"--peer-queue-mb", "0"},
		{"--snapshot-spool-mb", "-1"},
		{"--snapshot-spool-mb", "9223372036854775807"},
		{"--snapshot-disk-margin-mb", "-5"},
		{"--snapshot-max-inbound", "0"},
	} {
		_, err := parse(bad...)
		require.Error(t, err, "%v", bad)
		require.Contains(t, err.Error(), bad[0])
	}
}
