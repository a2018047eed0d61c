// Package ordtree is the ordered in-memory map that logkv's memory engine
// (values as the payload) and bitcask's keydir (value locations as the
// payload) share: a copy-on-write B-tree of byte-string keys whose nodes keep
// each key's first 16 bytes inline.
//
// # Node layout
//
// A node keeps its items as parallel arrays (structure of arrays), so that a
// search reads one small contiguous array and nothing else:
//
//	pfx   [MaxItems]prefix  the key's first 16 bytes, zero padded, as two
//	                        big-endian uint64s (hi, lo): 16 bytes an item
//	klens [MaxItems]uint32  the key's length (low 24 bits) and its 17th
//	                        byte, the tail hint (high 8), or 0
//	tails *tailSet          nil until the node holds a key longer than 17
//	                        bytes (a 17-byte key's tail is its hint), and
//	                        never in a tree that finds tails through the
//	                        payload; then a 512-byte side array:
//	  w    [MaxItems]uint64   the key's bytes 18 to 25, zero padded, as a
//	                          big-endian word (the tail word), or 0
//	  long *[MaxItems]*byte   the key's bytes past the 16th (klen-16 of
//	                          them) for a key longer than 25 bytes, or nil;
//	                          allocated only once the node holds one
//	vals  [MaxItems]V       the payload
//
// With a 12-byte payload (bitcask's file, offset and length) a leaf is 2 KiB:
// a 24-byte header and 63 items of 32 bytes. An internal node (Inode) is a
// node with its 64 children inline after it, so a descent takes no extra
// cache miss for a separate child array. A key of at most 17 bytes costs 20
// bytes plus its payload in its node and no allocation of its own; one of 18
// to 25 bytes adds its 8-byte tail word, in the side array, which the
// collector does not scan past its first word, and still no allocation of its
// own; a longer key adds an 8-byte pointer slot and its tail. A Redis
// client's 16-byte key is 19 bytes behind kvnode's one-byte database code
// and two-byte hash slot.
//
// In a tree larger than the CPU caches, the cost of a lookup is its cache
// misses, so search does not bisect (each step of a bisection waits for the
// line the step before chose): it compares every 8th prefix, whose loads do
// not depend on each other and so are fetched in parallel, then the 7 or
// fewer prefixes after the last one below the key.
//
// A lookup's misses still come one after another, a node's after its
// parent's. GetBatch looks many keys up together, level by level, and
// prefetches each key's next node (PREFETCHT0 on amd64, which neither waits
// nor faults) as soon as its parent's search names it, so that the keys'
// misses at a level are in flight at once; the engines' Prefetch (a hint
// before a pipeline's Gets) is built on it.
//
// Order is exactly bytewise (bytes.Compare): compare hi, then lo (unsigned,
// which for big-endian words is the bytewise order of the 16 padded bytes),
// then, if both keys are longer than 16 bytes, their tails (the hint, then
// the tail words, padded the same way, then, if both are longer than 25
// bytes, the whole tails), else their lengths. The padding is sound: where two padded prefixes first differ,
// either both bytes are real, or the zero is padding and its key, shorter,
// is a prefix of the other and so sorts first, as the nonzero byte says.
// Where they are equal, the shorter key (if either is at most 16 bytes long)
// is a prefix of the longer, so length decides.
//
// # Copy-on-write
//
// Every node carries the version of the tree that created it. Snapshot
// returns the current root as a View and bumps the version, which is O(1)
// whatever the size of the tree. A writer then copies each node it would
// change that an open view may still read (one whose version is at most
// Shared), and the copy's parent to point at it, up to the root (path
// copying); nodes it created itself, or that no open view can reach, it
// changes in place. With no view open a write allocates nothing but splits.
// The owner tells the tree, with SetShared, the newest version still held by
// an open view, so that once the views are gone writes are in place again.
//
// # Arenas
//
// A tree made by New keeps its nodes in the Go heap, and the collector frees
// what views no longer reach. One made by NewIn keeps them in an Arena,
// outside the heap, so that they count neither toward the heap the
// collector lets grow to twice the live data nor toward its marking work;
// the tree then frees nodes itself: a node only the tree can reach (merged
// away, a collapsed root) at once, a node a copy replaced (which a view may
// still read) by retiring it with the tree's version, for the owner's
// Arena.Reclaim to free once the views older than that are closed. The
// memory engine uses an arena; bitcask's keydir, whose clones are not
// tracked, the heap.
//
// A Tree is not safe for concurrent use: its owner guards it with a lock. A
// View's nodes are never changed, so it may be read by any number of
// goroutines while the tree is written. Tails are never written after they
// are made, so nodes copied for copy-on-write share them.
package ordtree
