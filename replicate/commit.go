package replicate

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/commitlog"
)

// # The write path
//
// A write on the leader passes these stages, each a function in this file
// (the follower's side is follower.go's receive, which appends, syncs,
// applies and acks in the same order):
//
//	Write(b) = Submit(b) then Await(seq)
//	  |
//	  | Submit        copy b; append it to the commit log under wmu, which
//	  |               gives it the next seq; queue it in n.unapplied (past
//	  |               applyBacklog bytes queued, applyLoop applies them
//	  |               without waiting for an Await: a bulk import)
//	  v
//	  | Await
//	  |   durable     log.Sync(seq): the group fsync (internal/groupsync)
//	  |               covering seq, retried while the disk is full
//	  |               (untilWritten); with SyncInterval in Async mode,
//	  |               log.FlushTo(seq), and syncLoop fsyncs in the background
//	  |   ship        (meanwhile, for every follower) leader.send streams the
//	  |               log's durable records; leader.readAcks notes the seq
//	  |               each follower holds durably (leader.go)
//	  |   apply       applyThrough(seq): the unapplied records up to seq, in
//	  |               seq order, coalesced into few engine batches (coalescer)
//	  |   quorum      Sync mode: leader.waitQuorum(seq) until Quorum
//	  |               followers hold seq, or ErrQuorum after QuorumTimeout
//	  v
//	  ack             Await returns nil: the caller acknowledges the write
//
// The engine is applied after the fsync, so it never holds a seq the log
// could lose; it may hold one the quorum does not hold yet (QuorumSeq is
// that watermark, wait.go).

// Write commits b on the leader: appends it to the commit log, waits for the
// group fsync (with SyncInterval, for the write to the operating system),
// applies it to the engine, and in Sync mode waits for the quorum. It returns the batch's seq. b may be reused once Write returns.
// It is Submit followed by Await.
func (n *Replica) Write(b *logkv.Batch) (uint64, error) {
	seq, err := n.Submit(b)
	if err != nil || seq == 0 {
		return seq, err
	}
	return seq, n.Await(seq)
}

// Submit appends b to the commit log on the leader and returns its seq
// without waiting for durability: Await(seq) waits. It lets a caller order
// writes under its own locks and wait for them outside, as a Redis-protocol
// node does for a pipeline (many writes, one group fsync). Records are
// applied in seq order, so a write is sure to be readable from the engine
// only after an Await that covers it (a writer that submits more than
// applyBacklog bytes without awaiting finds its records applied earlier,
// once written, as Await would). Submit copies b; the caller may reuse it at
// once.
func (n *Replica) Submit(b *logkv.Batch) (uint64, error) {
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
	if err := n.waitBacklog(); err != nil {
		return 0, err
	}
	data := cloneRecord(b.Repr())
	n.wmu.Lock()
	defer n.wmu.Unlock()
	if !n.leading {
		return 0, ErrNotLeader
	}
	seq, err := n.log.Append(data)
	if err != nil {
		return 0, err
	}
	n.unapplied = append(n.unapplied, unappliedRecord{seq: seq, data: data})
	if n.unappliedBytes.Add(int64(len(data))) >= applyBacklog {
		select {
		case n.applyKick <- struct{}{}:
		default: // a kick is already pending
		}
	}
	return seq, nil
}

// applyBacklog is how many bytes of submitted records may wait for an Await
// before applyLoop applies them itself; past maxBacklog, Submit waits for
// applyLoop (waitBacklog).
const (
	applyBacklog = 4 << 20
	maxBacklog   = 4 * applyBacklog
)

// waitBacklog waits while more than maxBacklog bytes of submitted records
// wait to be applied: a writer faster than the engine (a bulk import into
// the memory engine submits twice as fast as it applies) would otherwise
// hold ever more records in memory, each in a fresh buffer. It is the
// backpressure a memtable stall gives in an LSM. It waits for applyLoop
// only, which takes none of the caller's locks, and not while the log
// refuses writes (a full disk: Append then fails the write at once, as
// before) or after the node failed or closed.
func (n *Replica) waitBacklog() error {
	for {
		if n.unappliedBytes.Load() <= maxBacklog { // every write asks: no lock
			return nil
		}
		n.appliedMu.Lock()
		ch := n.appliedCh
		n.appliedMu.Unlock()
		// Again after taking ch, so that an apply in between is not missed.
		if n.unappliedBytes.Load() <= maxBacklog || n.log.Err() != nil {
			return nil
		}
		if p := n.failed.Load(); p != nil {
			return *p
		}
		t := time.NewTimer(10 * time.Millisecond) // to look at the log's health again
		select {
		case <-ch:
		case <-t.C:
		case <-n.ctx.Done():
			t.Stop()
			return logkv.ErrClosed
		}
		t.Stop()
	}
}

