// Package fuzz holds logkv's cross-cutting fuzz targets: those that drive
// more than one package at once, so they belong beside no single decoder.
//
// FuzzEngines is a differential fuzzer: its input decodes into a sequence of
// operations (Set, Delete, batches, Get, bounded iterators walked both ways
// with seeks, snapshots, clean reopens and simulated crashes through
// vfs.MemFS) that run on the lsm, bitcask and memory engines, each checked
// after every step against its own simple model (a map). The models start
// equal and see the same operations, so while no crash intervenes the engines
// are checked against one another too.
//
// Crash semantics: a crash takes vfs.MemFS.CrashClone (dropping, or for some
// inputs tearing and corrupting, everything unsynced), closes the abandoned
// engine and reopens on the clone. The durable engines must then hold their
// model's state as of some sequence number S with last-synced <= S <=
// last-written, and LastSeq() == S: a prefix of history, never a mix. The
// model then continues from S. The memory engine is not durable, so it skips
// reopens and crashes (restarting it would only test that it is empty).
//
// FuzzRESP feeds arbitrary bytes through the Redis protocol reader the node
// uses (github.com/tidwall/redcon) and checks it never panics and never
// returns more than it was given. The replication wire decoders have their
// own targets in replicate/wire.
//
// Run the seeds with go test ./fuzz/, or fuzz one target:
//
//	go test -run='^$' -fuzz=FuzzEngines -fuzztime=60s ./fuzz
package fuzz
