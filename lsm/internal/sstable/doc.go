// Package sstable writes and reads the lsm engine's sorted string tables:
// immutable files of internal keys (lsm/internal/base) and values, sorted in
// base.Compare order, with a block index, a bloom filter and a checksum on
// every block.
//
// A Writer builds a table from entries added in order; a Reader opens one,
// answers point lookups (Get, through the bloom filter) and hands out
// iterators (Iter) that move both ways and honour user-key bounds. A Cache
// shared by all Readers of a DB holds decompressed data blocks.
//
// # File layout
//
//	data block 0 | trailer
//	...
//	data block n-1 | trailer
//	filter block | trailer      (absent when the table has no filter)
//	properties block | trailer
//	index block | trailer
//	footer                      (64 bytes)
//
// All fixed-width integers are little-endian; varints are
// encoding/binary's unsigned varints (LEB128).
//
// # Block trailer
//
// Every block is followed by a 5-byte trailer:
//
//	offset  size  field
//	0       1     compression: 0 none, 1 snappy, 2 s2, 3 zstd
//	1       4     CRC-32C (Castagnoli, not masked) of the stored block
//	              bytes followed by the compression byte, uint32
//
// The stored bytes are the block compressed with the named algorithm (a
// Snappy or S2 block, or one zstd frame), or the raw block when compression
// would save less than an eighth of it. The checksum is verified on every
// read from the file; blocks served from the Cache were verified when read.
// A block handle is the pair (offset of the stored block in the file, its
// stored length without the trailer), encoded as two varints.
//
// # Blocks
//
// Data, index and properties blocks share one layout. A block is a run of
// entries followed by a restart array:
//
//	entry*  restart[0] ... restart[n-1]  n
//
//	entry:  shared   varint  bytes shared with the previous entry's key
//	        unshared varint  length of the key suffix that follows
//	        vlen     varint  length of the value
//	        key suffix (unshared bytes), value (vlen bytes)
//	restart[i]: uint32, offset of an entry whose shared is 0 (a full key)
//	n:          uint32, the number of restart points
//
// Keys are prefix-compressed against the previous key; every
// RestartInterval-th entry (data blocks; every entry in index and
// properties blocks) is a restart point storing its full key, so a seek
// binary-searches the restart keys and then scans at most one interval, and
// a backward step decodes the current interval once and caches it. The
// first restart point is at offset 0; a block with entries has at least one.
//
// Data block entries are (internal key, value). A data block is cut when its
// uncompressed size reaches WriterOptions.BlockSize.
//
// # Index block
//
// One entry per data block, in order: key = a separator, value = the data
// block's handle. The separator of block i is an internal key >= the
// block's last key and < the next block's first key: a shortened user key
// between the two (with trailer MaxSeq<<8|KindSet, the smallest trailer, so
// that it sorts before every real version of that user key) when one
// exists, else the last key itself. The last block's separator is a short
// successor of its last key. A seek for k reads only the first block whose
// separator is >= k. The index block is compressed like data blocks and
// held in memory by the Reader.
//
// # Filter block
//
// A bloom filter over the table's distinct user keys, in one of two layouts
// named by the footer's format version:
//
//	bits  (m bytes; bit j is bits[j/8] >> (j%8) & 1)
//	k     (1 byte, 1..30: the number of probes)
//
// A user key is hashed to 64 bits with this package's fixed hash (HashKey in
// filter.go: stable across processes and platforms); h1 and h2 are its low
// and high 32 bits. The writer sets k = BloomBitsPerKey * ln 2, rounded, and
// sizes m for BloomBitsPerKey bits per key. The filter block is never
// compressed.
//
// Version 2 (written by this package): a blocked filter. m is a multiple of
// 64, at least 64: the bits are m/64 blocks of 64 bytes (512 bits), and
// every probe of a key falls in one block, so that a lookup touches one
// cache line. The key's block is b = (h2 * (m/64)) >> 32 (0 <= b < m/64);
// with x_0 = h1 and x_{i+1} = x_i * 0x9e3779b9 mod 2^32, probe i (0 <= i <
// k) tests bit 512*b + (x_i >> 23) of the array. The writer rounds m up to
// a multiple of 64 (and down to one when capping the block's size). At 10
// bits a key this gives about 0.95% false positives against version 1's
// 0.85% (TestFilter). A reader copies the bits to memory aligned to 64
// bytes, so that each block is one cache line.
//
// Version 1: probe i (0 <= i < k) tests bit ((h1 + i*h2) mod 2^32) * (8m)
// >> 32 of the whole array (k cache lines for a key present); m >= 1.
//
// # Properties block
//
// A block (restart interval 1, keys sorted byte-wise) mapping property
// names to values, never compressed. Numeric values are one varint:
//
//	logkv.data.blocks      number of data blocks
//	logkv.entries          number of entries
//	logkv.largest          the last internal key (raw bytes; empty if none)
//	logkv.largest.seq      the largest sequence number
//	logkv.raw.key.size     sum of internal key lengths
//	logkv.raw.value.size   sum of value lengths
//	logkv.smallest         the first internal key (raw bytes; empty if none)
//	logkv.smallest.seq     the smallest sequence number
//	logkv.tombstones       number of KindDelete entries
//
// Readers ignore names they do not know and take absent numbers as zero,
// so properties can be added without a new format version.
//
// # Footer
//
// The last 64 bytes of the file:
//
//	offset  size  field
//	0       8     index block offset       uint64
//	8       8     index block length       uint64 (without trailer)
//	16      8     filter block offset      uint64
//	24      8     filter block length      uint64 (0: no filter)
//	32      8     properties block offset  uint64
//	40      8     properties block length  uint64
//	48      4     format version           uint32, 2 (1 still read: see "Filter block")
//	52      4     CRC-32C of bytes 0..51   uint32
//	56      8     magic                    "LOGKVSST"
//
// A reader reads versions 1 and 2 and refuses any other with an error
// wrapping ErrFormat. The two differ only in the filter block's layout.
//
// # Limits
//
// A block, compressed or not, holds at most 40 MiB (enough for one entry
// with the largest key and value the engine accepts); readers refuse larger
// ones as corrupt. The writer caps the filter to fit, and refuses to finish
// a table whose index would not (about a million data blocks).
//
// # Reading
//
// Reader.Get consults the filter, finds the index entry through an in-memory
// summary of the index built at Open (8 bytes of each separator after the
// prefix they share, as integers, searched as a static B-tree of 8-entry
// nodes, one cache line each; index_search.go), then
// reads one data block (from the Cache when it is there) and copies out the
// value: at most two allocations on a cache miss (block, value), one on a
// hit. Iterators decode keys into a reused buffer and values in place;
// Prev decodes the current restart interval once and walks back through
// the cached entries. SeekGE to a key inside the current block skips the
// index. Reader.NewCompactionIter reads the file sequentially in 256 KiB
// chunks into reused buffers and bypasses the cache, so compactions neither
// pay a read per block nor evict readers' blocks; its values, like its keys,
// are valid only until the next move.
//
// A Reader of an OS file maps the whole file read-only (mmap) and reads
// single blocks (a Get's, an iterator's before it sees a scan, the meta
// blocks at Open) from the mapping, checksum and all, without a system
// call; other files (vfs.MemFS, fault-injecting wrappers) and files found
// shorter than the size given to Open are read with ReadAt, as are the
// readahead windows of scans and compactions (pages read once are copied,
// not mapped). Decoded blocks never share memory with the mapping, so
// nothing a Reader returns outlives it. The file pages a process touches
// through mappings count in its resident size (they are the page cache's,
// shared and reclaimable), where pread would have copied them. The mapping
// is advised MADV_RANDOM (a fault reads its page, not the pages around it).
// A page the kernel cannot supply (the file shortened after Open, a disk or
// network filesystem failing the read) raises SIGBUS, which would kill the
// process: each read from the mapping runs with debug.SetPanicOnFault and
// recovers the fault, and the block is read again with ReadAt, which
// reports ErrCorrupt naming file and offset (or the I/O error); a Reader
// that has faulted reads with ReadAt from then on. ReaderOptions.DisableMmap
// turns the mapping off.
//
// # Corruption
//
// Every length read from a file is checked before it is used to slice or
// allocate: block handles against the file, varints and restart offsets
// against their block, decompressed sizes against a fixed bound. Any
// failed check, as any checksum mismatch, is an error wrapping
// logkv.ErrCorrupt that names the file and the offset of the block (or
// footer) at fault; a table never panics its reader and never returns data
// that failed a check.
package sstable
