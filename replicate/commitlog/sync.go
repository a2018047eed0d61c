package commitlog

import (
	"fmt"

	"github.com/logkv/logkv/vfs"
)

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
	err := l.syncable(seq)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return l.group.SyncTo(seq)
}

// syncable returns why records up to seq cannot be made durable, if they
// cannot: the log is closed or failed, or seq was never written (or was
// truncated away while its caller waited). l.mu is held.
func (l *Log) syncable(seq uint64) error {
	if err := l.usable(); err != nil {
		return err
	}
	if seq > l.last {
		return fmt.Errorf("commitlog: sync to seq %d, but the last written is %d", seq, l.last)
	}
	return nil
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
func (l *Log) syncFlush(seq uint64) (syncRound, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.syncable(seq); err != nil {
		return syncRound{}, err
	}
	if err := l.flushLocked(); err != nil {
		return syncRound{}, err
	}
	act := l.segs[len(l.segs)-1]
	r := syncRound{f: l.f, act: act, target: l.last, size: act.size, retired: l.retired}
	l.retired = nil
	l.inRound = true
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
	l.inRound = false
	rolled := l.rolled
	l.rolled = 0
	if err != nil {
		return l.fail(fmt.Errorf("commitlog: sync %s: %w", r.act.path, err))
	}
	if r.size > r.act.syncedSize {
		r.act.syncedSize = r.size
	}
	if target := max(r.target, rolled); target > l.durable {
		l.durable = target
		l.durableSeq.Store(target)
	}
	return nil
}
