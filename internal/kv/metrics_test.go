package kv

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// The store's collector reports the block cache budget and how often the
// apply-batch budget cut a batch short.
func TestCollectorReportsBudgets(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.CacheBytes, cfg.Sync, cfg.MaxBatchBytes = 4<<20, false, 1
	s, err := Open(cfg)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	_, err = s.Apply([]Entry{{Index: 1, Data: set("a", "1")}, {Index: 2, Data: set("b", "2")}, {Index: 3, Data: set("c", "3")}})
	require.NoError(t, err)

	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if m.GetCounter() != nil {
			got[mf.GetName()] = m.GetCounter().GetValue()
		} else {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	require.Equal(t, float64(4<<20), got["elastickv_kv_block_cache_capacity_bytes"])
	require.Equal(t, float64(2), got["elastickv_kv_apply_batches_committed_early_total"])
	require.Positive(t, got["elastickv_kv_apply_batch_last_bytes"])
	require.Contains(t, got, "elastickv_kv_memtable_bytes")
}
