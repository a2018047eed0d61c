package sstable

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/vfs"
)

// WriterOptions configure a Writer. Zero BlockSize and RestartInterval take
// their defaults; zero Compression and BloomBitsPerKey mean what they say (no
// compression, no filter), so a caller wanting the defaults starts from
// DefaultWriterOptions.
type WriterOptions struct {
	// BlockSize is the target uncompressed size of a data block; default
	// 4096. A block is cut at the first entry that reaches it.
	BlockSize int
	// RestartInterval is the number of keys between restart points; default
	// 16. Smaller intervals seek faster and compress keys less.
	RestartInterval int
	// Compression compresses data and index blocks; the default is S2.
	Compression Compression
	// BloomBitsPerKey sizes the table's bloom filter; the default is 10
	// (about 1% false positives). 0 (or less) writes no filter.
	BloomBitsPerKey int

	// formatVersion is the table format version written; 0 means
	// formatVersion. Tests set 1 to write the old format.
	formatVersion uint32
}

// DefaultWriterOptions are the defaults WriterOptions' zero fields take.
var DefaultWriterOptions = WriterOptions{
	BlockSize:       4096,
	RestartInterval: 16,
	Compression:     S2,
	BloomBitsPerKey: 10,
}

func (o WriterOptions) withDefaults() WriterOptions {
	if o.BlockSize <= 0 {
		o.BlockSize = DefaultWriterOptions.BlockSize
	}
	if o.RestartInterval <= 0 {
		o.RestartInterval = DefaultWriterOptions.RestartInterval
	}
	return o
}

// Meta describes a finished table; Writer.Close returns it and
// Reader.Meta reads it back from the properties block.
type Meta struct {
	// Size is the table file's size in bytes.
	Size uint64
	// Smallest and Largest are the table's first and last internal keys
	// (copies); nil for an empty table.
	Smallest, Largest []byte
	// Entries counts the entries, Tombstones the KindDelete ones among them.
	Entries    uint64
	Tombstones uint64
	// SmallestSeq and LargestSeq bound the entries' sequence numbers.
	SmallestSeq, LargestSeq uint64
	// DataBlocks counts the data blocks.
	DataBlocks uint64
	// RawKeySize and RawValueSize sum the entries' key and value lengths
	// before prefix and block compression.
	RawKeySize, RawValueSize uint64
}

// writeBufferSize is how much the Writer gathers before writing to the
// file: fewer, larger writes.
const writeBufferSize = 256 << 10

// Writer writes one table. It is not safe for concurrent use.
type Writer struct {
	f   vfs.File
	o   WriterOptions
	buf []byte // pending file bytes
	off uint64 // file offset of buf[0] plus len(buf): the next block's offset

	data, index  blockWriter
	pending      handle // the last flushed data block, awaiting its index entry
	hasPending   bool
	lastKey      []byte
	sep          []byte
	hbuf         []byte
	compressed   []byte
	hashes       []uint64
	meta         Meta
	err          error
	closed       bool
	compressions [numCompressions]uint64 // blocks stored per compression

	// Early abort (as ZFS does for incompressible data): after
	// earlyAbortAfter blocks in a row that compression did not shrink, the
	// next skip blocks are stored without trying; each probe that fails
	// again doubles the skip, up to earlyAbortMaxSkip, and one that
	// succeeds ends it. Random values then cost no compression work.
	misses   int // blocks in a row compression did not shrink
	skip     int // blocks left to store without trying
	skipNext int // the skip after the next failed probe
	probes   int // blocks compression was tried on (for tests)
}

// Early abort bounds: blocks of 4 KiB give 64 KiB stored raw after the first
// four misses, up to 1 MiB between probes.
const (
	earlyAbortAfter   = 4
	earlyAbortMinSkip = 16
	earlyAbortMaxSkip = 256
)

