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
// The node's Redis protocol parser has its own target (FuzzParseRequest in
// node), as the replication wire decoders have theirs in replicate/wire.
//
// Run the seeds with go test ./fuzz/, or fuzz one target:
//
//	go test -run='^$' -fuzz=FuzzEngines -fuzztime=60s -fuzzminimizetime=10x ./fuzz
//
// A FuzzEngines execution is slow (three engines, up to 300 steps, a full
// scan of each after every step), so minimizing each new interesting input
// with the default -fuzzminimizetime=60s stalls the workers for most of a
// short run; -fuzzminimizetime=10x keeps them fuzzing. A watchdog turns an
// execution that hangs for 30 s into a failure with every goroutine's stack,
// since the fuzzer itself does not detect hangs.
//
// FuzzNodeCommands sends decoded commands with arbitrary arguments to an
// in-process node on the memory engine and requires a reply to each.
package fuzz
