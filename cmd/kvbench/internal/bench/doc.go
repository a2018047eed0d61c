// Package bench measures logkv engines with whole workloads: LevelDB
// db_bench-style benchmarks (fillseq, fillrandom, overwrite, readrandom,
// readseq, readreverse, seekrandom, deleterandom, fillsync) and the YCSB core
// workloads A to F, and replication benchmarks of package replicate
// (replicate-write against unreplicated-write, replicate-lag,
// replicate-catchup: a leader and followers over QUIC on loopback in one
// process; see replication.go). cmd/kvbench is a thin command over it; tests
// drive it directly.
//
// Engines are opened by name through the logkv registry, so any engine whose
// package is imported (for its side effect of registering) can be measured.
// The db_bench benchmarks and YCSB workloads use only a Store (logkv's
// Reader and Writer, and Close), so engines that are not logkv's run through
// the same code once registered with RegisterStore: cmd/kvbench/peers
// registers Pebble, Badger, bbolt, goleveldb and a B-tree that way. The noop
// Store keeps nothing; running it beside real engines measures the driver's
// own cost per operation, which the summary reports.
//
// # State between benchmarks
//
// Benchmarks run in the order given, on one database per engine, and each
// sees what the previous ones left, as in db_bench:
//
//   - fillseq, fillrandom and fillsync start from a fresh, empty database
//     (the engine is closed, its directory removed and reopened) and leave the
//     keys 0..n-1 present (n is -num, or the fillsync count).
//   - overwrite rewrites random keys in 0..n-1; it keeps the key set.
//   - deleterandom deletes random keys (drawn with replacement, so about 63%
//     of them); the key set is afterwards unknown.
//   - readrandom, readseq, readreverse and seekrandom only read. While the key
//     set is known (after a fill), every key they look for must be there with
//     the value written for that key (see valueSource): a miss or a wrong
//     value is an error, counted and reported. readseq and readreverse only
//     move their iterators and sum key and value lengths in their timed
//     loop, as db_bench's does (in the iterator's own loop when it is a
//     ScanRunner, the peers' and noop's, so that kvbench adds no dynamic
//     call to a step); after it they check the counts and the
//     lengths' sum, and verifyScan reads everything again, untimed, and
//     compares every key and value. After deleterandom misses are expected
//     and only counted, and scans check only the order (also untimed).
//   - The YCSB workloads load -num records once per database (the load is
//     reported as its own line) and then run one after another on it; inserts
//     of workloads D and E grow the record count for those that follow.
//
// # Latency
//
// An operation (a Get, a Set, an Apply of a -batch group, a seek, or one
// step of a scan) is timed and recorded in a per-goroutine HDR histogram
// (3 significant digits, 1 ns to 1 minute); the histograms are merged when the
// benchmark ends, so recording never contends. Each goroutine times its
// first 64 operations, then one in Config.LatencyEvery (default 16) drawn at
// random: two clock reads cost about as much as an in-memory engine's whole
// operation, and a random sample of a distribution has its percentiles.
// readseq and readreverse time one step in 16*LatencyEvery (a step is the
// cheapest operation, and its clock reads would be a visible share of the
// fastest engines' figure; see scanSampleEvery). Throughput counts every
// operation. The replication benchmarks time every write. Latencies are
// reported in microseconds. With -batch B > 1 a latency is that of one batch
// of B operations, while ops counts operations.
package bench
