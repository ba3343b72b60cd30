package main

import (
	"flag"
	"fmt"

	"github.com/elastickv/elastickv/internal/transport"
)

// peerLimitFlags registers the flags of transport.Limits on fs, with def's
// values as defaults, and returns a function that reads them back once fs
// is parsed.
func peerLimitFlags(fs *flag.FlagSet, def transport.Limits) func() (transport.Limits, error) {
	queueMB := fs.Int64("peer-queue-mb", def.PeerQueueBytes>>20,
		"MiB of Raft messages queued toward one peer (heartbeats aside); beyond it messages are dropped and Raft retries")
	inbound := fs.Int("snapshot-max-inbound", def.MaxInboundSnapshots,
		"snapshots this node receives at once; more are refused and their senders retry")
	spoolMB := fs.Int64("snapshot-spool-mb", def.SnapshotSpoolBytes>>20,
		"MiB the inbound snapshots in flight may declare together; must exceed the largest snapshot")
	marginMB := fs.Int64("snapshot-disk-margin-mb", def.SnapshotDiskMarginBytes>>20,
		"MiB of free disk an inbound snapshot must leave on the data dir's file system")
	return func() (transport.Limits, error) {
		const maxMB = 1 << 40 // keeps the shift below from overflowing
		for name, v := range map[string]int64{"--peer-queue-mb": *queueMB, "--snapshot-spool-mb": *spoolMB} {
			if v <= 0 || v > maxMB {
				return transport.Limits{}, fmt.Errorf("%s must be in [1, %d]", name, int64(maxMB))
			}
		}
		if *marginMB < 0 || *marginMB > maxMB {
			return transport.Limits{}, fmt.Errorf("--snapshot-disk-margin-mb must be in [0, %d]", int64(maxMB))
		}
		if *inbound <= 0 {
			return transport.Limits{}, fmt.Errorf("--snapshot-max-inbound must be positive")
		}
		return transport.Limits{
			PeerQueueBytes:          *queueMB << 20,
			MaxInboundSnapshots:     *inbound,
			SnapshotSpoolBytes:      *spoolMB << 20,
			SnapshotDiskMarginBytes: *marginMB << 20,
		}, nil
	}
}
