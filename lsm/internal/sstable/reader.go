package sstable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/mapfault"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/vfs"
)

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	// Cache caches the table's decompressed data blocks; nil reads every
	// block from the file.
	Cache *Cache
	// FileNum is the table's file number, the first half of its blocks'
	// cache keys: distinct tables sharing a Cache need distinct numbers.
	FileNum uint64
	// Name is the file name errors report (corruption names file and
	// offset).
	Name string
	// DisableMmap reads every block with ReadAt (pread) instead of from a
	// read-only mapping of the file. Reads from a mapping save a system
	// call a block, but the pages they touch count in the process's
	// resident size, and a page the kernel cannot supply (the file shrank,
	// a disk or network filesystem failed the read) faults: the Reader
	// recovers the fault and reads that block again with ReadAt, which
	// costs a few ns a mapped read and needs the runtime's
	// debug.SetPanicOnFault. Set it where faults are expected to be common
	// (flaky disks, NFS or FUSE mounts) or resident size is watched.
	DisableMmap bool
}

// ReaderMetrics are a Reader's counters.
type ReaderMetrics struct {
	// FilterHits counts Gets the bloom filter answered alone (the key was
	// certainly absent, no block read).
	FilterHits uint64
	// FilterMisses counts Gets the filter let through for a user key the
	// table did not hold: false positives.
	FilterMisses uint64
	// BlockReads counts blocks read from the file (cache misses included,
	// hits not).
	BlockReads uint64
}

// Reader reads a table. Get, MayContain and NewIter are safe for concurrent
// use; Close must not run concurrently with them.
type Reader struct {
	f        vfs.File
	mapped   []byte      // the file mapped read-only (mapTable), or nil: reads use f.ReadAt
	faulted  atomic.Bool // a read from mapped faulted: reads use f.ReadAt from then on
	size     int64
	name     string
	cache    *Cache
	fileNum  uint64
	index    []byte       // the decompressed index block, held for the Reader's life
	isearch  *indexSearch // point lookups' way into index; nil: index's own search
	indexOff int64        // its offset in the file, for errors
	filter   filter
	hasFlt   bool
	meta     Meta
	dataEnd  uint64 // data blocks end here; the meta blocks follow
	closed   atomic.Bool
	noVerify bool      // fuzzing only: skip checksums
	maxBlock int       // the largest decoded block accepted
	getState sync.Pool // *iterState for Get

	filterHits, filterMisses, blockReads atomic.Uint64
}

// Open reads the footer, index, filter and properties of a table of the
// given size in f. Corruption anywhere is an error wrapping logkv.ErrCorrupt
// naming the file and offset. On success the Reader owns f (Close closes
// it); on error f is left open for the caller.
func Open(f vfs.File, size int64, o ReaderOptions) (*Reader, error) {
	return open(f, size, o, true)
}

// open is Open; verify=false skips block checksums, so that fuzzing reaches
// the decoders behind them.
func open(f vfs.File, size int64, o ReaderOptions, verify bool) (*Reader, error) {
	var m []byte
	if !o.DisableMmap {
		m = mapTable(f, size)
	}
	r, err := load(f, m, size, o, verify)
	if err != nil {
		_ = unmapTable(m) // nothing read from it is kept
	}
	return r, err
}

