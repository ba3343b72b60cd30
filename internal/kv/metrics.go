package kv

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a Prometheus collector for the store: the Pebble block
// cache and memtables (memory budgets), and the apply-batch budget. It
// reads Pebble's metrics when scraped, never on the apply path.
func (s *Store) Collector() prometheus.Collector { return storeCollector{s} }

var (
	descCacheBytes = prometheus.NewDesc("elastickv_kv_block_cache_bytes",
		"Bytes held by Pebble's block cache.", nil, nil)
	descCacheCapacity = prometheus.NewDesc("elastickv_kv_block_cache_capacity_bytes",
		"Pebble block cache budget (ELASTICKV_PEBBLE_CACHE_MB, --pebble-cache-mb).", nil, nil)
	descMemtableBytes = prometheus.NewDesc("elastickv_kv_memtable_bytes",
		"Bytes allocated to Pebble memtables, flushable large batches included.", nil, nil)
	descLastBatch = prometheus.NewDesc("elastickv_kv_apply_batch_last_bytes",
		"Size of the last committed apply batch (folded writes plus metadata).", nil, nil)
	descEarly = prometheus.NewDesc("elastickv_kv_apply_batches_committed_early_total",
		"Apply batches committed before their last entry because they reached the apply-batch budget (--apply-batch-mb).", nil, nil)
	descUndecodable = prometheus.NewDesc("elastickv_kv_undecodable_entries_total",
		"Committed entries the state machine could not decode (the group stops at the first).", nil, nil)
)

type storeCollector struct{ s *Store }

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCacheBytes, descCacheCapacity, descMemtableBytes, descLastBatch, descEarly, descUndecodable} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	last, early, undecodable := c.s.ApplyStats()
	ch <- prometheus.MustNewConstMetric(descLastBatch, prometheus.GaugeValue, float64(last))
	ch <- prometheus.MustNewConstMetric(descEarly, prometheus.CounterValue, float64(early))
	ch <- prometheus.MustNewConstMetric(descUndecodable, prometheus.CounterValue, float64(undecodable))
	ch <- prometheus.MustNewConstMetric(descCacheCapacity, prometheus.GaugeValue, float64(c.s.cfg.CacheBytes))
	c.s.closeMu.RLock()
	defer c.s.closeMu.RUnlock()
	if c.s.closed {
		return
	}
	m := c.s.db.Metrics()
	ch <- prometheus.MustNewConstMetric(descCacheBytes, prometheus.GaugeValue, float64(m.BlockCache.Size))
	ch <- prometheus.MustNewConstMetric(descMemtableBytes, prometheus.GaugeValue, float64(m.MemTable.Size))
}