// NewWriter returns a Writer that writes a table into f, which it owns
// from now on (Close closes it). Keys are internal keys (lsm/internal/base)
// added in strictly increasing base.Compare order.
func NewWriter(f vfs.File, o WriterOptions) *Writer {
	o = o.withDefaults()
	w := &Writer{f: f, o: o}
	w.data.restartInterval = o.RestartInterval
	w.index.restartInterval = 1 // every index entry is a binary-search point
	w.buf = make([]byte, 0, writeBufferSize+o.BlockSize)
	return w
}

// Add appends an entry. ikey must be a valid internal key greater than the
// previous one; the key and value are copied.
func (w *Writer) Add(ikey, value []byte) error {
	if w.closed {
		return logkv.ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if !base.Valid(ikey) {
		return fmt.Errorf("sstable: invalid internal key %q", ikey)
	}
	ukey := base.UserKey(ikey)
	if err := logkv.CheckKey(ukey); err != nil {
		return err
	}
	if err := logkv.CheckValue(value); err != nil {
		return err
	}
	if w.meta.Entries > 0 && base.Compare(w.lastKey, ikey) >= 0 {
		return fmt.Errorf("sstable: key %s added after %s: keys must increase", base.Format(ikey), base.Format(w.lastKey))
	}
	if w.hasPending {
		w.sep = separator(w.sep[:0], w.lastKey, ikey)
		w.addIndex()
	}
	if w.o.BloomBitsPerKey > 0 && (w.meta.Entries == 0 || !bytes.Equal(ukey, base.UserKey(w.lastKey))) {
		w.hashes = append(w.hashes, HashKey(ukey))
	}
	w.data.add(ikey, value)

	seq := base.Seq(ikey)
	if w.meta.Entries == 0 {
		w.meta.Smallest = append([]byte(nil), ikey...)
		w.meta.SmallestSeq, w.meta.LargestSeq = seq, seq
	}
	w.meta.SmallestSeq = min(w.meta.SmallestSeq, seq)
	w.meta.LargestSeq = max(w.meta.LargestSeq, seq)
	w.meta.Entries++
	if base.KindOf(ikey) == base.KindDelete {
		w.meta.Tombstones++
	}
	w.meta.RawKeySize += uint64(len(ikey))
	w.meta.RawValueSize += uint64(len(value))
	w.lastKey = append(w.lastKey[:0], ikey...)

	if w.data.estimatedSize() >= w.o.BlockSize {
		return w.flushData()
	}
	return nil
}

// EstimatedSize returns the bytes written so far plus the pending block's
// uncompressed size: what the table would take if closed now, before the
// index, filter and footer.
func (w *Writer) EstimatedSize() uint64 {
	if w.data.count == 0 {
		return w.off
	}
	return w.off + uint64(w.data.estimatedSize())
}

func (w *Writer) addIndex() {
	w.hbuf = w.pending.append(w.hbuf[:0])
	w.index.add(w.sep, w.hbuf)
	w.hasPending = false
}

func (w *Writer) flushData() error {
	h, err := w.writeBlock(w.data.finish(), w.o.Compression)
	w.data.reset()
	if err != nil {
		return err
	}
	w.pending, w.hasPending = h, true
	w.meta.DataBlocks++
	return nil
}

// writeBlock compresses raw with c (unless that saves too little), appends
// it with its trailer to the write buffer, and returns its handle.
func (w *Writer) writeBlock(raw []byte, c Compression) (handle, error) {
	out, typ := raw, None
	switch {
	case c == None:
	case w.skip > 0:
		w.skip--
	default:
		w.probes++
		out, typ = compress(c, w.compressed, raw)
		if typ != None {
			w.compressed = out[:0]
			w.misses, w.skipNext = 0, 0
			break
		}
		w.misses++
		if w.misses >= earlyAbortAfter {
			w.skipNext = min(max(2*w.skipNext, earlyAbortMinSkip), earlyAbortMaxSkip)
			w.skip = w.skipNext
		}
	}
	w.compressions[typ]++
	h := handle{offset: w.off, length: uint64(len(out))}
	w.buf = append(w.buf, out...)
	w.buf = append(w.buf, byte(typ))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, blockChecksum(out, byte(typ)))
	w.off += uint64(len(out)) + blockTrailerSize
	if len(w.buf) >= writeBufferSize {
		return h, w.flushBuf()
	}
	return h, nil
}