// load is open with the file's mapping m (nil: none) made.
func load(f vfs.File, m []byte, size int64, o ReaderOptions, verify bool) (*Reader, error) {
	r := &Reader{f: f, mapped: m, size: size, name: o.Name, cache: o.Cache, fileNum: o.FileNum, noVerify: !verify, maxBlock: maxBlockSize}
	if !verify {
		// Fuzzed sizes are not behind a checksum: keep each run cheap.
		r.maxBlock = 1 << 20
	}
	if r.name == "" {
		r.name = fmt.Sprintf("table %06d", o.FileNum)
	}
	if size < footerSize {
		return nil, r.corrupt(0, "file of %d bytes is shorter than a footer (%d)", size, footerSize)
	}
	var fb [footerSize]byte
	if err := r.readAt(fb[:], size-footerSize); err != nil {
		return nil, err
	}
	ft, what := decodeFooter(fb[:])
	if what == whatVersion {
		return nil, fmt.Errorf("%w: %w", ErrFormat, r.corrupt(size-footerSize, "footer: format version %d; this version reads %d to %d",
			binary.LittleEndian.Uint32(fb[48:]), minFormatVersion, formatVersion))
	}
	if what != "" {
		return nil, r.corrupt(size-footerSize, "footer: %s", what)
	}
	metaEnd := uint64(size - footerSize)
	r.dataEnd = metaEnd
	for _, h := range []handle{ft.index, ft.filter, ft.props} {
		if h.length == 0 && h == ft.filter {
			continue // no filter
		}
		if !h.within(metaEnd) {
			return nil, r.corrupt(size-footerSize, "footer: block handle %d+%d outside the file", h.offset, h.length)
		}
		r.dataEnd = min(r.dataEnd, h.offset)
	}

	var err error
	if r.index, err = r.readBlock(ft.index); err != nil {
		return nil, err
	}
	var bi blockIter
	r.indexOff = int64(ft.index.offset)
	if err := bi.init(r.index, true, r.name, r.indexOff); err != nil {
		return nil, err
	}
	r.isearch = newIndexSearch(&bi)
	if ft.filter.length > 0 {
		b, err := r.readBlock(ft.filter)
		if err != nil {
			return nil, err
		}
		if r.filter, r.hasFlt = decodeFilter(b, ft.version); !r.hasFlt {
			return nil, r.corrupt(int64(ft.filter.offset), "filter block of %d bytes is malformed", len(b))
		}
	}
	props, err := r.readBlock(ft.props)
	if err != nil {
		return nil, err
	}
	if err := r.decodeProps(props, int64(ft.props.offset)); err != nil {
		return nil, err
	}
	r.meta.Size = uint64(size)
	return r, nil
}

// within reports whether the block and its trailer end at or before end.
func (h handle) within(end uint64) bool {
	return h.length <= maxBlockSize && h.offset <= end && end-h.offset >= h.length+blockTrailerSize
}

func (r *Reader) corrupt(off int64, format string, args ...any) error {
	return logkv.CorruptError(r.name, off, format, args...)
}

// readAt fills b from off; a file shorter than the table claims is corrupt.
// It reads the file, not the mapping: scans and compactions read ahead
// through it, and pages they read once are better copied than mapped into
// the process (where they would count in its resident size).
func (r *Reader) readAt(b []byte, off int64) error {
	n, err := r.f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return r.corrupt(off, "truncated: read %d of %d bytes", n, len(b))
	}
	return fmt.Errorf("sstable: read %s at %d: %w", r.name, off, err)
}

var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

// readBlock reads the block at h from the file (never from the cache),
// checks its checksum and decompresses it. The result is a new buffer.
func (r *Reader) readBlock(h handle) ([]byte, error) {
	n := int(h.length) + blockTrailerSize
	if r.mapped != nil && h.offset <= uint64(len(r.mapped)) && uint64(len(r.mapped))-h.offset >= uint64(n) && !r.faulted.Load() {
		// Straight from the mapping: decodeBlock's result never shares
		// memory with its input (decompress copies even a raw block), so
		// nothing outlives the mapping.
		if b, ok, err := r.decodeMapped(h, r.mapped[h.offset:h.offset+uint64(n)]); ok {
			return b, err
		}
		// The mapping faulted: ReadAt below reports what the kernel could
		// not supply (a short read as ErrCorrupt, or the I/O error).
	}
	sp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(sp)
	if cap(*sp) < n {
		*sp = make([]byte, n)
	}
	buf := (*sp)[:n]
	if err := r.readAt(buf, int64(h.offset)); err != nil {
		return nil, err
	}
	return r.decodeBlock(h, buf, nil)
}

