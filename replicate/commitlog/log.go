package commitlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/groupsync"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
)

// Errors returned by the log. They are checked with errors.Is.
var (
	// ErrTrimmed: the records asked for were trimmed from the log (or were
	// never in it): the reader must get the state another way (a full
	// resync).
	ErrTrimmed = errors.New("commitlog: records no longer retained")
	// ErrTruncated: the log was truncated or reset under an open reader.
	ErrTruncated = errors.New("commitlog: log truncated under the reader")
	// ErrOutOfOrder: a record's seq is not the next one, or its epoch is
	// older than the log's.
	ErrOutOfOrder = errors.New("commitlog: record out of order")
	// ErrNoEpoch: Append on a log that has no epoch yet (see BeginEpoch).
	ErrNoEpoch = errors.New("commitlog: no epoch begun")
	// ErrWriteFailed: writing buffered records to the active segment failed
	// (a full disk, say), and the log undid the partial write: the file
	// holds exactly the records written before, the failed ones stay
	// buffered, and the next Flush, FlushTo, Sync or Append writes them
	// again. Until one succeeds the log takes no new record. It is not
	// sticky: free space and the log carries on.
	ErrWriteFailed = errors.New("commitlog: writing the commit log failed; it retries")
	// ErrFailed: the log failed in a way only a reopen recovers from, and
	// takes no more writes: an fsync failed, or a failed write's partial
	// bytes could not be removed. After a failed fsync the page cache
	// cannot be trusted: Linux may have dropped the dirty pages and marked
	// them clean, so a later fsync that succeeds proves nothing about them
	// (PostgreSQL's "fsyncgate", 2018). Open recovers from what the disk
	// holds.
	ErrFailed = errors.New("commitlog: the commit log failed; reopen it")
)

const historyFile = "EPOCHS"

type segment struct {
	salt        uint64 // its records' checksum salt (0 in a format 2 segment)
	hdr         int64  // its header's size: where its first record starts
	first       uint64 // seq of its first record (or of its next, if empty)
	last        uint64 // seq of its last record; first-1 if empty
	size        int64  // bytes written
	durableSize int64  // bytes synced (equal to size once sealed)
	path        string
}

// Log is a segmented commit log. All its methods are safe for concurrent use.
type Log struct {
	dir     string
	fs      vfs.FS
	segSize int64
	log     *slog.Logger

	// group is the group commit of Sync: one caller at a time flushes and
	// fsyncs for all (syncFlush, syncRound). TruncateAfter, Reset and Close
	// lock it, so that no fsync is in flight on a file they close. Lock
	// order: group, flushMu, mu.
	group *groupsync.Group[syncRound]
	// flushMu is held by the one FlushTo caller that writes at a time, so
	// that those queued behind it find their records written instead of
	// contending for mu.
	flushMu sync.Mutex

	mu       sync.Mutex
	segs     []*segment // oldest first; the last one is active
	f        vfs.File   // the active segment
	retired  []vfs.File // sealed segments' files, closed by the next syncer
	last     uint64
	durable  uint64
	history  []EpochStart
	notify   chan struct{} // closed and replaced when readers should look again
	closed   bool
	closedCh chan struct{}
	err      error  // sticky failure (wraps ErrFailed): the log takes nothing more
	werr     error  // failed write the buffered records wait to retry (wraps ErrWriteFailed)
	gen      uint64 // bumped by TruncateAfter and Reset
	wbuf     []byte // frames appended but not yet written to f (see flushLocked)
	pbuf     []byte // payload being framed

	durableSeq atomic.Uint64
	// flushedSeq is the last record written to f (or an older file): wbuf
	// holds the ones after it, up to last. FlushTo reads it without mu.
	flushedSeq atomic.Uint64
}

func segName(first uint64) string { return fmt.Sprintf("%016x.log", first) }

func parseSegName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".log")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 64)
	return v, err == nil && v > 0
}

