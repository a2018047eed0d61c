package bitcask

import (
	"slices"
	"unsafe"

	"github.com/logkv/logkv"
)

// Metrics returns the engine's counters and gauges. Detail holds, per data
// file (label file), its size and its live and dead bytes, and for the DB:
// the number of files, keydir memory (total and per key), merges and their
// bytes, syncs, rotations, hints written and the last Open's duration.
func (db *DB) Metrics() logkv.Metrics {
	db.kmu.RLock()
	keys := db.tree.length
	keyBytes, tailBytes := db.tree.keyBytes, db.tree.tailBytes
	leaves, internal, side := db.tree.nodeCount()
	type fileStat struct {
		id               uint32
		size, live, dead int64
	}
	var files []fileStat
	var disk int64
	db.deadMu.Lock()
	for _, df := range db.files {
		files = append(files, fileStat{df.id, df.size, df.liveBytes(), df.deadBytes})
		disk += df.size
	}
	db.deadMu.Unlock()
	db.kmu.RUnlock()
	slices.SortFunc(files, func(a, b fileStat) int { return int(a.id) - int(b.id) })

	// The keydir's memory: its nodes (items, with each key's first 16
	// bytes, inline; internal nodes with their children), the side arrays
	// of nodes that hold keys longer than 17 bytes (tail words, and tail
	// pointers for keys longer than 25), and those long tails' bytes. Sizes are the structs' (a leaf is exactly 2 KiB; the
	// allocator rounds an internal node, 1 in ~40, up 5%, and each tail to
	// its size class). The overhead per key is that less the keys' own
	// bytes, the inline prefix included.
	keydirBytes := int64(leaves+internal)*int64(unsafe.Sizeof(node{})) +
		int64(internal)*int64(unsafe.Sizeof(inode{})-unsafe.Sizeof(node{})) +
		side + tailBytes
	perKey := 0.0
	if keys > 0 {
		perKey = float64(keydirBytes-keyBytes) / float64(keys)
	}
	m := logkv.Metrics{
		Keys:         int64(keys),
		DiskBytes:    disk,
		MemBytes:     keydirBytes + int64(db.opts.BufferSize),
		Gets:         db.stats.gets.Load(),
		Writes:       db.stats.writes.Load(),
		WriteOps:     db.stats.writeOps.Load(),
		BytesWritten: db.stats.bytesWritten.Load(),
	}
	gauge := func(name, help string, v float64, labels map[string]string) {
		m.Detail = append(m.Detail, logkv.Metric{Name: name, Help: help, Value: v, Labels: labels})
	}
	counter := func(name, help string, v uint64) {
		m.Detail = append(m.Detail, logkv.Metric{Name: name, Help: help, Counter: true, Value: float64(v)})
	}
	gauge("bitcask_files", "Data files in use.", float64(len(files)), nil)
	gauge("bitcask_keydir_bytes", "Memory of the keydir: nodes and key bytes.", float64(keydirBytes), nil)
	gauge("bitcask_keydir_overhead_bytes_per_key", "Keydir memory per key, not counting the key's own bytes.", perKey, nil)
	for _, f := range files {
		l := map[string]string{"file": fileName(f.id, dataSuffix)}
		gauge("bitcask_file_bytes", "Size of a data file.", float64(f.size), l)
		gauge("bitcask_file_live_bytes", "Bytes of live records in a data file.", float64(f.live), l)
		gauge("bitcask_file_dead_bytes", "Bytes of dead (overwritten or deleted) records in a data file.", float64(f.dead), l)
	}
	counter("bitcask_merges_total", "Merges committed.", db.stats.merges.Load())
	counter("bitcask_merge_aborts_total", "Merges abandoned (error or Close).", db.stats.mergeAborts.Load())
	counter("bitcask_merge_read_bytes_total", "Bytes of merge input files.", db.stats.mergeBytesIn.Load())
	counter("bitcask_merge_written_bytes_total", "Bytes of merge output files.", db.stats.mergeBytesOut.Load())
	gauge("bitcask_merge_seconds_total", "Time spent in committed merges.", float64(db.stats.mergeNanos.Load())/1e9, nil)
	counter("bitcask_syncs_total", "fsyncs of the active file for durable writes.", db.stats.syncs.Load())
	counter("bitcask_rotations_total", "Active file rotations.", db.stats.rotations.Load())
	counter("bitcask_hints_written_total", "Hint files written.", db.stats.hintsWritten.Load())
	gauge("bitcask_open_seconds", "Duration of the last Open.", float64(db.stats.openNanos.Load())/1e9, nil)
	gauge("bitcask_open_hint_files", "Files the last Open loaded from hints.", float64(db.stats.openHintFiles.Load()), map[string]string{"how": "hint"})
	gauge("bitcask_open_scanned_files", "Files the last Open scanned.", float64(db.stats.openScanFiles.Load()), map[string]string{"how": "scan"})
	gauge("bitcask_open_torn_bytes", "Bytes of torn tail (written, never synced, before a crash) the last Open cut off.", float64(db.stats.openTornBytes.Load()), nil)
	return m
}
