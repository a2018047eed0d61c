package replicate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/commitlog"
)

// Replica is a running node: an engine behind a commit log, in the role of
// leader (accepting writes, shipping its log) or follower (applying a
// leader's). All its methods are safe for concurrent use.
type Replica struct {
	cfg Config
	log *commitlog.Log

	engMu sync.RWMutex
	eng   logkv.Engine
	// live is eng for Engine, which every read calls: stored wherever eng
	// is written (under engMu, or before the Replica is shared), loaded
	// without engMu (two atomics a GET fewer than its RLock).
	live atomic.Pointer[logkv.Engine]
	// gen is the live engine's generation (see engineFile); written under
	// engMu by a full resync, which only the follower goroutine runs.
	gen uint64

	// The write path (commit.go): records are appended in seq order under
	// wmu, made durable by group commit, then applied to the engine in seq
	// order by whichever writer holds amu.
	wmu     sync.Mutex
	leading bool // appends allowed; guarded by wmu
	// unapplied are the records appended and not yet applied, in seq
	// order; guarded by wmu.
	unapplied []unappliedRecord
	// unappliedBytes is the size of the batches submitted and not yet
	// applied (unapplied's, and those applyThrough is applying). Past
	// applyBacklog, Submit wakes applyLoop; past maxBacklog, it waits
	// (waitBacklog).
	unappliedBytes atomic.Int64
	applyKick      chan struct{}
	amu            sync.Mutex
	// coalesce and applying belong to the holder of amu.
	coalesce coalescer
	applying []unappliedRecord
	applied  atomic.Uint64
	// appliedCh is closed and replaced whenever applied advances.
	appliedMu sync.Mutex
	appliedCh chan struct{}
	failed    atomic.Pointer[error] // a durable record the engine refused

	progress progress
	// syncSet, when set, names the only followers a sync-mode quorum
	// counts (wait.go: SetSyncSet).
	syncSet atomic.Pointer[map[string]bool]
	// quorumSeq is the highest seq durable on a quorum of the counted
	// followers of the leadership now running, 0 on a node that does not
	// lead (wait.go: QuorumSeq).
	quorumSeq atomic.Uint64

	roleMu sync.Mutex
	// role is written under roleMu and read without it (every client
	// write asks).
	role     atomic.Int32
	leader   *leader
	follower *follower

	checkpointSeq atomic.Uint64 // seq of the newest checkpoint (or engine sync)
	syncKick      chan struct{} // wakes the background syncer (SyncInterval)
	// syncEvery is the sync policy in force: Config.SyncInterval at Open,
	// then whatever SetSyncInterval set (nanoseconds; 0: Await fsyncs).
	syncEvery atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	// testHookResync, if set before the node follows, runs at each stage of
	// a full resync (see follower.resync).
	testHookResync func(stage string)
}

