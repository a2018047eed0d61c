package commitlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
)

// writable returns why the log cannot take a new record, if it cannot: it
// is closed or failed, or records a failed write left buffered still cannot
// be written (it tries once more first). A new record must not queue behind
// records that may never reach the disk: its writer would wait with them,
// and the log would grow a buffer it cannot write. l.mu is held.
func (l *Log) writable() error {
	if err := l.usable(); err != nil {
		return err
	}
	if l.werr != nil && len(l.wbuf) > 0 {
		return l.flushLocked()
	}
	return nil // a failed roll is tried again by the append
}

// Append writes batch (a non-empty logkv.Batch encoding) as the next record,
// in the current epoch, and returns its seq. The record is not durable until
// Sync(seq) returns.
func (l *Log) Append(batch []byte) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return 0, err
	}
	if len(l.history) == 0 {
		return 0, ErrNoEpoch
	}
	r := Record{Seq: l.last + 1, Epoch: l.history[len(l.history)-1].Epoch, Batch: batch}
	if err := l.write(r); err != nil {
		return 0, err
	}
	return r.Seq, nil
}

// AppendRecord writes a record received from a leader. r.Seq must be
// LastSeq()+1 and r.Epoch at least Epoch(), or the error wraps
// ErrOutOfOrder; a newer epoch is added to the history first.
func (l *Log) AppendRecord(r Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	if r.Seq != l.last+1 {
		return fmt.Errorf("%w: seq %d, the next is %d", ErrOutOfOrder, r.Seq, l.last+1)
	}
	cur := l.epochLocked()
	if r.Epoch < cur || r.Epoch == 0 {
		return fmt.Errorf("%w: record %d has epoch %d, the log is at epoch %d", ErrOutOfOrder, r.Seq, r.Epoch, cur)
	}
	if r.Epoch > cur {
		h := append(slices.Clip(l.history), EpochStart{Epoch: r.Epoch, Seq: r.Seq})
		if err := writeHistory(l.fs, l.dir, h); err != nil {
			return err
		}
		l.history = h
	}
	return l.write(r)
}

// write frames and writes r to the active segment, sealing it first if it is
// full. l.mu is held.
func (l *Log) write(r Record) error {
	if len(r.Batch) == 0 || len(r.Batch) > logkv.MaxBatchSize {
		return fmt.Errorf("commitlog: batch of %d bytes: %w", len(r.Batch), logkv.ErrBatchTooLarge)
	}
	act := l.segs[len(l.segs)-1]
	if act.size >= l.segSize && act.last >= act.first {
		if err := l.roll(); err != nil {
			return err
		}
		act = l.segs[len(l.segs)-1]
	}
	// What is synced now is durable whatever happens to this record: it
	// tells recovery that damage before it is corruption, not a torn tail.
	l.pbuf = appendSegmentRecord(l.pbuf[:0], uint64(act.syncedSize), r)
	mark, prevLast := len(l.wbuf), l.last
	l.wbuf = record.AppendSalted(l.wbuf, l.pbuf, act.salt)
	act.size += int64(record.Size(len(l.pbuf)))
	act.last = r.Seq
	l.last = r.Seq
	if len(l.wbuf) >= flushSize {
		if err := l.flushLocked(); err != nil {
			if l.err == nil {
				// The write failed and was undone: r was never written,
				// and its caller is told so, so r must never be written
				// later either. The records before it stay buffered for
				// the retry.
				l.wbuf = l.wbuf[:mark]
				act.size -= int64(record.Size(len(l.pbuf)))
				act.last, l.last = prevLast, prevLast
			}
			return err
		}
	}
	return nil
}

// flushSize is how many buffered bytes make write flush without a Sync.
const flushSize = 256 << 10

