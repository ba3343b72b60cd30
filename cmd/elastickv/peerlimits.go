package main

import (
	"flag"
	"fmt"

	"github.com/elastickv/elastickv/internal/transport"
)

// peerLimitFlags registers the flags of transport.Limits and of the Raft
// group's inbound byte budget on fs, with def's and defInbound's values as
// defaults, and returns a function that reads them back once fs is parsed.
func peerLimitFlags(fs *flag.FlagSet, def transport.Limits, defInbound int64) func() (transport.Limits, int64, error) {
	queueMB := fs.Int64("peer-queue-mb", def.PeerQueueBytes>>20,
		"MiB of Raft messages queued toward one peer (heartbeats aside); beyond it messages are dropped and Raft retries")
	inbound := fs.Int("snapshot-max-inbound", def.MaxInboundSnapshots,
		"snapshots this node receives at once; more are refused and their senders retry")
	spoolMB := fs.Int64("snapshot-spool-mb", def.SnapshotSpoolBytes>>20,
		"MiB the inbound snapshots in flight may declare together; must exceed the largest snapshot")
	marginMB := fs.Int64("snapshot-disk-margin-mb", def.SnapshotDiskMarginBytes>>20,
		"MiB of free disk an inbound snapshot must leave on the data dir's file system")
	inboundMB := fs.Int64("peer-inbound-mb", defInbound>>20,
		"MiB of log entries received from peers and queued for the Raft loop; beyond it messages are dropped and the leader resends")
	return func() (transport.Limits, int64, error) {
		const maxMB = 1 << 40 // keeps the shifts below from overflowing
		for _, f := range []struct {
			name string
			v    int64
		}{{"--peer-queue-mb", *queueMB}, {"--snapshot-spool-mb", *spoolMB}, {"--peer-inbound-mb", *inboundMB}} {
			if f.v <= 0 || f.v > maxMB {
				return transport.Limits{}, 0, fmt.Errorf("%s must be in [1, %d]", f.name, int64(maxMB))
			}
		}
		if *marginMB < 0 || *marginMB > maxMB {
			return transport.Limits{}, 0, fmt.Errorf("--snapshot-disk-margin-mb must be in [0, %d]", int64(maxMB))
		}
		if *inbound <= 0 {
			return transport.Limits{}, 0, fmt.Errorf("--snapshot-max-inbound must be positive")
		}
		return transport.Limits{
			PeerQueueBytes:          *queueMB << 20,
			MaxInboundSnapshots:     *inbound,
			SnapshotSpoolBytes:      *spoolMB << 20,
			SnapshotDiskMarginBytes: *marginMB << 20,
		}, *inboundMB << 20, nil
	}
}
