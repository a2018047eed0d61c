package commitlog

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/groupsync"
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

	mu      sync.Mutex
	segs    []*segment // oldest first; the last one is active
	f       vfs.File   // the active segment
	retired []vfs.File // sealed segments' files, closed by the next syncer
	last    uint64
	durable uint64
	// inRound is set while a group-commit round fsyncs outside mu, and
	// rolled holds the durable watermark a roll reached meanwhile: a roll's
	// fsync of the round's file can succeed although the round's failed
	// (Linux reports a write-back error once per file), so the watermark
	// moves only once the round's outcome is known (syncRound).
	inRound  bool
	rolled   uint64
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

// fail makes err the log's sticky failure and returns it, wrapped in
// ErrFailed. l.mu is held.
func (l *Log) fail(err error) error {
	if !errors.Is(err, ErrFailed) {
		err = fmt.Errorf("%w: %w", ErrFailed, err)
	}
	l.err = err
	return err
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