// decodeMapped is decodeBlock of raw, a slice of the mapping, guarded
// against a fault: a page of the mapping the kernel cannot supply (the file
// was truncated after Open, or the disk failed the page's read) raises
// SIGBUS, which kills a Go process unless the goroutine asked for a panic
// instead (debug.SetPanicOnFault). decodeMapped asks for one, restoring the
// goroutine's previous setting on return, and recovers a fault (a
// runtime.Error with an Addr method): it then marks the Reader faulted, so
// that no later read uses the mapping, and returns ok=false for the caller
// to read the block with ReadAt. Any other panic is raised again.
func (r *Reader) decodeMapped(h handle, raw []byte) (b []byte, ok bool, err error) {
	defer r.recoverFault(&ok, debug.SetPanicOnFault(true))
	b, err = r.decodeBlock(h, raw, nil)
	return b, true, err
}

// recoverFault is decodeMapped's one deferred call (one defer is cheaper
// than two): it restores the goroutine's panic-on-fault setting old and,
// unless the decode returned (*ok), recovers a fault.
func (r *Reader) recoverFault(ok *bool, old bool) {
	debug.SetPanicOnFault(old)
	if *ok {
		return
	}
	e := recover()
	if e == nil {
		return // runtime.Goexit: let it go on
	}
	if !mapfault.Is(e) {
		panic(e)
	}
	r.faulted.Store(true)
	r.blockReads.Add(^uint64(0)) // counted again by the ReadAt
}

// decodeBlock checks the checksum of the stored block raw (with its
// trailer) read from h, and decompresses it into dst's memory if large
// enough, else a new buffer.
func (r *Reader) decodeBlock(h handle, raw, dst []byte) ([]byte, error) {
	r.blockReads.Add(1)
	body, typ := raw[:h.length], raw[h.length]
	if got, want := blockChecksum(body, typ), binary.LittleEndian.Uint32(raw[h.length+1:]); got != want && !r.noVerify {
		return nil, r.corrupt(int64(h.offset), "block checksum mismatch: %#08x, want %#08x", got, want)
	}
	if typ >= numCompressions {
		return nil, r.corrupt(int64(h.offset), "unknown block compression %d", typ)
	}
	b, err := decompress(Compression(typ), body, dst, r.maxBlock)
	if err != nil {
		return nil, r.corrupt(int64(h.offset), "%s block: %v", Compression(typ), err)
	}
	return b, nil
}

// Readahead sizes. A compaction iterator reads readaheadMax at a time; an
// ordinary iterator that has loaded readaheadAfter adjacent blocks in a
// row (a scan) starts reading readaheadMin at a time, doubling up to
// readaheadMax, instead of one block per read.
const (
	readaheadMin   = 64 << 10
	readaheadMax   = 256 << 10
	readaheadAfter = 2
)

// readahead is an iterator's window on the file: the bytes last read ahead,
// and what tells a scan from random access.
type readahead struct {
	size  uint64 // bytes the next refill reads
	max   uint64 // the cap on size
	buf   []byte // file bytes from off
	off   uint64
	block []byte // the reused decode buffer (compaction iterators)
	next  uint64 // the offset just past the last block loaded
	run   int    // consecutive loads of adjacent blocks
}

func (ra *readahead) reset(size, max uint64) {
	buf, block := ra.buf[:0], ra.block[:0]
	if cap(buf) > 2*readaheadMax {
		buf = nil // after a huge block: do not pool the memory
	}
	if cap(block) > 2*readaheadMax {
		block = nil
	}
	*ra = readahead{size: size, max: max, buf: buf, block: block}
}

// note records a load of the block at h and reports whether the loads form
// a scan.
func (ra *readahead) note(h handle) bool {
	if h.offset == ra.next {
		ra.run++
	} else {
		ra.run = 0
		ra.size = readaheadMin
	}
	ra.next = h.offset + h.length + blockTrailerSize
	return ra.run >= readaheadAfter
}

