package commitlog

import (
	"fmt"
	"io"
	"slices"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
)

// TrimBefore removes the sealed segments whose records all come before seq.
// The active segment is never removed. Open readers keep reading the files
// they have open; a reader that needs a removed one gets ErrTrimmed.
func (l *Log) TrimBefore(seq uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return logkv.ErrClosed
	}
	n := 0
	for n < len(l.segs)-1 && l.segs[n].last < seq {
		n++
	}
	if n == 0 {
		return nil
	}
	for _, s := range l.segs[:n] {
		if err := l.fs.Remove(s.path); err != nil {
			return fmt.Errorf("commitlog: trim: %w", err)
		}
		l.segs = l.segs[1:]
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("commitlog: trim: %w", err)
	}
	l.wake()
	return nil
}

// TruncateAfter removes every record after seq, so that LastSeq() is seq, and
// drops the epochs that began after seq+1 from the history. seq must not be
// before FirstSeq()-1 (use Reset). Open readers fail with ErrTruncated.
func (l *Log) TruncateAfter(seq uint64) error {
	l.group.Lock()
	defer l.group.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if seq >= l.last {
		return nil
	}
	if seq+1 < l.segs[0].first {
		return fmt.Errorf("%w: truncate after %d, but the log starts at %d", ErrTrimmed, seq, l.segs[0].first)
	}
	if err := l.flushLocked(); err != nil {
		return err
	}
	// The records after seq are going, even if the truncation fails part
	// way: FlushTo must not count them (or others given their seqs) as
	// written.
	l.setFlushed(seq)
	// Nor may Sync's fast path count them durable.
	if l.durable > seq {
		l.durable = seq
		l.durableSeq.Store(seq)
	}
	// Remove whole segments from the newest down, so that a crash leaves a
	// prefix of the log.
	i := len(l.segs) - 1
	for l.segs[i].first > seq+1 {
		if l.f != nil {
			l.f.Close()
			l.f = nil
		}
		if err := l.fs.Remove(l.segs[i].path); err != nil {
			return l.fail(fmt.Errorf("commitlog: truncate: %w", err))
		}
		l.segs = l.segs[:i]
		i--
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("commitlog: truncate: %w", err))
	}
	s := l.segs[i]
	off, err := l.offsetOf(s, seq+1)
	if err != nil {
		return l.fail(err)
	}
	if l.f != nil {
		l.f.Close()
	}
	if err := l.cutTail(s.path, off); err != nil {
		return l.fail(err)
	}
	f, err := l.openActive(s.path)
	if err != nil {
		return err
	}
	l.f = f
	s.size, s.syncedSize, s.last = off, off, seq
	h := slices.Clone(l.history)
	for len(h) > 0 && h[len(h)-1].Seq > seq+1 {
		h = h[:len(h)-1]
	}
	if len(h) != len(l.history) {
		if err := writeHistory(l.fs, l.dir, h); err != nil {
			return l.fail(err)
		}
		l.history = h
	}
	l.last, l.durable = seq, seq
	l.durableSeq.Store(seq)
	l.gen++
	l.wake()
	return nil
}

// offsetOf returns the offset in s of the record with seq (or the end of s
// when seq is s.last+1).
func (l *Log) offsetOf(s *segment, seq uint64) (int64, error) {
	if seq == s.first {
		return s.hdr, nil
	}
	f, err := l.fs.Open(s.path)
	if err != nil {
		return 0, fmt.Errorf("commitlog: %w", err)
	}
	defer f.Close()
	rd := record.NewReader(newBufReaderAt(f, s.size), s.path, s.size, maxSegmentPayload)
	for {
		off := rd.Offset()
		p, err := rd.Next()
		if err == io.EOF {
			if seq == s.last+1 {
				return off, nil
			}
			return 0, fmt.Errorf("commitlog: seq %d not found in %s", seq, s.path)
		}
		if err != nil {
			return 0, err
		}
		if off == 0 {
			rd.SetSalt(s.salt) // the header, checked by Open
			continue
		}
		_, r, err := decodeSegmentRecord(p)
		if err != nil {
			return 0, logkv.CorruptError(s.path, off, "%v", err)
		}
		if r.Seq == seq {
			return off, nil
		}
	}
}

// Reset empties the log so that its next record is next, and replaces its
// history with history (that of the state the caller restored, as of
// next-1). Open readers fail with ErrTruncated.
func (l *Log) Reset(next uint64, history []EpochStart) error {
	if next == 0 {
		return fmt.Errorf("commitlog: reset to seq 0")
	}
	if err := ValidHistory(history); err != nil {
		return fmt.Errorf("commitlog: reset: %w", err)
	}
	l.group.Lock()
	defer l.group.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	l.closeFilesLocked()
	l.wbuf = l.wbuf[:0] // the records it holds are being removed
	l.werr = nil        // and with them what a failed write left to retry
	// Every record is going, even if the reset fails part way: FlushTo must
	// count none (a failed reset leaves the log failed, so nothing is
	// appended after it).
	l.setFlushed(min(l.flushedSeq.Load(), next-1))
	for i := len(l.segs) - 1; i >= 0; i-- {
		if err := l.fs.Remove(l.segs[i].path); err != nil {
			return l.fail(fmt.Errorf("commitlog: reset: %w", err))
		}
	}
	l.segs = nil
	s := l.newSegment(next)
	if err := l.createSegment(s); err != nil {
		return l.fail(err)
	}
	if err := writeHistory(l.fs, l.dir, history); err != nil {
		return l.fail(err)
	}
	f, err := l.openActive(s.path)
	if err != nil {
		return err
	}
	l.f = f
	l.segs = []*segment{s}
	l.history = slices.Clone(history)
	l.last, l.durable = next-1, next-1
	l.durableSeq.Store(next - 1)
	l.setFlushed(next - 1)
	l.gen++
	l.wake()
	return nil
}
