package lsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/groupsync"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/vfs"
)

// # WAL record payload
//
// A WAL segment (file NNNNNN.log) is a sequence of internal/record frames.
// Each frame's payload is one committed batch:
//
//	offset  size  field
//	0       8     seq: the batch's sequence number, uint64 little-endian
//	8       8     synced: the segment's synced length when the record was
//	              appended, uint64 little-endian
//	16      n     the batch's encoding (logkv.Batch: version, count, ops)
//
// Every operation of the batch carries seq in its internal key. Records
// appear in strictly increasing seq order, within a segment and across
// segments (a segment's number orders it). A segment closed cleanly (at
// rotation or Close, or sealed by recovery after cutting its torn tail)
// ends with a marker record, seq 0 and no batch, whose synced field is the
// synced length before it. Every segment but the newest ends with one, so
// a segment cut short at a record boundary is told from a whole one.
//
// The synced field is what tells a torn tail from corruption when a crash
// damaged unsynced bytes in place (a torn sector) and intact records follow
// the damage: a damaged record at offset X followed by a valid record whose
// synced field exceeds X was synced, so the damage is corruption
// (logkv.ErrCorrupt); if no later record says X was synced, X was never
// acknowledged as synced and recovery cuts the segment there.
const walHeaderSize = 16

// maxWALPayload bounds a WAL frame's payload for the record reader.
const maxWALPayload = walHeaderSize + logkv.MaxBatchSize

// walFlushSize is how much unsynced data the WAL buffers before writing it to
// the file without a sync, so a stream of unsynced writes reaches the OS's
// page cache in large writes.
const walFlushSize = 256 << 10

// decodeWALRecord parses a WAL payload of file name at offset off. A marker
// record returns seq 0 and a nil batch.
func decodeWALRecord(payload []byte, name string, off int64) (seq, synced uint64, b *logkv.Batch, err error) {
	if len(payload) < walHeaderSize {
		return 0, 0, nil, logkv.CorruptError(name, off, "WAL record of %d bytes is shorter than its header", len(payload))
	}
	seq = binary.LittleEndian.Uint64(payload)
	synced = binary.LittleEndian.Uint64(payload[8:])
	if seq == 0 && len(payload) == walHeaderSize {
		return 0, synced, nil, nil
	}
	if seq == 0 || seq > base.MaxSeq {
		return 0, 0, nil, logkv.CorruptError(name, off, "WAL record with sequence number %d", seq)
	}
	b, err = logkv.DecodeBatch(payload[walHeaderSize:])
	if err != nil {
		return 0, 0, nil, logkv.CorruptError(name, off, "WAL record batch: %v", err)
	}
	if b.Empty() {
		return 0, 0, nil, logkv.CorruptError(name, off, "WAL record with an empty batch")
	}
	return seq, synced, b, nil
}

// appendWALPayload appends a record's payload to dst.
func appendWALPayload(dst []byte, seq, synced uint64, repr []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = binary.LittleEndian.AppendUint64(dst, synced)
	return append(dst, repr...)
}

// walWriter appends records to one WAL segment, with group commit.
//
// Appends copy the record into an in-memory buffer under mu (the DB's commit
// lock is held too, so records are in seq order). A writer that needs its
// record durable calls syncTo with the record's end offset, which groups
// through internal/groupsync: the first such writer leads a round, takes the
// whole buffer (syncFlush), writes it with one Write and one Sync outside the
// lock (syncRound), then wakes everyone waiting together; those it covered
// return, and one of the others leads the next round, whose sync covers every
// record appended meanwhile. N concurrent syncing writers thus share one
// fsync instead of paying one each.
type walWriter struct {
	fs   vfs.FS
	f    vfs.File
	num  uint64
	name string

	group   *groupsync.Group[walRound]
	syncers atomic.Int64 // goroutines in syncTo
	synced  atomic.Int64 // offset up to which the data is durable

	mu       sync.Mutex
	cond     sync.Cond
	buf      []byte
	spare    []byte
	scratch  []byte
	appended int64 // offset after the last appended record
	written  int64 // offset up to which the file holds the data
	writing  bool  // a write (and maybe a sync) is in flight outside mu
	err      error // sticky: the segment failed
	closed   bool

	bytes *atomic.Uint64 // the DB's WAL byte counter
	syncs *atomic.Uint64 // the DB's WAL sync counter
}