// readaheadBlock returns the data block at h through ra, refilling ra's
// window from h when h is outside it. With reuse the block is decoded into
// ra's buffer and valid until the next call; without, it is a new buffer.
func (r *Reader) readaheadBlock(h handle, ra *readahead, reuse bool) ([]byte, error) {
	if !h.within(r.dataEnd) {
		return nil, r.corrupt(int64(h.offset), "index: data block handle %d+%d outside the data (%d bytes)", h.offset, h.length, r.dataEnd)
	}
	n := h.length + blockTrailerSize
	if h.offset < ra.off || h.offset+n > ra.off+uint64(len(ra.buf)) {
		size := min(max(n, ra.size), r.dataEnd-h.offset)
		if uint64(cap(ra.buf)) < size {
			ra.buf = make([]byte, size)
		}
		ra.buf = ra.buf[:size]
		if err := r.readAt(ra.buf, int64(h.offset)); err != nil {
			ra.buf = ra.buf[:0]
			return nil, err
		}
		ra.off = h.offset
		ra.size = min(2*ra.size, ra.max)
	}
	start := h.offset - ra.off
	var dst []byte
	if reuse {
		dst = ra.block
	}
	b, err := r.decodeBlock(h, ra.buf[start:start+n], dst)
	if err == nil && reuse {
		ra.block = b
	}
	return b, err
}

// dataBlock returns the data block at h, from the cache if it is there,
// else from the file: through ra's window when ra (nil for Get) sees a
// scan, else with one read.
func (r *Reader) dataBlock(h handle, ra *readahead) ([]byte, error) {
	if !h.within(r.dataEnd) {
		return nil, r.corrupt(int64(h.offset), "index: data block handle %d+%d outside the data (%d bytes)", h.offset, h.length, r.dataEnd)
	}
	scan := ra != nil && ra.note(h)
	if r.cache != nil {
		if b := r.cache.get(r.fileNum, h.offset); b != nil {
			return b, nil
		}
	}
	var b []byte
	var err error
	if scan {
		b, err = r.readaheadBlock(h, ra, false)
	} else {
		b, err = r.readBlock(h)
	}
	if err == nil && r.cache != nil {
		r.cache.set(r.fileNum, h.offset, b)
	}
	return b, err
}

func (r *Reader) decodeProps(b []byte, off int64) error {
	var it blockIter
	if err := it.init(b, false, r.name, off); err != nil {
		return err
	}
	num := func(name string, dst *uint64) error {
		v, ok := it.lookup([]byte(name))
		if it.err != nil {
			return it.err
		}
		if !ok {
			return nil
		}
		x, n := binary.Uvarint(v)
		if n <= 0 || n != len(v) {
			return r.corrupt(off, "properties: bad %s", name)
		}
		*dst = x
		return nil
	}
	key := func(name string, dst *[]byte) error {
		v, ok := it.lookup([]byte(name))
		if it.err != nil {
			return it.err
		}
		if !ok || len(v) == 0 {
			return nil
		}
		if !base.Valid(v) {
			return r.corrupt(off, "properties: %s is not an internal key", name)
		}
		*dst = bytes.Clone(v)
		return nil
	}
	m := &r.meta
	for _, err := range []error{
		num(propDataBlocks, &m.DataBlocks),
		num(propEntries, &m.Entries),
		key(propLargest, &m.Largest),
		num(propLargestSeq, &m.LargestSeq),
		num(propRawKeySize, &m.RawKeySize),
		num(propRawValueSize, &m.RawValueSize),
		key(propSmallest, &m.Smallest),
		num(propSmallestSeq, &m.SmallestSeq),
		num(propTombstones, &m.Tombstones),
	} {
		if err != nil {
			return err
		}
	}
	if (m.Entries > 0) != (m.Smallest != nil && m.Largest != nil) {
		return r.corrupt(off, "properties: %d entries but smallest/largest keys %q/%q", m.Entries, m.Smallest, m.Largest)
	}
	return nil
}

