// Package skiplist is the lsm memtable's ordered map: a skiplist of internal
// keys (lsm/internal/base) whose nodes, keys and values live in one
// preallocated arena, after Pebble's arenaskl and Badger's skl.
//
// One goroutine at a time adds entries (the DB's commit path holds a lock
// for that); any number of readers walk the list at the same time without
// locks. Adds publish a node by storing its offset into its predecessors'
// towers with atomic stores, bottom level first, after the node's bytes are
// written; readers load tower entries atomically, so a reader either sees a
// node whole or not at all. Nodes are never removed: a full memtable is
// frozen and flushed, and its arena is freed with it.
//
// AddBatch inserts many entries at once: it searches for up to MaxBatch
// keys together, a step of each in turn with the next node prefetched, so
// that their cache misses overlap, and links them after. In a memtable of
// a million entries an insert's search is a dependent cache miss a level;
// a batch of 16 random keys took a third of the CPU a key of 16 Adds
// (lsm's BenchmarkMemtableApply).
//
// The arena gives the memtable an exact memory bound (its size) and keeps
// the garbage collector out of the write path: an entry is one bump
// allocation and one copy, not a heap object.
package skiplist