func (w *Writer) flushBuf() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.f.Write(w.buf)
	w.buf = w.buf[:0]
	if err != nil {
		w.err = fmt.Errorf("sstable: write: %w", err)
	}
	return w.err
}

// Close finishes the table (last data block, filter, properties, index,
// footer), syncs the file and closes it. It returns the table's Meta. After
// an error the table is unusable; the file is closed all the same.
func (w *Writer) Close() (Meta, error) {
	if w.closed {
		return Meta{}, logkv.ErrClosed
	}
	w.closed = true
	err := w.finish()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("sstable: close: %w", cerr)
	}
	if err != nil {
		return Meta{}, err
	}
	return w.meta, nil
}

// Abort closes the file without finishing the table, for a caller that
// gives up on it (and removes the file). Safe after Close.
func (w *Writer) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return w.f.Close()
}

func (w *Writer) finish() error {
	if w.err != nil {
		return w.err
	}
	if w.data.count > 0 {
		if err := w.flushData(); err != nil {
			return err
		}
	}
	if w.hasPending {
		w.sep = successor(w.sep[:0], w.lastKey)
		w.addIndex()
	}
	if w.meta.Entries > 0 {
		w.meta.Largest = append([]byte(nil), w.lastKey...)
	}
	var ft footer
	ft.version = formatVersion
	if w.o.formatVersion != 0 {
		ft.version = w.o.formatVersion
	}
	var err error
	if w.o.BloomBitsPerKey > 0 && len(w.hashes) > 0 {
		f := appendFilter(nil, w.hashes, w.o.BloomBitsPerKey, ft.version)
		if ft.filter, err = w.writeBlock(f, None); err != nil {
			return err
		}
	}
	if ft.props, err = w.writeBlock(w.properties(), None); err != nil {
		return err
	}
	index := w.index.finish()
	if len(index) > maxBlockSize {
		w.err = fmt.Errorf("sstable: index of %d bytes exceeds the %d-byte block limit: table too large", len(index), maxBlockSize)
		return w.err
	}
	// The index holds separator keys, not values: compressing it is always
	// worth a try, whatever the data blocks did.
	w.skip = 0
	if ft.index, err = w.writeBlock(index, w.o.Compression); err != nil {
		return err
	}
	w.buf = append(w.buf, ft.encode()...)
	w.off += footerSize
	if err := w.flushBuf(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("sstable: sync: %w", err)
		return w.err
	}
	w.meta.Size = w.off
	return nil
}

// Property names in the properties block, in the (byte-wise) order written.
const (
	propDataBlocks   = "logkv.data.blocks"
	propEntries      = "logkv.entries"
	propLargest      = "logkv.largest"
	propLargestSeq   = "logkv.largest.seq"
	propRawKeySize   = "logkv.raw.key.size"
	propRawValueSize = "logkv.raw.value.size"
	propSmallest     = "logkv.smallest"
	propSmallestSeq  = "logkv.smallest.seq"
	propTombstones   = "logkv.tombstones"
)

func (w *Writer) properties() []byte {
	bw := blockWriter{restartInterval: 1}
	num := func(name string, v uint64) {
		bw.add([]byte(name), binary.AppendUvarint(nil, v))
	}
	num(propDataBlocks, w.meta.DataBlocks)
	num(propEntries, w.meta.Entries)
	bw.add([]byte(propLargest), w.meta.Largest)
	num(propLargestSeq, w.meta.LargestSeq)
	num(propRawKeySize, w.meta.RawKeySize)
	num(propRawValueSize, w.meta.RawValueSize)
	bw.add([]byte(propSmallest), w.meta.Smallest)
	num(propSmallestSeq, w.meta.SmallestSeq)
	num(propTombstones, w.meta.Tombstones)
	return bw.finish()
}