func newWALWriter(fs vfs.FS, f vfs.File, num uint64, name string) *walWriter {
	w := &walWriter{fs: fs, f: f, num: num, name: name}
	w.cond.L = &w.mu
	w.group = groupsync.New(func() uint64 { return uint64(w.synced.Load()) }, w.syncFlush, w.syncRound)
	return w
}

// append adds one record and returns its end offset. The caller holds the
// DB's commit lock, which orders records by seq.
func (w *walWriter) append(seq uint64, repr []byte) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.scratch = appendWALPayload(w.scratch[:0], seq, uint64(w.synced.Load()), repr)
	n := len(w.buf)
	w.buf = record.Append(w.buf, w.scratch)
	w.appended += int64(len(w.buf) - n)
	if w.bytes != nil {
		w.bytes.Add(uint64(len(w.buf) - n))
	}
	if len(w.buf) >= walFlushSize && !w.writing {
		// Write without syncing, to bound the buffer.
		w.writeLocked(false)
	}
	return w.appended, w.err
}

// writeLocked writes the buffer (and syncs if sync) with mu released during
// the I/O. The caller holds mu and has checked !w.writing.
func (w *walWriter) writeLocked(sync bool) {
	buf, end := w.takeLocked()
	w.mu.Unlock()
	err := w.write(buf, sync)
	w.mu.Lock()
	w.doneLocked(buf, end, sync, err)
}

// takeLocked starts a write outside mu: it takes the buffer and returns it
// with the offset it ends at. The caller holds mu and has checked !w.writing.
func (w *walWriter) takeLocked() ([]byte, int64) {
	w.writing = true
	buf, end := w.buf, w.appended
	w.buf = w.spare[:0]
	return buf, end
}

// write writes buf to the file and syncs it if sync. mu is not held.
func (w *walWriter) write(buf []byte, sync bool) error {
	var err error
	if len(buf) > 0 {
		_, err = w.f.Write(buf)
	}
	if err == nil && sync {
		err = w.f.Sync()
	}
	return err
}

// doneLocked ends a write takeLocked started: err is its outcome. The caller
// holds mu.
func (w *walWriter) doneLocked(buf []byte, end int64, sync bool, err error) {
	w.spare = buf[:0]
	w.writing = false
	if err != nil {
		w.err = fmt.Errorf("lsm: WAL %s: %w", w.name, err)
	} else {
		w.written = end
		if sync {
			w.synced.Store(end)
			if w.syncs != nil {
				w.syncs.Add(1)
			}
		}
	}
	w.cond.Broadcast()
}

// syncTo returns once the data up to offset end is durable.
func (w *walWriter) syncTo(end int64) error {
	if w.synced.Load() >= end {
		return nil
	}
	w.syncers.Add(1)
	defer w.syncers.Add(-1)
	return w.group.SyncTo(uint64(end))
}

// walRound is what one group-commit round writes and syncs: the buffer as
// the round's leader took it, ending at offset end.
type walRound struct {
	buf []byte
	end int64
}

// syncFlush starts a round (the group's leader alone calls it): it takes
// the buffer, once a write in flight (append's, to bound the buffer) ends.
func (w *walWriter) syncFlush(uint64) (walRound, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	yielded := false
	for {
		if w.err != nil {
			return walRound{}, w.err
		}
		if w.closed {
			// close synced everything appended (or failed, setting err):
			// the round has nothing to do.
			return walRound{end: -1}, nil
		}
		if w.writing {
			w.cond.Wait()
			continue
		}
		if !yielded && w.syncers.Load() > 1 {
			// Before leading while others sync too, let writers just
			// released by the previous round append their next records, so
			// this round covers them too: without it, groups stay small,
			// alternating between those released and those that waited.
			yielded = true
			w.mu.Unlock()
			runtime.Gosched()
			w.mu.Lock()
			continue
		}
		buf, end := w.takeLocked()
		return walRound{buf: buf, end: end}, nil
	}
}

// syncRound writes and syncs the round's buffer outside mu. A failure fails
// the segment.
func (w *walWriter) syncRound(r walRound) error {
	if r.end < 0 {
		return nil // closed
	}
	err := w.write(r.buf, true)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.doneLocked(r.buf, r.end, true, err)
	if err != nil {
		return w.err
	}
	return nil
}