// applyLoop applies the records of writers that submit without awaiting,
// once they hold applyBacklog bytes: a bulk import (a slot move's target
// submits a 1 MiB batch at a time and awaits only at the end of the copy)
// would otherwise keep every record it wrote in memory until then, hundreds
// of megabytes, each copy in freshly faulted-in pages (most of a move
// target's CPU), and then apply them all at once while its stream stalls.
// It waits for the records as Await does (written to the operating system
// under SyncInterval in Async mode, else durable) but never for the quorum:
// that is the Await's, and a write is acknowledged only by one.
func (n *Replica) applyLoop() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.applyKick:
		}
		n.wmu.Lock()
		var seq uint64
		if k := len(n.unapplied); k > 0 {
			seq = n.unapplied[k-1].seq
		}
		n.wmu.Unlock()
		if seq == 0 {
			continue
		}
		write := func() error { return n.log.Sync(seq) }
		if n.syncEvery.Load() > 0 && n.cfg.AckMode == Async {
			write = func() error { return n.log.FlushTo(seq) }
		}
		err := n.untilWritten(write)
		if err == nil {
			n.wakeSyncer() // SyncInterval: fsync what was written
			err = n.applyThrough(seq)
		}
		if err != nil && !errors.Is(err, logkv.ErrClosed) {
			n.cfg.Logger.Warn("applying submitted records failed", "seq", seq, "err", err)
		}
	}
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
func (n *Replica) Await(seq uint64) error { return n.await(seq, true) }

// AwaitApplied is Await for a caller that needs the writes up to seq
// applied (readable on this node) but no sooner durable: with SyncInterval
// in Async mode it does not wake the background syncer, so their records
// are synced (and reach followers, which are sent durable records only) at
// the syncer's next round, within SyncInterval, or sooner when an Await
// wakes it. Otherwise it is Await. kvnode's barriers use it: its active
// expirer, which makes each batch of deletes readable before the next, woke
// the syncer with every batch, about a hundred fsyncs a second (syncPace)
// where appendfsync everysec promises one, and its CPU a key removed fell
// from 20.1/19.3/15.8 to 14.9/14.6/12.8 us without them (lsm, 1M keys
// expiring, no clients, 3 alternating pairs, load 9-17; docs/keyspace.md).
func (n *Replica) AwaitApplied(seq uint64) error { return n.await(seq, false) }