// Meta returns the table's metadata, from its properties block. The key
// slices are shared: callers must not modify them.
func (r *Reader) Meta() Meta { return r.meta }

// MayContain consults the bloom filter on a user key: false means the table
// certainly holds no version of it. It is true if the table has no filter.
func (r *Reader) MayContain(ukey []byte) bool {
	return !r.hasFlt || r.filter.mayContain(HashKey(ukey))
}

// iterState is the reusable part of an iterator: two block iterators and
// their buffers.
type iterState struct {
	index, data blockIter
	key         []byte
	ra          readahead
}

func (r *Reader) newState() *iterState {
	if s, _ := r.getState.Get().(*iterState); s != nil {
		return s
	}
	return new(iterState)
}

// Get returns the newest version of ukey with seq <= seq: its value (a new
// copy the caller owns, not nil when found), its kind, and found=false when
// the table has no such version. It consults the bloom filter first.
func (r *Reader) Get(ukey []byte, seq uint64) (value []byte, kind base.Kind, found bool, err error) {
	value, kind, found, err = r.AppendGet(nil, ukey, HashKey(ukey), seq)
	if found && value == nil {
		value = []byte{}
	}
	return value, kind, found, err
}

// AppendGet is Get appending the value found to dst: it returns dst
// extended by the value when found (whatever the kind), and dst itself
// otherwise. h is HashKey(ukey), computed once by a caller that probes
// several tables.
func (r *Reader) AppendGet(dst, ukey []byte, h uint64, seq uint64) (value []byte, kind base.Kind, found bool, err error) {
	if r.closed.Load() {
		return dst, 0, false, logkv.ErrClosed
	}
	if r.hasFlt && !r.filter.mayContain(h) {
		r.filterHits.Add(1)
		return dst, 0, false, nil
	}
	s := r.newState()
	defer r.getState.Put(s)
	s.key = base.AppendInternalKey(s.key[:0], ukey, min(seq, base.MaxSeq), base.KindSet)
	if err := s.index.init(r.index, true, r.name, r.indexOff); err != nil {
		return dst, 0, false, err
	}
	// The first block whose separator is >= the search key holds the entry
	// if any block does; the next is consulted only if separators were not
	// tight (a defensive loop: this package's separators always are).
	var ok bool
	if r.isearch != nil {
		ok = r.isearch.seekGE(&s.index, ukey, s.key)
	} else {
		ok = s.index.SeekGE(s.key)
	}
	for ; ok; ok = s.index.Next() {
		h, hok := decodeHandle(s.index.val)
		if !hok {
			return dst, 0, false, r.corrupt(r.indexOff, "index: bad block handle %x", s.index.val)
		}
		b, err := r.dataBlock(h, nil)
		if err != nil {
			return dst, 0, false, err
		}
		if err := s.data.init(b, true, r.name, int64(h.offset)); err != nil {
			return dst, 0, false, err
		}
		if s.data.SeekGE(s.key) {
			if !bytes.Equal(base.UserKey(s.data.key), ukey) {
				break
			}
			return append(dst, s.data.val...), base.KindOf(s.data.key), true, nil
		}
		if s.data.err != nil {
			return dst, 0, false, s.data.err
		}
	}
	if s.index.err != nil {
		return dst, 0, false, s.index.err
	}
	if r.hasFlt {
		r.filterMisses.Add(1)
	}
	return dst, 0, false, nil
}

// Metrics returns the Reader's counters.
func (r *Reader) Metrics() ReaderMetrics {
	return ReaderMetrics{
		FilterHits:   r.filterHits.Load(),
		FilterMisses: r.filterMisses.Load(),
		BlockReads:   r.blockReads.Load(),
	}
}

// Close closes the file and unmaps it. Later calls return logkv.ErrClosed.
func (r *Reader) Close() error {
	if r.closed.Swap(true) {
		return logkv.ErrClosed
	}
	errU := unmapTable(r.mapped)
	r.mapped = nil
	if err := r.f.Close(); err != nil {
		return err
	}
	return errU
}