// close writes and syncs everything appended and closes the file.
func (w *walWriter) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	for w.writing {
		w.cond.Wait()
	}
	if w.err == nil {
		// The marker records that everything before it is durable.
		w.scratch = appendWALPayload(w.scratch[:0], 0, uint64(w.appended), nil)
		n := len(w.buf)
		w.buf = record.Append(w.buf, w.scratch)
		w.appended += int64(len(w.buf) - n)
		w.writeLocked(true)
	}
	w.closed = true
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

// replayWAL reads the records of one WAL segment, calling fn for each.
//
// last says whether the segment is the newest. Older segments were synced
// whole, ending with a closing marker, before the next one started: any
// damage in them, or a missing marker (the file was cut short at a record
// boundary), is corruption. The newest segment returns how it ends, for the
// caller to seal (sealWAL) once recovery's other checks pass: its valid
// records end at tail.off, the bytes after it are a torn tail (damage past
// the last offset a record says was synced), and tail.closed says whether
// it ends with a marker.
func replayWAL(fs vfs.FS, path, name string, last bool, fn func(seq uint64, b *logkv.Batch) error) (tail *tailCut, err error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lsm: open WAL %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("lsm: stat WAL %s: %w", name, err)
	}
	r := record.NewReader(f, name, fi.Size(), maxWALPayload)
	closed := false
	for {
		off := r.Offset()
		payload, err := r.Next()
		if err == io.EOF {
			if !last && !closed {
				return nil, logkv.CorruptError(name, off, "WAL segment that is not the last ends without its closing marker: it was cut short")
			}
			return &tailCut{name: name, off: off, size: off, closed: closed}, nil
		}
		torn := errors.Is(err, record.ErrTornTail)
		if !torn && last && errors.Is(err, logkv.ErrCorrupt) {
			// Valid records follow the damage: it is a torn tail unless one
			// of them says the damaged offset was synced.
			synced, serr := laterSynced(f, off, fi.Size())
			if serr != nil {
				return nil, serr
			}
			torn = synced <= off
		}
		if torn {
			if !last {
				return nil, logkv.CorruptError(name, off, "torn record in a WAL segment that is not the last: %v", err)
			}
			return &tailCut{name: name, off: off, size: fi.Size(), why: err}, nil
		}
		if err != nil {
			return nil, err
		}
		seq, _, b, err := decodeWALRecord(payload, name, off)
		if err != nil {
			return nil, err
		}
		closed = b == nil
		if b == nil {
			continue // a marker
		}
		if err := fn(seq, b); err != nil {
			return nil, err
		}
	}
}

// sealWAL cuts the newest segment's torn tail, if any, and ends it with a
// closing marker, if it lacks one, then syncs it: recovery starts a new
// segment after it, and every segment but the newest must end with a
// marker (replayWAL), even if this recovery crashes before it deletes the
// segment.
func sealWAL(fs vfs.FS, dir string, t *tailCut) error {
	if t.off == t.size && t.closed {
		return nil
	}
	f, err := fs.OpenReadWrite(joinPath(dir, t.name))
	if err != nil {
		return fmt.Errorf("lsm: seal WAL %s: %w", t.name, err)
	}
	err = f.Truncate(t.off)
	if err == nil && !t.closed {
		_, err = f.Write(record.Append(nil, appendWALPayload(nil, 0, uint64(t.off), nil)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("lsm: seal WAL %s: %w", t.name, err)
	}
	return nil
}

// laterSynced returns the largest synced field of the valid records that
// start after offset bad, checking every offset (recovery only) with
// internal/record's Finder, in time linear in the segment's tail.
func laterSynced(f io.ReaderAt, bad, size int64) (int64, error) {
	data := make([]byte, size-bad)
	if _, err := f.ReadAt(data, bad); err != nil && err != io.EOF {
		return 0, fmt.Errorf("lsm: read WAL tail: %w", err)
	}
	var best int64
	record.NewFinder(data, maxWALPayload, 0).Each(1, func(off int, p []byte) bool {
		if len(p) < walHeaderSize {
			return false
		}
		d := int64(binary.LittleEndian.Uint64(p[8:]))
		if d > bad+int64(off) {
			// A record's synced field is the synced length when it was
			// appended, never past its own offset: this frame is no record
			// of this segment (one forged inside a value, say), and must
			// not vouch for the damage.
			return false
		}
		best = max(best, d)
		return true
	})
	return best, nil
}