// await is Await; hurry says whether records written for it wake the
// background syncer (SyncInterval in Async mode).
func (n *Replica) await(seq uint64, hurry bool) error {
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
		if hurry {
			n.wakeSyncer()
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
func (n *Replica) AwaitLocal(seq uint64) error {
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
func (n *Replica) untilWritten(write func() error) error {
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

// syncLoop is the background syncer of SyncInterval mode: it syncs the log
// when Await has flushed new records, at most every syncPace (so that a
// busy leader spends a hundred fsyncs a second, not one per pipeline), and
// at least every SyncInterval. Writers never wait for it. A failed fsync
// fails the log, and with it every later write; a write the log undid (a
// full disk) is tried again at the next round.
func (n *Replica) syncLoop() {
	period := func() time.Duration {
		if every := n.SyncInterval(); every > 0 {
			return every
		}
		return time.Second // fsyncs happen in Await: nothing to do but look
	}
	every := period()
	t := time.NewTicker(every)
	defer t.Stop()
	var lastSync time.Time
	for {
		if p := period(); p != every { // SetSyncInterval
			every = p
			t.Reset(every)
		}
		pace := min(syncPace, every)
		select {
		case <-n.ctx.Done():
			return
		case <-n.syncKick:
			if wait := pace - time.Since(lastSync); wait > 0 {
				w := time.NewTimer(wait)
				select {
				case <-n.ctx.Done():
					w.Stop()
					return
				case <-w.C:
				}
			}
		case <-t.C:
		}
		lastSync = time.Now()
		last := n.log.LastSeq()
		if last <= n.log.DurableSeq() {
			continue
		}
		if err := n.log.Sync(last); errors.Is(err, commitlog.ErrWriteFailed) {
			n.cfg.Logger.Warn("background sync of the commit log could not write; writes are refused until a write succeeds", "err", err)
		} else if err != nil && !errors.Is(err, logkv.ErrClosed) {
			n.cfg.Logger.Error("background sync of the commit log failed; the node stops taking writes", "err", err)
		}
	}
}

// wakeSyncer wakes the background syncer (syncLoop), unless a wake is
// already pending.
func (n *Replica) wakeSyncer() {
	select {
	case n.syncKick <- struct{}{}:
	default:
	}
}

// syncPace is the shortest time between two background syncs of
// SyncInterval mode: followers, sent durable records only, see writes at
// most about this much later.
const syncPace = 10 * time.Millisecond

// applyThrough applies the unapplied records up to seq, in order: durable
// ones, or with SyncInterval, ones written to the operating system.
func (n *Replica) applyThrough(seq uint64) error {
	n.amu.Lock()
	defer n.amu.Unlock()
	if p := n.failed.Load(); p != nil {
		return *p
	}
	a := n.applied.Load()
	if a >= seq {
		return nil
	}
	n.wmu.Lock()
	k := int(seq - a)
	if k > len(n.unapplied) || n.unapplied[0].seq != a+1 {
		// seq was read before a role change took the records away (a
		// Follow applies them, a full resync moves applied): they are not
		// this node's to apply any more. applyLoop reads seq, then waits for
		// the log, so a step-down and a resync can fall in between.
		n.wmu.Unlock()
		return ErrNotLeader
	}
	n.applying = append(n.applying[:0], n.unapplied[:k]...)
	clear(n.unapplied[:k])
	n.unapplied = n.unapplied[k:]
	n.wmu.Unlock()
	// The records count in the backlog (waitBacklog) until applied: they
	// are in memory until then. (After a failed apply they stay counted:
	// the node takes no more writes.)
	taken := 0
	for _, w := range n.applying {
		taken += len(w.data)
	}
	eng := n.Engine()
	var bytes int64
	for _, w := range n.applying {
		if err := n.coalesce.makeRoom(eng, len(w.data)); err != nil {
			return n.fail(err)
		}
		if err := n.coalesce.add(w.seq, w.data); err != nil {
			return n.fail(err)
		}
		bytes += commitlog.SegmentRecordSize(len(w.data))
		releaseRecord(w.data) // the coalescer copied it
	}
	if err := n.coalesce.flush(eng); err != nil {
		return n.fail(err)
	}
	clear(n.applying)
	n.unappliedBytes.Add(-int64(taken)) // before the wake-up: waitBacklog looks then
	// One lag sample per group applied, not one per write: a write's time
	// is then known to within its group's commit.
	n.progress.add(n.applied.Load(), bytes)
	n.notifyApplied()
	return nil
}

// notifyApplied wakes WaitApplied callers.
func (n *Replica) notifyApplied() {
	n.appliedMu.Lock()
	close(n.appliedCh)
	n.appliedCh = make(chan struct{})
	n.appliedMu.Unlock()
}

// unappliedRecord is a record Submit appended to the log that applyThrough
// has not applied yet: its seq and its batch's encoding.
type unappliedRecord struct {
	seq  uint64
	data []byte
}

// coalesceBytes caps the batches a coalescer builds.
const coalesceBytes = 1 << 20

// coalescer applies consecutive log records to an engine as few batches. The
// records are consecutive in seq order, so applying several of them as one
// batch at the last one's seq leaves the engine where applying them one by
// one would (within a batch a later operation on a key overrides an earlier
// one), with the engine's per-batch work (its commit lock, seq bookkeeping,
// a memtable's room check) paid once: a node under a pipelining client, or a
// follower receiving a frame of records, applies dozens at a time. The seqs
// in between are never a state the engine shows, which no reader can tell
// from the records arriving together.
//
// A batch of sortFrom operations or more goes to an engine that says it
// prefers key order (KeyOrderApplier) in key order (stably, so that
// operations on one key keep their order and the last still wins): a
// follower catching up takes many frames at once, and inserting their keys
// into lsm's skiplist in order finds most of each insert's path in cache
// (BenchmarkCoalescerApply, 4,800-6,400 random keys an Apply: 25-35% less
// CPU a key on lsm; 10-30% more on memory and bitcask, whose trees gain less
// than the sort costs, so no engine gets it unasked). The batch is applied
// atomically either way, so no reader can tell the order.
type coalescer struct {
	b           logkv.Batch
	first, last uint64
	// applied is called with the last seq of each batch once applied.
	applied func(seq uint64)
	// sorted and ops are the key-ordered copy of b and its index, kept
	// between batches.
	sorted logkv.Batch
	ops    []batchOp
}

// sortFrom is the operation count from which a coalesced batch is applied
// in key order. Below it a follower streaming at pace (a frame of a few
// hundred pipelines) gains nothing measurable, and a leader's group commit
// (tens of pipelines) would pay the sort for nothing.
const sortFrom = 4096

// maxKeptOps bounds the index a coalescer keeps between batches (64K
// operations, 3.5 MiB); a batch of more tiny operations allocates its own.
const maxKeptOps = 1 << 16

// KeyOrderApplier is implemented by an engine whose Apply of a large batch
// costs less with the batch's keys in order; PrefersKeyOrder says whether
// this one does. The coalescer then sorts the batches it builds of sortFrom
// operations or more (a follower's catch-up, a replay) before applying them.
type KeyOrderApplier interface {
	PrefersKeyOrder() bool
}

// prefersKeyOrder reports whether eng asks for key-ordered batches.
func prefersKeyOrder(eng logkv.Engine) bool {
	k, ok := eng.(KeyOrderApplier)
	return ok && k.PrefersKeyOrder()
}

// batchOp is one operation of a batch, aliasing the batch's encoding.
type batchOp struct {
	kind       logkv.Kind
	key, value []byte
}

// inKeyOrder returns b's operations as a batch in key order, stable: m.sorted,
// rebuilt.
func (m *coalescer) inKeyOrder(b *logkv.Batch) *logkv.Batch {
	ops := m.ops[:0]
	r := b.Reader()
	for {
		kind, key, value, ok := r.Next()
		if !ok {
			break
		}
		ops = append(ops, batchOp{kind, key, value})
	}
	slices.SortStableFunc(ops, func(x, y batchOp) int { return bytes.Compare(x.key, y.key) })
	m.sorted.Reset()
	for _, o := range ops {
		if o.kind == logkv.KindDelete {
			m.sorted.Delete(o.key)
		} else {
			m.sorted.Set(o.key, o.value)
		}
	}
	clear(ops) // keep no reference into b's buffer
	m.ops = ops[:0]
	if cap(ops) > maxKeptOps {
		m.ops = nil
	}
	return &m.sorted
}

// makeRoom applies what is queued if a record of n more bytes would take
// the batch past coalesceBytes. An error is the engine's.
func (m *coalescer) makeRoom(eng logkv.Engine, n int) error {
	if m.last != 0 && m.b.Size()+n > coalesceBytes {
		return m.flush(eng)
	}
	return nil
}

// add queues record seq, whose encoded batch is data. An error is the
// record's: its encoding is invalid (wrapping logkv.ErrCorrupt).
func (m *coalescer) add(seq uint64, data []byte) error {
	if err := m.b.AppendRepr(data); err != nil {
		return fmt.Errorf("replicate: record %d: %w", seq, err)
	}
	if m.last == 0 {
		m.first = seq
	}
	m.last = seq
	return nil
}

// flush applies the queued records. An error is the engine's.
func (m *coalescer) flush(eng logkv.Engine) error {
	if m.last == 0 {
		return nil
	}
	first, last := m.first, m.last
	b := &m.b
	if b.Len() >= sortFrom && prefersKeyOrder(eng) {
		b = m.inKeyOrder(b)
	}
	err := eng.Apply(b, &logkv.WriteOptions{Seq: last})
	if m.b.Size() > 4*coalesceBytes {
		m.b = logkv.Batch{} // one huge record: do not keep its buffer
	} else {
		m.b.Reset()
	}
	if m.sorted.Size() > 4*coalesceBytes {
		m.sorted = logkv.Batch{}
	} else {
		m.sorted.Reset()
	}
	m.first, m.last = 0, 0
	if err != nil {
		if first == last {
			return fmt.Errorf("replicate: apply seq %d: %w", last, err)
		}
		return fmt.Errorf("replicate: apply seqs %d..%d: %w", first, last, err)
	}
	m.applied(last)
	return nil
}

// waitQuorum waits until q followers report seq durable, counting only
// the synchronous set when one is set (SetSyncSet).
func (l *leader) waitQuorum(seq uint64, q int, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		l.mu.Lock()
		count := 0
		for _, p := range l.peers {
			if p.durable.Load() >= seq && l.n.counts(p.id) {
				count++
			}
		}
		ch := l.acked
		l.mu.Unlock()
		if count >= q {
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			of := "followers"
			if l.n.syncSet.Load() != nil {
				of = "followers of the synchronous set recorded in etcd (kvnode cluster status lists it)"
			}
			return fmt.Errorf("replicate: quorum of %d not reached within %v (seq %d is durable on %d %s): %w", q, timeout, seq, count, of, ErrQuorum)
		case <-l.ctx.Done():
			return logkv.ErrClosed
		}
	}
}