// Open opens the log in dir, creating it if needed, and recovers it: a torn
// tail of the last segment is cut; corruption anywhere else is an error
// wrapping logkv.ErrCorrupt.
func Open(dir string, o *Options) (*Log, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if err := opts.EnsureDefaults().Validate(); err != nil {
		return nil, err
	}
	l := &Log{
		dir: dir, fs: opts.FS, segSize: opts.SegmentSize, log: opts.Logger,
		notify: make(chan struct{}), closedCh: make(chan struct{}),
	}
	l.group = groupsync.New(l.durableSeq.Load, l.syncFlush, l.syncRound)
	if err := l.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("commitlog: %w", err)
	}
	// Make the directory's own entry durable, in case MkdirAll made it.
	if err := l.fs.SyncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
		return nil, fmt.Errorf("commitlog: %w", err)
	}
	if err := l.recover(); err != nil {
		l.closeFiles()
		return nil, err
	}
	return l, nil
}

func (l *Log) recover() error {
	names, err := l.fs.List(l.dir)
	if err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	history, err := readHistory(l.fs, filepath.Join(l.dir, historyFile))
	if err != nil {
		return err
	}
	changed := false
	var lastEpoch uint64
	if len(history) > 0 {
		lastEpoch = history[len(history)-1].Epoch
	}
	for _, name := range names {
		first, ok := parseSegName(name)
		if !ok {
			continue
		}
		l.segs = append(l.segs, &segment{first: first, last: first - 1, path: filepath.Join(l.dir, name)})
	}
	for i, s := range l.segs {
		if i > 0 && s.first != l.segs[i-1].last+1 {
			return logkv.CorruptError(s.path, 0, "segment starts at seq %d, but the previous one ends at %d", s.first, l.segs[i-1].last)
		}
		isLast := i == len(l.segs)-1
		f, err := l.fs.Open(s.path)
		if err != nil {
			return fmt.Errorf("commitlog: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("commitlog: %w", err)
		}
		rd := record.NewReader(newBufReaderAt(f, st.Size()), s.path, st.Size(), maxSegmentPayload)
		var epoch uint64
		for {
			off := rd.Offset()
			p, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil && off == 0 && st.Size() > segHeaderSize {
				// The header is written and synced before any record, so
				// a segment longer than a header has a synced one: its
				// damage is corruption, never a torn creation (and without
				// it, its records' salt is unknown).
				f.Close()
				return logkv.CorruptError(s.path, 0, "damaged segment header: %v", err)
			}
			if err != nil {
				err = l.damaged(f, s, isLast, off, st.Size(), err)
				if err != nil {
					f.Close()
					return err
				}
				break // the torn tail is cut
			}
			if off == 0 {
				salt, hdr, err := checkSegmentHeader(s.path, p)
				if err != nil {
					f.Close()
					return err
				}
				s.salt, s.hdr = salt, hdr
				rd.SetSalt(salt)
				continue
			}
			synced, r, err := decodeSegmentRecord(p)
			if err != nil {
				f.Close()
				return logkv.CorruptError(s.path, off, "%v", err)
			}
			if synced > uint64(off) {
				f.Close()
				return logkv.CorruptError(s.path, off, "record says %d bytes were synced before its offset", synced)
			}
			if r.Seq != s.last+1 {
				f.Close()
				return logkv.CorruptError(s.path, off, "record has seq %d, want %d", r.Seq, s.last+1)
			}
			if r.Epoch < epoch {
				f.Close()
				return logkv.CorruptError(s.path, off, "record %d has epoch %d after epoch %d", r.Seq, r.Epoch, epoch)
			}
			epoch = r.Epoch
			if r.Epoch > lastEpoch {
				// The record was written but the history update that came
				// before it was lost: redo it.
				history = append(history, EpochStart{Epoch: r.Epoch, Seq: r.Seq})
				lastEpoch, changed = r.Epoch, true
			}
			s.last = r.Seq
		}
		f.Close()
		s.size = rd.Offset()
		if s.size == 0 {
			// No header: the segment's creation was cut short (or its header
			// torn, with no record after it).
			if !isLast {
				return logkv.CorruptError(s.path, 0, "sealed segment without a header")
			}
			s.salt, s.hdr = newSalt(), segHeaderSize
			if err := l.createSegment(s); err != nil {
				return err
			}
			s.size = s.hdr
		}
		s.durableSize = s.size
	}
	if len(l.segs) == 0 {
		s := l.newSegment(1)
		if err := l.createSegment(s); err != nil {
			return err
		}
		l.segs = append(l.segs, s)
	}
	act := l.segs[len(l.segs)-1]
	l.last = act.last
	l.durable = l.last
	l.durableSeq.Store(l.last)
	l.setFlushed(l.last)
	// Entries past the next seq are left over from a truncation cut short.
	for len(history) > 0 && history[len(history)-1].Seq > l.last+1 {
		history, changed = history[:len(history)-1], true
	}
	l.history = history
	if changed {
		if err := writeHistory(l.fs, l.dir, history); err != nil {
			return err
		}
	}
	f, err := l.fs.OpenReadWrite(act.path)
	if err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	l.f = f
	// What a killed process left in the page cache is durable from here on.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("commitlog: sync %s: %w", act.path, err)
	}
	return nil
}

