package replicate

import (
	"bytes"
	"errors"
	"runtime"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/commitlog"
)

// Submit appends b to the commit log on the leader and returns its seq
// without waiting for durability: Await(seq) waits. It lets a caller order
// writes under its own locks and wait for them outside, as a Redis-protocol
// node does for a pipeline (many writes, one group fsync). Records are
// applied in seq order, so a write is readable from the engine only after an
// Await that covers it. Submit copies b; the caller may reuse it at once.
func (n *Node) Submit(b *logkv.Batch) (uint64, error) {
	if n.closed.Load() {
		return 0, logkv.ErrClosed
	}
	if err := b.Err(); err != nil {
		return 0, err
	}
	if b.Empty() {
		return 0, nil
	}
	if p := n.failed.Load(); p != nil {
		return 0, *p
	}
	data := bytes.Clone(b.Repr())
	n.wmu.Lock()
	defer n.wmu.Unlock()
	if !n.leading {
		return 0, ErrNotLeader
	}
	seq, err := n.log.Append(data)
	if err != nil {
		return 0, err
	}
	n.pending = append(n.pending, pendingWrite{seq: seq, data: data})
	return seq, nil
}

// Await waits until the submitted write seq (and every one before it) is
// durable in the local log (with SyncInterval in Async mode: written to the
// operating system) and applied to the engine, and in Sync mode held by the
// quorum, with the same errors as Write. Await(0) returns at once.
//
// A write to the log that fails and is undone (commitlog.ErrWriteFailed: a
// full disk) does not fail Await: its record stays buffered, and Await
// tries again until the disk takes it or the node closes (see
// untilWritten). Meanwhile Submit refuses new writes, so no write whose
// caller was told it failed is ever written, and none that was submitted is
// dropped behind its caller's back. With SyncInterval in Async mode Await
// does not wait: it returns the error, and its records are still written
// once the disk takes them, so the error means "outcome unknown".
func (n *Node) Await(seq uint64) error {
	if seq == 0 {
		return nil
	}
	if n.syncEvery.Load() > 0 && n.cfg.AckMode == Async {
		// Let the writers that are ready to run append first, so that one
		// write system call covers their records too (FlushTo returns at
		// once for a record another writer's write covered): PostgreSQL's
		// commit_delay, without the delay.
		runtime.Gosched()
		// Not untilWritten: this Await may run where waiting would stall
		// others (kvnode's event loop syncs everysec groups in line). A
		// failed write returns its error, and the records stay buffered
		// for the next write or background sync to write: the caller
		// must take the error as "outcome unknown", as kvnode does by
		// dropping the connection rather than replying.
		if err := n.log.FlushTo(seq); err != nil {
			return err
		}
		select {
		case n.syncKick <- struct{}{}:
		default: // a kick is already pending
		}
	} else if err := n.untilWritten(func() error { return n.log.Sync(seq) }); err != nil {
		return err
	}
	if err := n.applyThrough(seq); err != nil {
		return err
	}
	if n.cfg.AckMode != Sync {
		return nil
	}
	n.roleMu.Lock()
	ld := n.leader
	n.roleMu.Unlock()
	if ld == nil {
		return ErrNotLeader
	}
	if err := ld.waitQuorum(seq, n.cfg.Quorum, n.cfg.QuorumTimeout); err != nil {
		if n.cfg.FallbackAsync {
			n.cfg.Logger.Warn("quorum not reached; acknowledging as async (FallbackAsync)", "seq", seq, "err", err)
			return nil
		}
		return err
	}
	return nil
}

// AwaitLocal is Await without the quorum: it returns once the submitted
// write seq is durable in the local log (fsynced, whatever SyncInterval) and
// applied. It is for a leader's own bootstrap writes, such as the first
// record a new node writes before it serves: in Sync mode no follower can
// hold that record yet (followers connect to a serving leader), so Await
// would fail it after QuorumTimeout. Followers receive it first thing.
func (n *Node) AwaitLocal(seq uint64) error {
	if seq == 0 {
		return nil
	}
	if err := n.untilWritten(func() error { return n.log.Sync(seq) }); err != nil {
		return err
	}
	return n.applyThrough(seq)
}

// Retry pacing of untilWritten: a write(2) of the buffered records per try,
// soon after a brief hiccup, at most every maxWriteRetry while the disk
// stays full.
const (
	minWriteRetry = time.Millisecond
	maxWriteRetry = 100 * time.Millisecond
)

// untilWritten runs write, a flush or sync of the log, until it succeeds,
// fails for another reason than a write the log undid, or the node closes.
//
// Why wait rather than fail: the records a failed write left buffered were
// submitted, each by a caller still waiting to learn its fate, and the log
// cannot take them back one by one. Failing them would mean rolling the
// log's next seq back, and a seq given out again cannot be told from the
// first: a Redis-protocol node acknowledges a whole group of clients with
// one Await of the highest seq submitted, so an Await of a reused seq would
// acknowledge a write that was dropped. Waiting instead writes every
// record that was handed out a seq, once the disk takes it, while Submit
// refuses new writes with the error (commitlog.Log.Append does), which is
// how Redis treats its AOF buffer on a full disk. A failed fsync is not
// retried: it fails the log for good (commitlog.ErrFailed).
func (n *Node) untilWritten(write func() error) error {
	wait := minWriteRetry
	for {
		err := write()
		if err == nil || !errors.Is(err, commitlog.ErrWriteFailed) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return logkv.ErrClosed
		case <-t.C:
		}
		wait = min(2*wait, maxWriteRetry)
	}
}