// flushLocked writes the buffered frames to the active segment: appends
// collect in l.wbuf, so that a group of appends costs one write system call
// (made by the Sync that covers them) rather than one each. Everything that
// syncs, reads, truncates or replaces the active file flushes first. l.mu is
// held.
//
// A failed write (a full disk, say) is undone rather than failing the log:
// the segment is cut back to the records written before it, so the file
// holds whole records only, as if the write had never been tried, and the
// records stay buffered for the next flush to write again. Only a write
// whose partial bytes cannot be cut off fails the log for good. Nothing
// syncs the cut: the bytes it removes were never synced, and recovery
// treats whatever a crash leaves of them as a torn tail.
func (l *Log) flushLocked() error {
	if l.err != nil {
		return l.err
	}
	if len(l.wbuf) == 0 || l.f == nil {
		return nil
	}
	act := l.segs[len(l.segs)-1]
	if n, err := l.f.Write(l.wbuf); err != nil || n != len(l.wbuf) {
		if err == nil {
			err = io.ErrShortWrite
		}
		err = fmt.Errorf("write %s: %w", act.path, err)
		if n > 0 {
			// wbuf holds the active segment's unwritten tail: the file
			// ended where the buffer starts.
			if terr := l.f.Truncate(act.size - int64(len(l.wbuf))); terr != nil {
				return l.fail(fmt.Errorf("commitlog: %w, and cutting its %d partial bytes off failed: %w", err, n, terr))
			}
		}
		l.werr = fmt.Errorf("%w: %w", ErrWriteFailed, err)
		return l.werr
	}
	l.werr = nil
	l.setFlushed(l.last)
	if cap(l.wbuf) > 4<<20 {
		l.wbuf = nil // do not keep a huge batch's buffer
	} else {
		l.wbuf = l.wbuf[:0]
	}
	return nil
}

// setFlushed records that every record up to seq, and none after it, was
// written to the operating system. l.mu is held (or the log is not yet
// shared).
func (l *Log) setFlushed(seq uint64) { l.flushedSeq.Store(seq) }

// roll seals the active segment (syncing it) and starts a new one. l.mu is
// held.
func (l *Log) roll() error {
	act := l.segs[len(l.segs)-1]
	if err := l.flushLocked(); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return l.fail(fmt.Errorf("commitlog: sync %s: %w", act.path, err))
	}
	s := l.newSegment(act.last + 1)
	if err := l.createSegment(s); err != nil {
		// A full disk, say. The new segment must not stay behind, even
		// empty: the records appended to the old one meanwhile would make
		// its name a lie, which recovery reports as a gap. The next append
		// tries the roll again.
		if rerr := l.fs.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return l.fail(fmt.Errorf("%w, and removing it failed: %w", err, rerr))
		}
		if serr := l.fs.SyncDir(l.dir); serr != nil {
			return l.fail(fmt.Errorf("%w, and syncing %s after removing it failed: %w", err, l.dir, serr))
		}
		l.werr = fmt.Errorf("%w: %w", ErrWriteFailed, err)
		return l.werr
	}
	f, err := l.openActive(s.path)
	if err != nil {
		return err
	}
	l.werr = nil
	act.syncedSize = act.size
	l.retired = append(l.retired, l.f)
	l.f = f
	l.segs = append(l.segs, s)
	switch {
	case l.inRound:
		// A round's fsync of this same file is in flight: if it fails,
		// this roll's may have succeeded only because the error was
		// already reported to the round, so the round decides (syncRound).
		l.rolled = max(l.rolled, act.last)
	case act.last > l.durable:
		l.durable = act.last
		l.durableSeq.Store(l.durable)
		l.wake()
	}
	return nil
}

// Flush writes every appended record to the operating system without
// syncing it: after Flush, the records survive a crash of the process but
// not of the machine, and are not durable (readers still wait for Sync).
// It fails on a closed or failed log even when nothing is left to write;
// FlushTo(seq) is the cheaper call for a writer that needs only its own
// records written.
func (l *Log) Flush() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	return l.flushLocked()
}

// FlushTo writes every record up to seq to the operating system without
// syncing it, as Flush does (group flush): a caller whose records are
// already written returns at once, without a system call and without
// locking; concurrent callers queue, the first writes everything appended so
// far in one write, and those behind it find their records covered. A
// closed or failed log fails FlushTo only for records not yet written, and
// seq past LastSeq is an error.
func (l *Log) FlushTo(seq uint64) error {
	if l.flushedSeq.Load() >= seq {
		return nil
	}
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if l.flushedSeq.Load() >= seq {
		return nil // written by the caller we queued behind
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if seq > l.last {
		return fmt.Errorf("commitlog: flush to seq %d, but the last written is %d", seq, l.last)
	}
	return l.flushLocked()
}