// openActive opens path, a new or cut segment, as the file appends go to.
// A failure fails the log: l.f is gone and nothing more can be written.
// l.mu is held.
func (l *Log) openActive(path string) (vfs.File, error) {
	f, err := l.fs.OpenReadWrite(path)
	if err != nil {
		return nil, l.fail(fmt.Errorf("commitlog: %w", err))
	}
	return f, nil
}

// fail makes err the log's sticky failure and returns it, wrapped in
// ErrFailed. l.mu is held.
func (l *Log) fail(err error) error {
	if !errors.Is(err, ErrFailed) {
		err = fmt.Errorf("%w: %w", ErrFailed, err)
	}
	l.err = err
	return err
}

// damaged decides what a frame of segment s that failed its checks at off
// (err, from record.Reader) means; s.last is the last record before it. In the last segment, damage that no later
// intact record proves synced is the remains of writes in flight at a power
// loss: damaged cuts the segment there and returns nil. Anywhere else it is
// corruption: sealed segments were synced whole before the next one began.
func (l *Log) damaged(f io.ReaderAt, s *segment, isLast bool, off, size int64, err error) error {
	path := s.path
	torn := errors.Is(err, record.ErrTornTail)
	if !torn && !errors.Is(err, logkv.ErrCorrupt) {
		return err // I/O
	}
	if !isLast {
		if torn {
			return logkv.CorruptError(path, off, "torn record in a sealed segment: %v", err)
		}
		return fmt.Errorf("%w (in a sealed segment)", err)
	}
	if !torn {
		// Intact frames follow the damage: it is still a torn tail unless
		// one of them says the damaged bytes were synced.
		synced, serr := laterSynced(f, path, off, size, s.last, s.salt)
		if serr != nil {
			return serr
		}
		if synced > off {
			return fmt.Errorf("%w; a later record says the first %d bytes of %s were synced", err, synced, path)
		}
	}
	l.log.Warn("commitlog: cutting a torn tail", "file", path, "offset", off, "size", size, "err", err)
	return l.cutTail(path, off)
}

func (l *Log) cutTail(path string, off int64) error {
	f, err := l.fs.OpenReadWrite(path)
	if err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("commitlog: truncate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("commitlog: sync %s: %w", path, err)
	}
	return nil
}

// newSegment returns the in-memory state of a new segment whose first record
// will be first.
func (l *Log) newSegment(first uint64) *segment {
	return &segment{first: first, last: first - 1, size: segHeaderSize, durableSize: segHeaderSize,
		salt: newSalt(), hdr: segHeaderSize, path: filepath.Join(l.dir, segName(first))}
}

// createSegment creates (or empties) the file of segment s, holding only
// its header (with s.salt), and makes it durable.
func (l *Log) createSegment(s *segment) error {
	path := s.path
	f, err := l.fs.Create(path)
	if err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	_, err = f.Write(appendSegmentHeader(nil, s.salt))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		return fmt.Errorf("commitlog: create %s: %w", path, err)
	}
	return nil
}

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

