package logkv

// Metrics are an engine's counters and gauges, in the form a node exports
// them. Counters only grow over the engine's open lifetime; gauges are as of
// the call.
type Metrics struct {
	// Keys is the number of live keys (an estimate where Detail says so).
	Keys int64
	// DiskBytes is the size of the engine's files.
	DiskBytes int64
	// MemBytes is the memory the engine holds for data and indexes (not
	// counting Go runtime overhead it cannot see).
	MemBytes int64
	// Gets counts Get calls, on the engine and its snapshots.
	Gets uint64
	// Writes counts committed batches (a Set or Delete is a batch of one).
	Writes uint64
	// WriteOps counts operations within committed batches.
	WriteOps uint64
	// BytesWritten counts the key and value bytes of committed operations.
	BytesWritten uint64
	// Detail holds engine-specific metrics (per level, per file, caches...).
	Detail []Metric
}

// Metric is one engine-specific metric. Name is a Prometheus-style name
// without the logkv_ prefix, in base units (bytes, seconds), ending in _total
// for counters.
type Metric struct {
	Name    string
	Help    string
	Counter bool
	Labels  map[string]string
	Value   float64
}
