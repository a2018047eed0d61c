// Package groupsync is logkv's one group commit: many writers append to a
// log under their own lock, and one of them at a time syncs for all of them.
// The commit log (replicate/commitlog), bitcask's data files, the lsm WAL and
// the node's sync of an engine without a log all sync through it, so a fix
// to it lands for every caller at once.
//
// # The protocol
//
// A writer appends its record (under the log's own lock, which the Group
// never takes) and calls SyncTo with the position just past it. Then:
//
//	SyncTo(pos)
//	  durable() >= pos? ── yes ──> return nil              (no lock, no system call)
//	  a round in flight? ── yes ─> wait for it to end, look again
//	  otherwise lead a round:
//	    r, err := flush(pos) writes what is buffered, says what the fsync covers
//	    err = sync(r)       fsyncs, and on success advances durable() to r
//	    wake every waiter at once
//
// A waiter whose position the round covered returns when it ends, even if
// another waiter goes on to lead the next round: waiters are woken together
// (a channel closed), not handed a mutex one by one, which made a writer
// whose record was already durable queue behind the next fsync as well (the
// convoy the commit log was rid of first, and bitcask after it). Pebble's
// LogWriter and etcd's WAL do the same with a flusher goroutine; here the
// first writer to find no round in flight is the flusher, so an idle log
// costs no goroutine.
//
// # Errors
//
// An error from flush (a full disk the caller undid, say) fails the leader's
// call only: the caller's records stay buffered for the next round to write
// again, and each waiter looks again and may lead that round itself. An error
// from sync sticks: SyncTo returns it for this and every later call, whatever
// durable() says. After a failed fsync the page cache cannot be trusted:
// Linux may have dropped the dirty pages and marked them clean, so a later
// fsync that succeeds proves nothing about them (PostgreSQL's "fsyncgate",
// 2018). Only a reopen, which reads what the disk holds, recovers.
//
// # The watermark
//
// The Group does not keep the durable position: the caller does, and
// durable reads it. The caller advances it in sync (and may advance it
// elsewhere: a file sealed and synced whole), and may move it back (a log
// truncated), so there is one watermark, the caller's, and nothing to keep
// in step with it. Lock excludes rounds while the caller truncates, closes
// or replaces the file a round would sync.
//
// # Not a Group: kvnode's per-loop group sync
//
// kvnode's event loops hold the replies of the pipelines that wrote until
// one backend Sync covers them all (node/server.go: loopSync). That looks
// like a group commit but is a different thing, and does not use a Group:
//
//   - Its waiters are not goroutines. A held pipeline is a client parked as
//     data on its event loop, and the loop must never block: it goes on
//     serving while the Sync runs on a goroutine, and the Sync's end comes
//     back to the loop as a task (gnet's Execute) that writes the held
//     replies. SyncTo blocks its caller until its position is durable; an
//     event loop cannot call it, and a goroutine per held client is what the
//     loops exist to avoid.
//   - It has no log and no position, and does no I/O of its own. It calls
//     backend.Sync, "everything submitted so far", which (under appendfsync
//     always) is itself a SyncTo on the Group of the log below: the commit log's (replicate.Replica.Await,
//     through commitlog's Sync), or for a node without a commit log, the
//     engine's (node/writepath.go: engineSync). The loops' Syncs and those
//     of pipelines run off the loop meet in that Group, which makes them one
//     fsync. loopSync only batches replies: one Sync in flight per loop, and
//     one Sync for all the clients held while the previous one ran.
//   - Its errors are not sticky, by design: stickiness belongs to the log
//     whose fsync failed, and the Group below keeps it, so every later Sync
//     fails there. A failed loop Sync drops its group's connections
//     unanswered (no reply claims a write that is not durable); the next
//     group asks the backend again rather than repeat an error the backend
//     may have left behind (a write that failed for a full disk and was
//     undone is a flush error, which does not stick).
//   - It has no convoy to avoid: a group's clients are released together,
//     by one task, whatever the outcome; a client held while a Sync is in
//     flight waits for the next one, which starts as soon as that one ends,
//     since a Sync that started before its writes were submitted need not
//     cover them.
package groupsync

import "sync"

// Group is the group commit of one log. R is what a round's flush hands its
// sync: the file and the position it covers, typically. The zero Group is
// not usable: make one with New. All its methods are safe for concurrent
// use.
type Group[R any] struct {
	durable func() uint64
	flush   func(pos uint64) (R, error)
	sync    func(R) error

	// OnWait, if set before the Group is shared (tests), runs as a caller
	// starts waiting for a round it does not lead.
	OnWait func()

	mu      sync.Mutex
	busy    bool          // a round is in flight, or Lock holds the Group
	done    chan struct{} // closed when the round (or Lock) ends, then replaced
	err     error         // sticky: a failed sync (or Fail)
	rounds  uint64        // rounds whose sync ran, for tests and metrics
	waiters uint64        // callers that waited for another's round
}

