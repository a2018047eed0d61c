package commitlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
)

// readChunk is how much a Reader reads from a segment at a time.
const readChunk = 256 << 10

// Reader returns the log's durable records in order from a starting seq, and
// follows the tail as it grows. It belongs to one goroutine at a time.
type Reader struct {
	l    *Log
	next uint64 // seq of the next record to return
	gen  uint64

	seg   *segment
	f     vfs.File
	fOff  int64 // file offset of buf[end]
	buf   []byte
	pos   int
	end   int
	bufAt int64 // file offset of buf[0]

	err error
}

// NewReader returns a reader whose first record is from. from may be
// LastSeq()+1 (the reader then waits for the next record); a from before
// FirstSeq() gives ErrTrimmed.
func (l *Log) NewReader(from uint64) (*Reader, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, logkv.ErrClosed
	}
	if from < l.segs[0].first || from == 0 {
		return nil, fmt.Errorf("%w: seq %d, the log starts at %d", ErrTrimmed, from, l.segs[0].first)
	}
	if from > l.last+1 {
		return nil, fmt.Errorf("commitlog: reader from seq %d, past the next seq %d", from, l.last+1)
	}
	return &Reader{l: l, next: from, gen: l.gen}, nil
}

// NextSeq returns the seq of the record the next call to Next returns.
func (r *Reader) NextSeq() uint64 { return r.next }

// Next returns the next durable record, waiting for it if needed until ctx is
// done or the log is closed (logkv.ErrClosed). The record's Batch is valid
// until the next call. Errors are sticky: ErrTrimmed if a segment it needed
// was removed, ErrTruncated if the log was cut under it, and errors wrapping
// logkv.ErrCorrupt. A ctx error is not sticky.
func (r *Reader) Next(ctx context.Context) (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	for {
		at := r.bufAt + int64(r.pos)
		rec, ok, err := r.parse()
		if err != nil {
			r.fail(err)
			return Record{}, err
		}
		if ok {
			if rec.Seq < r.next {
				continue // seeking within the first segment
			}
			if rec.Seq != r.next {
				err := logkv.CorruptError(r.seg.path, at, "record has seq %d, want %d", rec.Seq, r.next)
				r.fail(err)
				return Record{}, err
			}
			r.next++
			return rec, nil
		}
		wait, err := r.fill()
		if err != nil {
			r.fail(err)
			return Record{}, err
		}
		if wait == nil {
			continue
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return Record{}, ctx.Err()
		}
	}
}

func (r *Reader) fail(err error) {
	r.err = err
	r.Close()
	r.err = err
}

// fill reads more bytes into the buffer, moving to the next segment when the
// current one is done. It returns a channel to wait on when there is nothing
// durable to read yet.
func (r *Reader) fill() (<-chan struct{}, error) {
	l := r.l
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, logkv.ErrClosed
	}
	if l.gen != r.gen {
		l.mu.Unlock()
		return nil, ErrTruncated
	}
	if r.seg == nil {
		if r.next > l.durable {
			ch := l.notify
			l.mu.Unlock()
			return ch, nil
		}
		i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].first > r.next }) - 1
		if i < 0 {
			first := l.segs[0].first
			l.mu.Unlock()
			return nil, fmt.Errorf("%w: seq %d, the log starts at %d", ErrTrimmed, r.next, first)
		}
		r.seg = l.segs[i]
		// Records start after the segment's header, which Open checked (or
		// the log wrote).
		r.fOff, r.pos, r.end, r.bufAt = r.seg.hdr, 0, 0, r.seg.hdr
	}
	seg := r.seg
	sealed := seg != l.segs[len(l.segs)-1]
	limit := seg.syncedSize
	ch := l.notify
	l.mu.Unlock()

	if r.f == nil {
		f, err := l.fs.Open(seg.path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: segment %s was removed", ErrTrimmed, seg.path)
		}
		if err != nil {
			return nil, fmt.Errorf("commitlog: %w", err)
		}
		r.f = f
	}
	if r.fOff < limit {
		// Keep the unparsed tail, then read after it.
		n := copy(r.buf, r.buf[r.pos:r.end])
		r.bufAt += int64(r.pos)
		r.pos, r.end = 0, n
		want := min(limit-r.fOff, readChunk)
		if need := r.frameNeed(); need > n+int(want) {
			want = int64(need - n)
		}
		if cap(r.buf) < n+int(want) {
			nb := make([]byte, n+int(want))
			copy(nb, r.buf[:n])
			r.buf = nb
		}
		r.buf = r.buf[:cap(r.buf)]
		m, err := r.f.ReadAt(r.buf[n:n+int(want)], r.fOff)
		if m < int(want) {
			return nil, fmt.Errorf("commitlog: read %s at %d: %d of %d bytes: %v", seg.path, r.fOff, m, want, err)
		}
		r.end += m
		r.fOff += int64(m)
		return nil, nil
	}
	if sealed {
		if r.pos != r.end {
			return nil, logkv.CorruptError(seg.path, r.bufAt+int64(r.pos), "partial record at the end of a sealed segment")
		}
		r.f.Close()
		r.f, r.seg = nil, nil
		return nil, nil
	}
	return ch, nil
}

// frameNeed returns the buffered bytes the next frame needs, as far as the
// buffer tells.
func (r *Reader) frameNeed() int {
	if r.end-r.pos < record.HeaderSize {
		return record.HeaderSize
	}
	n := binary.LittleEndian.Uint32(r.buf[r.pos+4:])
	if n > maxSegmentPayload {
		return record.HeaderSize
	}
	return record.HeaderSize + int(n)
}

// parse decodes the next whole frame in the buffer, if there is one.
func (r *Reader) parse() (Record, bool, error) {
	avail := r.end - r.pos
	if avail < record.HeaderSize {
		return Record{}, false, nil
	}
	b := r.buf[r.pos:r.end]
	n := binary.LittleEndian.Uint32(b[4:])
	if n > maxSegmentPayload {
		return Record{}, false, logkv.CorruptError(r.seg.path, r.bufAt+int64(r.pos), "record length %d over the limit", n)
	}
	if avail < record.HeaderSize+int(n) {
		return Record{}, false, nil
	}
	frame := b[:record.HeaderSize+int(n)]
	if record.Checksum(frame[4:], r.seg.salt) != binary.LittleEndian.Uint32(frame) {
		return Record{}, false, logkv.CorruptError(r.seg.path, r.bufAt+int64(r.pos), "checksum mismatch")
	}
	_, rec, err := decodeSegmentRecord(frame[record.HeaderSize:])
	if err != nil {
		return Record{}, false, logkv.CorruptError(r.seg.path, r.bufAt+int64(r.pos), "%v", err)
	}
	r.pos += len(frame)
	return rec, true, nil
}

// Close releases the reader. Calling it twice is safe.
func (r *Reader) Close() error {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	if r.err == nil {
		r.err = logkv.ErrClosed
	}
	return nil
}
