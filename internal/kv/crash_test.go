package kv

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// TestCrashConsistency applies a log to a store on Pebble's crashable
// in-memory filesystem, "crashes" it (a clone keeps only synced data, plus a
// random part of unsynced data), replays the whole log on the survivor, and
// checks the result equals a store that never crashed. In sync mode the
// crash must lose nothing that Apply returned; in nosync mode it may lose a
// suffix, which the replay (standing in for the Raft WAL) re-creates.
func TestCrashConsistency(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			// The replicated log: a mix of commands over a few keys.
			var log []Entry
			for i := uint64(1); i <= 400; i++ {
				k := []byte(fmt.Sprintf("k%d", rng.IntN(8)))
				var c Command
				switch rng.IntN(4) {
				case 0:
					c = Command{Op: OpSet, Keys: [][]byte{k}, Values: [][]byte{[]byte(fmt.Sprint(i))}}
				case 1:
					c = Command{Op: OpIncrBy, Keys: [][]byte{[]byte("n")}, Delta: 1}
				case 2:
					c = Command{Op: OpAppend, Keys: [][]byte{[]byte("a")}, Values: [][]byte{{byte('a' + i%26)}}}
				case 3:
					c = Command{Op: OpDel, Keys: [][]byte{k}}
				}
				log = append(log, Entry{Index: i, Data: c.AppendEncode(nil)})
			}
			runCrashTrials(t, sync, rng, log)
		})
	}
}

// runCrashTrials applies log to a reference store and, eight times, to a
// store that crashes partway and replays the whole log, which must end
// with the reference's hash and apply time.
func runCrashTrials(t *testing.T, sync bool, rng *rand.Rand, log []Entry) {
	t.Helper()
	reference := openOn(t, vfs.NewMem(), sync)
	applyInBatches(t, reference, log)
	_, want, err := reference.Hash()
	require.NoError(t, err)
	wantTime := reference.ApplyTime()
	require.NoError(t, reference.Close())

	lossy := 0
	for trial := range 8 {
		fs := vfs.NewCrashableMem()
		s := openOn(t, fs, sync)
		crashAt := 50 + rng.IntN(350)
		applyInBatches(t, s, log[:crashAt])
		acked := s.AppliedIndex()
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(100), RNG: rng})
		require.NoError(t, s.Close())

		s = openOn(t, crashed, sync)
		if sync {
			require.Equal(t, acked, s.AppliedIndex(), "trial %d: sync mode lost an applied batch", trial)
		} else {
			require.LessOrEqual(t, s.AppliedIndex(), acked)
			if s.AppliedIndex() < acked {
				lossy++
			}
		}
		applyInBatches(t, s, log) // replay everything; applied entries are skipped
		_, got, err := s.Hash()
		require.NoError(t, err)
		require.Equal(t, want, got, "trial %d (crash after %d entries): state differs after replay", trial, crashAt)
		require.Equal(t, wantTime, s.ApplyTime(), "trial %d: apply time differs after replay", trial)
		requireCountsMatchRows(t, s)
		require.NoError(t, s.Close())
	}
	if !sync {
		// Otherwise the test would not show that replay repairs loss.
		require.Positive(t, lossy, "no nosync trial lost unsynced writes")
	}
}

func openOn(t *testing.T, fs vfs.FS, sync bool) *Store {
	t.Helper()
	cfg := DefaultConfig("db")
	cfg.FS, cfg.Sync, cfg.CacheBytes = fs, sync, 4<<20
	s, err := Open(cfg)
	require.NoError(t, err)
	return s
}

func applyInBatches(t *testing.T, s *Store, log []Entry) {
	t.Helper()
	for i := 0; i < len(log); i += 7 {
		_, err := s.Apply(log[i:min(i+7, len(log))])
		require.NoError(t, err)
	}
}

// TestCrashConsistencyV2 is TestCrashConsistency at format 2: the log
// raises the format first, then mixes string and expiry commands (chunked
// values included) with stamps.
func TestCrashConsistencyV2(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			log := []Entry{{Index: 1, Data: enc(*NewRaiseFormat(FormatV2)), Stamp: 1000}}
			clock := uint64(1000)
			for i := uint64(2); i <= 400; i++ {
				clock += uint64(rng.IntN(30))
				c := randomV2Command(rng, clock)
				log = append(log, Entry{Index: i, Data: enc(c), Stamp: clock})
			}
			runCrashTrials(t, sync, rng, log)
		})
	}
}
