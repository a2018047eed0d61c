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
// nothing else), its length, and its payload: a pointer into one record
// holding the key's and the value's lengths, the key and the value, which the
// tree owns and never changes (an overwrite installs a new one). A key longer
// than 16 bytes is compared past its prefix through that pointer.
//
// Nodes and records live in an ordtree.Arena: memory the engine maps itself,
// outside the Go heap. The collector neither scans it nor counts it toward
// the heap it lets grow to twice the live data before collecting, so the
// engine's data costs its size once in RSS, not up to twice, and a
// collection's work does not grow with the number of keys. The price is
// freeing by hand: a record or node that a write replaces is freed at once
// when no snapshot or iterator is open, else retired with the tree's version
// and freed when the last reader that could see it is closed (DB.release).
// Get copies the value before it releases the read lock, since a writer may
// free the record right after.
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
// A key costs its record (an 8-byte header, key and value bytes, rounded up
// to 8: 128 bytes for a 16-byte key and a 100-byte value) plus its 28-byte
// slot in a node (16 bytes of prefix, the length, the pointer), over the
// nodes' fill factor (87% after random inserts: a full leaf spills into a
// sibling before it splits), plus the inner nodes. Measured at 1M such keys
// (BenchmarkMemoryPerKey, Metrics.MemBytes, which is the arena's mapped
// bytes): 164 bytes per key after random inserts, 159 after ascending ones,
// and the Go heap holds none of it. (Before the arena the live heap was 176
// and 162 bytes per key, and the process's RSS up to twice that between
// collections. docs/keyspace.md has kvnode's RSS against redis-server's.)
//
// A reader that is dropped without Close keeps what it could read from
// being freed: snapshots have a runtime cleanup that releases them, and an
// iterator must be closed.
//
// Deleted and overwritten data is freed as soon as no open snapshot or
// iterator can reach it: the tree holds no tombstones and no old versions.
package memory