// Open opens the node's log and engine, brings the engine up to the end of
// the log (from a checkpoint first, if the engine came back empty), and
// starts the configured role.
func Open(cfg Config) (*Replica, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := cfg.FS.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("replicate: %w", err)
	}
	if err := cfg.FS.SyncDir(filepath.Dir(filepath.Clean(cfg.Dir))); err != nil {
		return nil, fmt.Errorf("replicate: %w", err)
	}
	l, err := commitlog.Open(filepath.Join(cfg.Dir, "log"), &commitlog.Options{FS: cfg.FS, SegmentSize: cfg.SegmentSize, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	n := &Replica{cfg: cfg, log: l, appliedCh: make(chan struct{}), applyKick: make(chan struct{}, 1)}
	n.coalesce.applied = n.applied.Store
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.recover(); err != nil {
		if n.eng != nil {
			n.eng.Close()
		}
		l.Close()
		return nil, err
	}
	switch cfg.Role {
	case Leader:
		err = n.becomeLeader(0)
	case Follower:
		n.becomeFollower(cfg.LeaderAddr, false)
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	if cfg.MaintainEvery > 0 {
		n.wg.Go(n.maintainLoop)
	}
	// The background syncer runs whatever the policy, so that
	// SetSyncInterval can switch to SyncInterval mode at any time; under
	// "fsync in Await" it wakes once a second and finds nothing to do.
	n.syncEvery.Store(int64(cfg.SyncInterval))
	n.syncKick = make(chan struct{}, 1)
	n.wg.Go(n.syncLoop)
	n.wg.Go(n.applyLoop)
	return n, nil
}

// SetSyncInterval switches the sync policy of a running node, as
// Config.SyncInterval sets it at Open: 0 makes every Await wait for its
// fsync again; a positive interval lets Await in Async mode return once its
// records reached the operating system, the background syncer making them
// durable within the interval.
//
// Writes in flight: switching to 0 returns only once every record written
// so far is durable (one fsync), so every write acknowledged after
// SetSyncInterval(0) returns is durable, including writes whose Await
// started under the old policy and returns later. Switching to a positive
// interval takes effect for the Awaits that start after it; earlier ones
// still wait for their fsync.
func (n *Replica) SetSyncInterval(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("replicate: sync interval %v is negative", d)
	}
	n.syncEvery.Store(int64(d))
	if d > 0 {
		n.wakeSyncer() // take up the new interval now
		return nil
	}
	if last := n.log.LastSeq(); last > 0 {
		return n.untilWritten(func() error { return n.log.Sync(last) })
	}
	return nil
}

// SyncInterval is the sync policy in force (see SetSyncInterval).
func (n *Replica) SyncInterval() time.Duration { return time.Duration(n.syncEvery.Load()) }

// recover opens the live engine generation, finishes a full resync a crash
// interrupted after its commit point, and replays the log into the engine.
func (n *Replica) recover() error {
	st, err := n.readEngineState()
	if err != nil {
		return err
	}
	n.gen = st.gen
	// What a resync left: a stage it never committed (gen+1), or the
	// generation it replaced (gen-1).
	for _, g := range []uint64{st.gen + 1, st.gen - 1} {
		if g == st.gen+1 || st.gen > 0 {
			if err := n.removeGen(g); err != nil {
				return fmt.Errorf("replicate: remove engine generation %d: %w", g, err)
			}
		}
	}
	eng, err := n.cfg.Engines.Open(st.gen, false)
	if err != nil {
		return fmt.Errorf("replicate: open engine: %w", err)
	}
	n.eng = eng
	n.live.Store(&eng)
	var ckptErr error // the checkpoint's, if it could not be loaded
	if eng.LastSeq() == 0 {
		if seq, err := n.loadCheckpoint(eng); err != nil {
			ckptErr = err
			n.cfg.Logger.Warn("checkpoint not loaded", "err", err)
			// A half-loaded engine is of no use: start again from empty.
			eng.Close()
			if n.eng, err = n.cfg.Engines.Open(st.gen, true); err != nil {
				return fmt.Errorf("replicate: open engine: %w", err)
			}
			fresh := n.eng
			n.live.Store(&fresh)
		} else if seq > 0 {
			n.checkpointSeq.Store(seq)
			n.cfg.Logger.Info("loaded checkpoint", "seq", seq)
		}
	}
	if st.reset > 0 {
		// A full resync committed, and may have crashed before its log
		// reset: the engine holds the leader's snapshot at st.reset.
		if err := n.log.Reset(st.reset+1, st.history); err != nil {
			return err
		}
		if err := n.writeEngineState(engineState{gen: st.gen}); err != nil {
			return err
		}
		n.cfg.Logger.Info("finished an interrupted full resync", "seq", st.reset, "engine_seq", n.eng.LastSeq())
	}
	// Without its checkpoint the engine starts empty, which loses nothing
	// only while the log holds every record from the first on. Otherwise
	// the records before the log's start are in the checkpoint alone: a
	// leader refuses to start with the checkpoint's error, which names the
	// file and the offset of the damage (and not only "the engine is at seq
	// 0", below); a follower goes on, and its leader resyncs it.
	if ckptErr != nil && (n.log.FirstSeq() > 1 || n.log.LastSeq() == 0) {
		if n.cfg.Role == Leader {
			held := fmt.Sprintf("the records before seq %d, where the log starts,", n.log.FirstSeq())
			if n.log.LastSeq() == 0 {
				held = "the records (the log holds none)"
			}
			return fmt.Errorf("replicate: %s are only in the checkpoint, which cannot be loaded: %w", held, ckptErr)
		}
		n.cfg.Logger.Error("checkpoint cannot be loaded; this follower starts empty and its leader will resync it", "err", ckptErr)
	}
	last := n.eng.LastSeq()
	switch {
	case last > n.log.LastSeq():
		// The engine is ahead of the log (a resync or checkpoint whose log
		// reset did not survive): continue the log from the engine.
		if err := n.log.Reset(last+1, n.historyUpTo(last)); err != nil {
			return err
		}
	case last+1 < n.log.FirstSeq():
		if n.cfg.Role == Leader {
			return fmt.Errorf("%w: the engine is at seq %d but the log starts at %d", ErrNeedResync, last, n.log.FirstSeq())
		}
		n.cfg.Logger.Warn("engine behind the log's start; will resync", "engine", last, "log_first", n.log.FirstSeq())
		if err := n.log.Reset(last+1, n.historyUpTo(last)); err != nil {
			return err
		}
	}
	n.applied.Store(last)
	// A follower replays its log only once its leader has said where the
	// histories fork: a tail the engine has not applied yet can then be cut
	// instead of applied and resynced away (see follower.follow).
	if last < n.log.LastSeq() && n.cfg.Role == Leader {
		if err := n.replay(last + 1); err != nil {
			return err
		}
	}
	// Without a checkpoint, nothing is known durable in the engine yet: what
	// it holds after Open may sit in its memtables (lsm without a WAL, the
	// records replayed just now) or in the page cache. Maintain syncs it
	// before it trims any of the log.
	return nil
}

func (n *Replica) historyUpTo(seq uint64) []commitlog.EpochStart {
	var h []commitlog.EpochStart
	for _, e := range n.log.History() {
		if e.Seq <= seq+1 {
			h = append(h, e)
		}
	}
	return h
}

// replay applies the log's records from seq on to the engine.
func (n *Replica) replay(from uint64) error {
	r, err := n.log.NewReader(from)
	if err != nil {
		return err
	}
	defer r.Close()
	last := n.log.DurableSeq()
	eng := n.Engine()
	m := coalescer{applied: n.applied.Store}
	for r.NextSeq() <= last {
		rec, err := r.Next(context.Background()) // durable: never waits
		if err != nil {
			return fmt.Errorf("replicate: replay: %w", err)
		}
		if err := m.makeRoom(eng, len(rec.Batch)); err != nil {
			return fmt.Errorf("replicate: replay: %w", err)
		}
		// The reader reuses its buffer: the coalescer copies the batch.
		if err := m.add(rec.Seq, rec.Batch); err != nil {
			return err
		}
	}
	if err := m.flush(eng); err != nil {
		return fmt.Errorf("replicate: replay: %w", err)
	}
	n.notifyApplied()
	n.cfg.Logger.Info("replayed the log", "from", from, "to", last)
	return nil
}

// Engine returns the node's engine, for reads. On a follower the engine is
// replaced by a full resync: take it again rather than keeping it.
func (n *Replica) Engine() logkv.Engine {
	if p := n.live.Load(); p != nil {
		return *p
	}
	return nil
}

// Log returns the node's commit log.
func (n *Replica) Log() *commitlog.Log { return n.log }

// Role returns the node's current role.
func (n *Replica) Role() Role { return Role(n.role.Load()) }

// ID returns the node's id.
func (n *Replica) ID() string { return n.cfg.ID }

// LastSeq returns the seq of the newest batch applied to the engine.
func (n *Replica) LastSeq() uint64 { return n.applied.Load() }

// Epoch returns the node's current epoch.
func (n *Replica) Epoch() uint64 { return n.log.Epoch() }

// Addr returns the address the leader listens on ("" if none).
func (n *Replica) Addr() string {
	n.roleMu.Lock()
	defer n.roleMu.Unlock()
	if n.leader != nil && n.leader.ln != nil {
		return n.leader.ln.Addr()
	}
	return ""
}

// WaitApplied waits until the engine has applied seq, or ctx is done, or
// the node is closed.
func (n *Replica) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		n.appliedMu.Lock()
		ch := n.appliedCh
		n.appliedMu.Unlock()
		if n.applied.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("replicate: waiting for seq %d (applied %d): %w", seq, n.applied.Load(), ctx.Err())
		case <-n.ctx.Done():
			return logkv.ErrClosed
		}
	}
}