// usable returns why the log cannot be written, if it cannot. l.mu is held.
func (l *Log) usable() error {
	if l.closed {
		return logkv.ErrClosed
	}
	return l.err
}

// wake tells waiting readers to look again. l.mu is held.
func (l *Log) wake() {
	close(l.notify)
	l.notify = make(chan struct{})
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
	l.pbuf = appendSegmentRecord(l.pbuf[:0], uint64(act.durableSize), r)
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
	act.durableSize = act.size
	l.retired = append(l.retired, l.f)
	l.f = f
	l.segs = append(l.segs, s)
	if act.last > l.durable {
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

// Sync makes every record up to seq durable. Concurrent callers share one
// fsync (group commit, internal/groupsync). A failed write of the buffered
// records returns an error wrapping ErrWriteFailed and leaves them
// buffered: call Sync again to retry (the caller decides how long to wait).
// A failed fsync fails the log (ErrFailed): every later write and sync
// returns the error, since what reached the disk is unknown.
func (l *Log) Sync(seq uint64) error {
	if l.durableSeq.Load() >= seq {
		return nil
	}
	l.mu.Lock()
	err := l.usable()
	if err == nil && seq > l.last {
		err = fmt.Errorf("commitlog: sync to seq %d, but the last written is %d", seq, l.last)
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return l.group.SyncTo(seq)
}

// syncRound is what one group-commit round fsyncs: the active segment's
// file, as of the flush that wrote every record up to target.
type syncRound struct {
	f       vfs.File
	act     *segment
	target  uint64     // the last record the fsync makes durable
	size    int64      // act's size then
	retired []vfs.File // sealed segments' files, closed outside mu
}

// syncFlush starts a round (the group's leader alone calls it): it writes
// every buffered record, so that the fsync covers every caller waiting.
func (l *Log) syncFlush() (syncRound, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return syncRound{}, err
	}
	if err := l.flushLocked(); err != nil {
		return syncRound{}, err
	}
	act := l.segs[len(l.segs)-1]
	r := syncRound{f: l.f, act: act, target: l.last, size: act.size, retired: l.retired}
	l.retired = nil
	return r, nil
}

// syncRound fsyncs what syncFlush wrote and advances the durable watermark.
// A failure fails the log.
func (l *Log) syncRound(r syncRound) error {
	for _, f := range r.retired {
		f.Close()
	}
	err := r.f.Sync()

	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.wake() // the readers, whatever the outcome
	if err != nil {
		return l.fail(fmt.Errorf("commitlog: sync %s: %w", r.act.path, err))
	}
	if r.size > r.act.durableSize {
		r.act.durableSize = r.size
	}
	if r.target > l.durable {
		l.durable = r.target
		l.durableSeq.Store(r.target)
	}
	return nil
}

// Err returns why the log does not take writes now, or nil: a sticky
// failure (wrapping ErrFailed: a failed fsync, say), or the last write
// that failed and was undone (wrapping ErrWriteFailed: it clears once a
// write succeeds). A closed log returns nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	if l.err != nil {
		return l.err
	}
	return l.werr
}

// LastSeq returns the seq of the last record written (durable or not); for an
// empty log, FirstSeq()-1.
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// DurableSeq returns the seq of the last durable record.
func (l *Log) DurableSeq() uint64 { return l.durableSeq.Load() }

// FirstSeq returns the seq of the oldest retained record (LastSeq()+1 when
// the log holds none).
func (l *Log) FirstSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segs[0].first
}

// Epoch returns the current epoch: that of the last history entry, or 0.
func (l *Log) Epoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epochLocked()
}

func (l *Log) epochLocked() uint64 {
	if len(l.history) == 0 {
		return 0
	}
	return l.history[len(l.history)-1].Epoch
}

// History returns a copy of the epoch history.
func (l *Log) History() []EpochStart {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.history)
}