// New returns a Group over the caller's log:
//
//   - durable returns the position up to which everything is durable. It
//     is called with no lock of the Group held, by any caller, often (it
//     is the fast path): an atomic load, ideally.
//   - flush is called by one leader at a time, with no lock of the Group
//     held, and the leader's pos. It writes what is buffered (under the
//     log's lock) and returns what the round's sync must make durable:
//     everything appended so far, so that every writer waiting has its
//     records covered. An error fails the leader's call only. If the round
//     cannot cover pos (the log was cut back past it), flush must say so
//     with an error: SyncTo returns nil only once durable() >= pos, and
//     leads round after round until then.
//   - sync is called after a flush that returned no error, by the same
//     leader, with no lock held: it fsyncs what flush wrote and, on
//     success, advances the watermark durable reads (under the log's
//     lock, if the log keeps other state with it). Its error sticks.
func New[R any](durable func() uint64, flush func(pos uint64) (R, error), sync func(R) error) *Group[R] {
	return &Group[R]{durable: durable, flush: flush, sync: sync, done: make(chan struct{})}
}

// SyncTo returns once everything up to pos is durable (durable() >= pos),
// leading a round itself if none is in flight. It returns the leader's
// flush error if it led a round whose flush failed, and the sticky error
// once a sync has failed, for every position a successful sync did not
// cover before.
func (g *Group[R]) SyncTo(pos uint64) error {
	for {
		// A position covered before a failure was durable then and still
		// is: the fast path needs no lock.
		if g.durable() >= pos {
			return nil
		}
		g.mu.Lock()
		if g.err != nil {
			err := g.err
			g.mu.Unlock()
			return err
		}
		if g.durable() >= pos { // covered by a round that just ended
			g.mu.Unlock()
			return nil
		}
		if g.busy {
			ch := g.done
			g.waiters++
			g.mu.Unlock()
			if g.OnWait != nil {
				g.OnWait()
			}
			<-ch
			continue
		}
		g.busy = true
		g.mu.Unlock()
		if err := g.lead(pos); err != nil {
			return err
		}
		// Look again rather than trust the round: it covered pos unless
		// the log moved its watermark back meanwhile.
	}
}

// lead runs one round; the caller set g.busy.
func (g *Group[R]) lead(pos uint64) (err error) {
	synced := false
	// Deferred, so that a panic in the caller's flush or sync does not
	// leave every later SyncTo waiting for a round that never ends.
	defer func() {
		g.mu.Lock()
		if synced {
			g.rounds++
			if err != nil && g.err == nil {
				g.err = err
			}
		}
		g.busy = false
		close(g.done) // every waiter, whatever the outcome
		g.done = make(chan struct{})
		g.mu.Unlock()
	}()
	r, err := g.flush(pos)
	if err != nil {
		return err
	}
	synced = true
	return g.sync(r)
}

// Err returns the sticky error: that of the first sync that failed, or of
// Fail; nil while every sync has succeeded.
func (g *Group[R]) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Fail makes err the sticky error, if none is yet, and returns the sticky
// error: for a sync the caller ran outside a round (sealing a full file, say)
// whose failure must fail every later SyncTo as a round's would.
// Fail(nil) only returns the sticky error.
func (g *Group[R]) Fail(err error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		g.err = err
	}
	return g.err
}

// Lock waits for the round in flight, if any, to end, and keeps new rounds
// from starting until Unlock: for the caller to truncate, close or replace
// the file a round syncs. Callers of SyncTo meanwhile wait, and look again
// at durable() once Unlock is called. Lock must not be called with a lock
// that flush or sync takes held (the round in flight would wait for it).
func (g *Group[R]) Lock() {
	g.mu.Lock()
	for g.busy {
		ch := g.done
		g.mu.Unlock()
		<-ch
		g.mu.Lock()
	}
	g.busy = true
	g.mu.Unlock()
}

// Unlock ends Lock: waiting callers look again.
func (g *Group[R]) Unlock() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.busy {
		panic("groupsync: Unlock of a Group not locked")
	}
	g.busy = false
	close(g.done)
	g.done = make(chan struct{})
}

// Stats returns how many rounds synced and how many calls waited for a
// round they did not lead, since New.
func (g *Group[R]) Stats() (rounds, waits uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rounds, g.waiters
}