// fail makes the node refuse further writes: a durable record the engine
// could not apply leaves the two out of step.
func (n *Replica) fail(err error) error {
	n.failed.CompareAndSwap(nil, &err)
	n.cfg.Logger.Error("engine refused a committed record; the node stops taking writes", "err", err)
	return err
}

// Promote makes a follower the leader of a new epoch, newer than any it has
// seen, listening on the configured ListenAddr.
func (n *Replica) Promote() error {
	if n.closed.Load() {
		return logkv.ErrClosed
	}
	n.roleMu.Lock()
	if n.Role() == Leader {
		n.roleMu.Unlock()
		return nil
	}
	f := n.follower
	n.follower = nil
	n.roleMu.Unlock()
	if f != nil {
		f.stop()
	}
	if a := n.applied.Load(); a < n.log.LastSeq() {
		// A follower that never reached its leader has not replayed its
		// log yet.
		if err := n.replay(a + 1); err != nil {
			return err
		}
	}
	epoch := n.log.Epoch()
	if f != nil {
		epoch = max(epoch, f.leaderEpoch.Load())
	}
	return n.becomeLeader(epoch + 1)
}

// Follow makes the node a follower of the leader at addr, stopping what it
// did before (leading, or following another leader). A tail that diverged
// from the new leader's history is cut (or the node resyncs) before it
// follows, unless that would discard more records its engine applied than
// Config.MaxDiscard allows: then Follow returns an error wrapping
// ErrWouldDiscard, with the numbers, and the node goes back to what it did.
// Follow waits for the leader's first answer at most HandshakeTimeout; a
// leader it cannot reach yet is retried in the background.
func (n *Replica) Follow(addr string) error { return n.follow(addr, false) }