// BeginEpoch starts epoch, which must be newer than Epoch(), at the next seq,
// and makes the change durable before returning. Records appended from then
// on carry it.
func (l *Log) BeginEpoch(epoch uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if epoch <= l.epochLocked() {
		return fmt.Errorf("%w: epoch %d is not newer than %d", ErrOutOfOrder, epoch, l.epochLocked())
	}
	h := append(slices.Clip(l.history), EpochStart{Epoch: epoch, Seq: l.last + 1})
	if err := writeHistory(l.fs, l.dir, h); err != nil {
		return err
	}
	l.history = h
	return nil
}

// Size returns the bytes held by all segments.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// SizeFrom returns the bytes held by the segments that hold seq and later
// records: what a reader starting at seq would have left to read, to within
// a segment.
func (l *Log) SizeFrom(seq uint64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, s := range l.segs {
		if s.last >= seq || s == l.segs[len(l.segs)-1] {
			n += s.size
		}
	}
	return n
}

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
	s.size, s.durableSize, s.last = off, off, seq
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

// Close syncs and closes the log. Readers waiting on it return
// logkv.ErrClosed. Calling it twice is safe.
func (l *Log) Close() error {
	l.group.Lock()
	defer l.group.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	var err error
	if l.f != nil && l.err == nil {
		if err = l.flushLocked(); err == nil {
			err = l.f.Sync()
		}
	}
	l.closeFilesLocked()
	l.closed = true
	close(l.closedCh)
	l.wake()
	return err
}

func (l *Log) closeFiles() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeFilesLocked()
}

func (l *Log) closeFilesLocked() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	for _, f := range l.retired {
		f.Close()
	}
	l.retired = nil
}

func readHistory(fs vfs.FS, path string) ([]EpochStart, error) {
	f, err := fs.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("commitlog: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("commitlog: %w", err)
	}
	rd := record.NewReader(f, path, st.Size(), 16)
	var h []EpochStart
	for {
		off := rd.Offset()
		p, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// The file is replaced whole by rename: any damage is corruption.
			return nil, logkv.CorruptError(path, off, "%v", err)
		}
		if len(p) != 16 || len(h) >= MaxHistory {
			return nil, logkv.CorruptError(path, off, "bad epoch entry")
		}
		h = append(h, EpochStart{Epoch: leUint64(p[0:8]), Seq: leUint64(p[8:16])})
	}
	if err := ValidHistory(h); err != nil {
		return nil, logkv.CorruptError(path, 0, "%v", err)
	}
	return h, nil
}

func writeHistory(fs vfs.FS, dir string, h []EpochStart) error {
	var buf, p []byte
	for _, e := range h {
		p = appendHistoryEntry(p[:0], e)
		buf = record.Append(buf, p)
	}
	tmp := filepath.Join(dir, historyFile+".tmp")
	f, err := fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, filepath.Join(dir, historyFile))
	}
	if err == nil {
		err = fs.SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("commitlog: write epoch history: %w", err)
	}
	return nil
}

func leUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// bufReaderAt serves the small sequential ReadAts of a record.Reader from a
// window read in large blocks.
type bufReaderAt struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64
	n    int
}

func newBufReaderAt(r io.ReaderAt, size int64) *bufReaderAt {
	return &bufReaderAt{r: r, size: size, buf: make([]byte, 1<<20)}
}

func (b *bufReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= b.off && off+int64(len(p)) <= b.off+int64(b.n) {
		return copy(p, b.buf[off-b.off:]), nil
	}
	if off >= b.size {
		return 0, io.EOF
	}
	if len(p) > len(b.buf)/2 {
		return b.r.ReadAt(p, off)
	}
	n, err := b.r.ReadAt(b.buf[:min(int64(len(b.buf)), b.size-off)], off)
	b.off, b.n = off, n
	if err != nil && !(err == io.EOF && n > 0) {
		b.n = 0
		return 0, err
	}
	m := copy(p, b.buf[:n])
	if m < len(p) {
		return m, io.EOF
	}
	return m, nil
}
