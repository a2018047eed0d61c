// Package memory is logkv's ordered in-memory engine, with MVCC snapshots.
//
//	import _ "github.com/logkv/logkv/memory"
//
//	e, err := logkv.Open("memory", "", nil)
//
// or, for the concrete type, memory.Open("", nil).
//
// # Durability
//
// None. The engine keeps nothing on disk and nothing across Close: the
// directory given to Open is ignored, WriteOptions.Sync and Sync are accepted
// and do nothing. Under a node, the node's commit log and checkpoints make the
// data durable; LastSeq tells the node where to replay from (0 after Open).
//
// # Data structure
//
// The keys live in internal/ordtree's copy-on-write B-tree, the one bitcask's
// keydir uses too: up to 63 items per node, kept as parallel arrays, each
// item a key's first 16 bytes inline (a search compares them and touches
// nothing else), its length, and its payload: a pointer to one allocation
// holding the key's and the value's lengths, the key and the value, which the
// tree owns and never changes (an overwrite installs a new one). A key longer
// than 16 bytes also has a pointer to its tail, inside that same allocation.
//
// The tree is copy-on-write by versions: every node carries the version of
// the tree that created it. Taking a snapshot (or an iterator, which is a
// snapshot) keeps the current root and bumps the version, which is O(1)
// whatever the size of the data. A writer then copies each node it would
// change that an open snapshot may still read, and the copy's parent to
// point at it, up to the root (path copying); nodes it created itself, or
// that no open snapshot can reach, it changes in place. With no snapshot open
// a write allocates only its key and value. A snapshot's nodes are never
// changed, so it reads them without a lock; when it is closed and dropped,
// the garbage collector reclaims whatever only it kept alive, which is how
// deleted and overwritten data is freed.
//
// Deletes rebalance: a node left below half full borrows an item from a
// sibling or merges with it. Keys inserted in ascending order fill nodes
// completely instead of splitting them in half.
//
// # Concurrency
//
// Writers (Set, Delete, Apply) serialize on one lock, and change the tree in
// place under it; Get shares that lock with other readers. Snapshots and
// iterators take the lock only to be created and closed. Every batch is
// applied under the lock, so readers see all of it or none.
//
// # Memory
//
// A key costs its allocation (an 8-byte header, key and value bytes, rounded
// up to the runtime's size class: 128 bytes for a 16-byte key and a 100-byte
// value) plus its 28-byte slot in a node (16 bytes of prefix, the length, the
// pointer), over the nodes' fill factor, plus the inner nodes. Measured with
// runtime.MemStats after a GC at 1M such keys (BenchmarkMemoryPerKey): 176
// bytes per key after random inserts, 162 after ascending ones. (The B-tree
// before ordtree, with 16-byte slots that held no prefix, took 152 and 145:
// the prefixes cost about 20 bytes a key and buy the search speed.)
// Metrics.MemBytes counts key and value bytes (without the header and the
// size-class rounding) plus node sizes of the live tree, 158 and 146 bytes
// per key there; data kept only for open snapshots is not counted.
//
// Deleted and overwritten data is garbage as soon as no open snapshot or
// iterator can reach it: the tree holds no tombstones and no old versions.
package memory