// FollowForce is Follow without the Config.MaxDiscard check: the node
// follows addr whatever it must discard.
func (n *Replica) FollowForce(addr string) error { return n.follow(addr, true) }

func (n *Replica) follow(addr string, force bool) error {
	if n.closed.Load() {
		return logkv.ErrClosed
	}
	if n.cfg.Transport == nil {
		return errors.New("replicate: following needs a Transport")
	}
	n.roleMu.Lock()
	ld, f := n.leader, n.follower
	n.leader, n.follower = nil, nil
	n.roleMu.Unlock()
	if ld != nil {
		ld.stop()
	}
	if f != nil {
		f.stop()
	}
	if err := n.stopWrites(); err != nil {
		return err
	}
	nf := n.becomeFollower(addr, force)
	t := time.NewTimer(n.cfg.HandshakeTimeout)
	defer t.Stop()
	var err error
	select {
	case err = <-nf.first:
	case <-t.C:
	}
	if err == nil {
		return nil
	}
	// Refused: back to what the node did before.
	nf.stop()
	n.roleMu.Lock()
	n.follower = nil
	n.roleMu.Unlock()
	switch {
	case ld != nil:
		if lerr := n.becomeLeader(0); lerr != nil {
			return errors.Join(err, lerr)
		}
	case f != nil:
		n.becomeFollower(f.addr, f.force)
	}
	return err
}

