package lsm

import (
	"strconv"
	"sync/atomic"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/manifest"
)

// metrics are the DB's counters.
type metrics struct {
	gets, writes, writeOps, bytesWritten atomic.Uint64
	walBytes, walSyncs                   atomic.Uint64
	flushes, flushBytes                  atomic.Uint64
	compactions, trivialMoves            atomic.Uint64
	compactBytesIn, compactBytesOut      atomic.Uint64
	stalls, slowdowns, stallNanos        atomic.Uint64
	manifestRotations                    atomic.Uint64

	final *logkv.Metrics // the last metrics, kept by Close
}

// testHooks let tests stop the DB at chosen points (crash tests).
type testHooks struct {
	afterFlushTable       func()
	afterCompactionTables func()
	midManifestRotate     func() // new manifest synced, CURRENT not yet switched
}

// Metrics returns the DB's counters and gauges; after Close, their last
// values.
//
// Detail holds, per level (label "level"), lsm_level_files and
// lsm_level_bytes; and lsm_write_amplification ((flush + compaction bytes
// written) / user bytes written), lsm_flushes_total,
// lsm_flush_bytes_total, lsm_compactions_total,
// lsm_compaction_bytes_in_total, lsm_compaction_bytes_out_total,
// lsm_trivial_moves_total, lsm_write_stalls_total,
// lsm_write_slowdowns_total, lsm_write_stall_seconds_total,
// lsm_block_cache_hits_total, lsm_block_cache_misses_total,
// lsm_block_cache_bytes, lsm_memtable_bytes, lsm_wal_bytes_total,
// lsm_wal_syncs_total, lsm_open_tables.
func (d *DB) Metrics() logkv.Metrics {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m.final != nil {
		return *d.m.final
	}
	return *d.metricsLocked()
}

func (d *DB) metricsLocked() *logkv.Metrics {
	m := &logkv.Metrics{
		Gets:         d.m.gets.Load(),
		Writes:       d.m.writes.Load(),
		WriteOps:     d.m.writeOps.Load(),
		BytesWritten: d.m.bytesWritten.Load(),
	}
	add := func(name, help string, counter bool, v float64, labels map[string]string) {
		m.Detail = append(m.Detail, logkv.Metric{Name: name, Help: help, Counter: counter, Value: v, Labels: labels})
	}
	v := d.current
	var keys int64
	for lvl := 0; lvl < manifest.NumLevels; lvl++ {
		size := v.LevelSize(lvl)
		m.DiskBytes += int64(size)
		l := map[string]string{"level": strconv.Itoa(lvl)}
		add("lsm_level_files", "Tables in the level.", false, float64(len(v.Levels[lvl])), l)
		add("lsm_level_bytes", "Bytes of the level's tables.", false, float64(size), l)
	}
	var memBytes int64
	mems := append([]*memTable{d.mem}, d.imm...)
	for _, mt := range mems {
		memBytes += mt.memBytes()
		keys += mt.sl.Len()
	}
	m.MemBytes = memBytes
	// An estimate: memtable entries (versions, not keys) plus the tables'
	// entries as of their writing; shadowed versions and tombstones count.
	v.Files(func(_ int, f *manifest.FileMeta) { keys += int64(f.Entries) })
	m.Keys = keys
	m.DiskBytes += int64(d.m.walBytes.Load())
	user := float64(d.m.bytesWritten.Load())
	written := float64(d.m.flushBytes.Load() + d.m.compactBytesOut.Load())
	wa := 0.0
	if user > 0 {
		wa = written / user
	}
	add("lsm_write_amplification", "Bytes written by flushes and compactions per user byte written.", false, wa, nil)
	add("lsm_flushes_total", "Memtable flushes.", true, float64(d.m.flushes.Load()), nil)
	add("lsm_flush_bytes_total", "Bytes written by flushes.", true, float64(d.m.flushBytes.Load()), nil)
	add("lsm_compactions_total", "Compactions that rewrote tables.", true, float64(d.m.compactions.Load()), nil)
	add("lsm_trivial_moves_total", "Compactions that moved a table down a level without rewriting it.", true, float64(d.m.trivialMoves.Load()), nil)
	add("lsm_compaction_bytes_in_total", "Bytes read by compactions.", true, float64(d.m.compactBytesIn.Load()), nil)
	add("lsm_compaction_bytes_out_total", "Bytes written by compactions.", true, float64(d.m.compactBytesOut.Load()), nil)
	add("lsm_write_stalls_total", "Writes that waited for a flush or compaction.", true, float64(d.m.stalls.Load()), nil)
	add("lsm_write_slowdowns_total", "Writes delayed because L0 was filling.", true, float64(d.m.slowdowns.Load()), nil)
	add("lsm_write_stall_seconds_total", "Time writes spent stalled or delayed.", true, float64(d.m.stallNanos.Load())/1e9, nil)
	add("lsm_wal_bytes_total", "Bytes appended to the WAL.", true, float64(d.m.walBytes.Load()), nil)
	add("lsm_wal_syncs_total", "WAL fsyncs (one per group commit).", true, float64(d.m.walSyncs.Load()), nil)
	add("lsm_manifest_rotations_total", "Manifest rewrites.", true, float64(d.m.manifestRotations.Load()), nil)
	add("lsm_memtable_bytes", "Bytes of memtable arenas in use, and their hash indexes.", false, float64(memBytes), nil)
	if d.cache != nil {
		cm := d.cache.Metrics()
		add("lsm_block_cache_hits_total", "Block cache hits.", true, float64(cm.Hits), nil)
		add("lsm_block_cache_misses_total", "Block cache misses.", true, float64(cm.Misses), nil)
		add("lsm_block_cache_bytes", "Bytes of blocks in the cache.", false, float64(cm.Size), nil)
		m.MemBytes += int64(cm.Size)
	}
	add("lsm_open_tables", "Tables open in the table cache.", false, float64(d.tc.len()), nil)
	return m
}