// stopWrites refuses new writes, then finishes the ones in flight (sync and
// apply), so that the log and engine are settled before the node follows.
func (n *Replica) stopWrites() error {
	n.wmu.Lock()
	n.leading = false
	last := n.log.LastSeq()
	unapplied := len(n.unapplied) > 0
	n.wmu.Unlock()
	if !unapplied {
		return nil
	}
	if err := n.log.Sync(last); err != nil {
		return err
	}
	return n.applyThrough(last)
}

func (n *Replica) becomeLeader(epoch uint64) error {
	if epoch == 0 && n.log.Epoch() == 0 {
		epoch = firstEpoch()
	}
	if epoch > 0 {
		if err := n.log.BeginEpoch(epoch); err != nil {
			return err
		}
		n.cfg.Logger.Info("leading a new epoch", "epoch", epoch, "from_seq", n.log.LastSeq()+1)
	}
	ld, err := newLeader(n)
	if err != nil {
		return err
	}
	n.roleMu.Lock()
	n.leader = ld
	n.role.Store(int32(Leader))
	n.roleMu.Unlock()
	n.wmu.Lock()
	n.leading = true
	n.wmu.Unlock()
	return nil
}

func (n *Replica) becomeFollower(addr string, force bool) *follower {
	f := newFollower(n, addr)
	f.force = force
	f.testHookResync = n.testHookResync
	n.roleMu.Lock()
	n.follower = f
	n.role.Store(int32(Follower))
	n.roleMu.Unlock()
	f.start()
	return f
}

// Close stops the node, then closes its log and engine. Calling it twice is
// safe.
func (n *Replica) Close() error {
	if n.closed.Swap(true) {
		return nil
	}
	n.cancel()
	n.roleMu.Lock()
	ld, f := n.leader, n.follower
	n.roleMu.Unlock()
	if ld != nil {
		ld.stop()
	}
	if f != nil {
		f.stop()
	}
	n.wg.Wait()
	err := n.log.Close()
	if e := n.Engine().Close(); err == nil {
		err = e
	}
	return err
}

// firstEpoch is the epoch of a node that leads with a history of its own: a
// random one, as Redis' replication id, so that two nodes that never shared
// a history never agree on an epoch. Following an unrelated node is then a
// fork at seq 0 (a full resync, which Config.MaxDiscard guards), or refused
// as an older epoch, instead of two unrelated "epoch 1" logs passing for
// one history. Below 2^40, it leaves 2^63 promotions of room.
func firstEpoch() uint64 { return 1 + rand.Uint64N(1<<40) }

func (n *Replica) maintainLoop() {
	t := time.NewTicker(n.cfg.MaintainEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			if err := n.Maintain(); err != nil && !errors.Is(err, logkv.ErrClosed) {
				n.cfg.Logger.Warn("maintenance failed", "err", err)
			}
		}
	}
}

// Maintain writes a checkpoint if one is due, then trims the log as far as
// the checkpoint (or the engine's durable state) and the followers allow,
// marking followers past RetentionBytes for a full resync. The node calls it
// every MaintainEvery; tests call it directly.
func (n *Replica) Maintain() error {
	if n.closed.Load() {
		return logkv.ErrClosed
	}
	last := n.applied.Load()
	safe := n.checkpointSeq.Load()
	if n.cfg.Checkpoint {
		if last > safe && n.log.SizeFrom(safe+1) >= n.cfg.CheckpointEvery {
			if err := n.Checkpoint(); err != nil {
				return err
			}
		}
	} else if last > safe && n.log.SizeFrom(safe+1) >= n.cfg.EngineSyncEvery {
		if err := n.Engine().Sync(); err != nil {
			return err
		}
		n.checkpointSeq.Store(last)
	}
	trimTo := n.checkpointSeq.Load() + 1
	n.roleMu.Lock()
	ld := n.leader
	n.roleMu.Unlock()
	if ld != nil {
		trimTo = ld.retain(trimTo)
	}
	return n.log.TrimBefore(trimTo)
}
