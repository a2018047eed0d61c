package replicate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/commitlog"
	"github.com/logkv/logkv/replicate/transport"
	"github.com/logkv/logkv/replicate/wire"
)

// follower is the follower side of replication: it dials the leader, and
// redials with backoff whenever the stream ends.
type follower struct {
	n      *Replica
	addr   string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	state       atomic.Pointer[string]
	leaderEpoch atomic.Uint64
	leaderLast  atomic.Uint64
	resyncs     atomic.Uint64
	connects    atomic.Uint64
	syncDelay   atomic.Int64 // time.Duration the syncer waits, as the leader asked
	// force: follow even if it discards applied records (FollowForce).
	force bool
	// first receives the outcome of the first handshake that got an
	// answer: nil, or why this node refused to follow (Follow waits for it).
	first chan error
	// testHookResync, if set, runs at each stage of a full resync.
	testHookResync func(stage string)
}

func newFollower(n *Replica, addr string) *follower {
	f := &follower{n: n, addr: addr, first: make(chan error, 1)}
	f.ctx, f.cancel = context.WithCancel(n.ctx)
	f.setState(StateConnecting)
	return f
}

func (f *follower) setState(s string) { f.state.Store(&s) }

// errLeaderRefused: the leader answered the Hello with a Refuse frame.
var errLeaderRefused = errors.New("replicate: leader refused")

// StateRefused is a follower's state after it refused its leader: following
// would have discarded records its engine applied (ErrWouldDiscard).
const StateRefused = "refused"

// report hands the outcome of the first answered handshake to Follow, once.
func (f *follower) report(err error) {
	select {
	case f.first <- err:
	default:
	}
}

func (f *follower) start() { f.wg.Go(f.loop) }

func (f *follower) stop() {
	f.cancel()
	f.wg.Wait()
}

func (f *follower) loop() {
	log := f.n.cfg.Logger.With("leader", f.addr)
	backoff := f.n.cfg.RetryMin
	for f.ctx.Err() == nil {
		f.setState(StateConnecting)
		s, err := f.n.cfg.Transport.Dial(f.ctx, f.addr)
		if err == nil {
			f.connects.Add(1)
			var streamed bool
			streamed, err = f.follow(s)
			s.Close()
			if streamed {
				backoff = f.n.cfg.RetryMin
			}
		}
		if errors.Is(err, ErrWouldDiscard) {
			// Retrying would only refuse again: stay, data intact, until
			// told otherwise (FollowForce, Promote, Follow elsewhere).
			f.setState(StateRefused)
			f.report(err)
			log.Error("not following the leader", "err", err)
			return
		}
		if errors.Is(err, ErrDeposed) || errors.Is(err, errLeaderRefused) {
			f.report(err) // Follow fails with it; the loop retries otherwise
		}
		f.report(nil) // not refused: Follow need not wait for the retries
		f.setState(StateDisconnected)
		if f.ctx.Err() != nil {
			return
		}
		log.Warn("replication stream ended; redialing", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-f.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, f.n.cfg.RetryMax)
	}
}

// follow runs one connection. streamed reports whether it got as far as
// streaming records.
func (f *follower) follow(s transport.Stream) (streamed bool, err error) {
	n := f.n
	stop := context.AfterFunc(f.ctx, func() { s.Close() })
	defer stop()
	r := wire.NewReader(s)
	defer r.Close()
	w := wire.NewWriter(s, false)

	hello := wire.Hello{ID: n.cfg.ID, LastSeq: n.log.LastSeq(), Applied: n.applied.Load(), History: n.log.History()}
	if err := w.WriteFrame(wire.TypeHello, wire.AppendHello(nil, hello)); err != nil {
		return false, err
	}
	fr, err := r.ReadFrame()
	if err != nil {
		return false, err
	}
	switch fr.Type {
	case wire.TypeWelcome:
	case wire.TypeRefuse:
		reason, err := wire.DecodeRefuse(fr.Payload)
		if err != nil {
			return false, err
		}
		return false, fmt.Errorf("%w: %s", errLeaderRefused, reason)
	default:
		return false, fmt.Errorf("%w: %s frame instead of welcome", wire.ErrProtocol, fr.Type)
	}
	wl, err := wire.DecodeWelcome(fr.Payload)
	if err != nil {
		return false, err
	}
	var epoch uint64
	if len(wl.History) > 0 {
		epoch = wl.History[len(wl.History)-1].Epoch
	}
	if mine := n.log.Epoch(); epoch < mine {
		return false, fmt.Errorf("%w: leader %s is at epoch %d, this node has seen %d", ErrDeposed, wl.ID, epoch, mine)
	}
	f.leaderEpoch.Store(epoch)
	log := n.cfg.Logger.With("leader", wl.ID)

	switch wl.Mode {
	case wire.ModeStream:
		f.report(nil)
		fork := wl.Seq
		if fork > n.log.LastSeq() {
			return false, fmt.Errorf("%w: fork point %d is past this log's end %d", wire.ErrProtocol, fork, n.log.LastSeq())
		}
		if n.applied.Load() > fork {
			return false, fmt.Errorf("%w: the engine applied seq %d, past the fork point %d", ErrNeedResync, n.applied.Load(), fork)
		}
		if n.log.LastSeq() > fork {
			log.Warn("cutting a divergent tail", "fork", fork, "last", n.log.LastSeq())
			if err := n.log.TruncateAfter(fork); err != nil {
				return false, err
			}
		}
		if a := n.applied.Load(); a < fork {
			// The rest of the local log agrees with the leader: apply it.
			if err := n.replay(a + 1); err != nil {
				return false, err
			}
		}
	case wire.ModeResync:
		if d := f.discards(wl); d > 0 && !f.force && n.cfg.MaxDiscard >= 0 && d > uint64(n.cfg.MaxDiscard) {
			err := fmt.Errorf("%w: leader %s at %s sends a full resync at seq %d (epoch history %v); this node's engine applied %d records that snapshot does not hold (applied %d, epoch history %v), over the %d allowed (max_discard); follow with FORCE to discard them, or promote this node instead",
				ErrWouldDiscard, wl.ID, f.addr, wl.Seq, wl.History, d, n.applied.Load(), n.log.History(), n.cfg.MaxDiscard)
			log.Error("refusing to follow: it would discard applied records", "discard", d, "max_discard", n.cfg.MaxDiscard, "leader_seq", wl.Seq, "applied", n.applied.Load())
			return false, err
		}
		f.report(nil)
		f.setState(StateResync)
		f.resyncs.Add(1)
		log.Info("full resync", "seq", wl.Seq)
		if err := f.resync(r, wl); err != nil {
			return false, fmt.Errorf("replicate: resync: %w", err)
		}
		log.Info("resync loaded", "seq", wl.Seq)
	}
	if err := f.ack(w); err != nil {
		return false, err
	}
	f.setState(StateStreaming)
	delay := max(n.cfg.FollowerSyncDelay, 0)
	if wl.HasSyncDelay {
		delay = wl.SyncDelay
	}
	f.syncDelay.Store(int64(delay))
	return true, f.receive(s, r, w, delay)
}

// resync loads the leader's snapshot into a new engine generation beside
// the live one, and swaps it in only once it is complete and durable; the
// live engine, its checkpoint and the log are untouched until then. The
// stages, each crash-safe:
//
//  1. stage: open generation gen+1 fresh, load the snapshot into it (the
//     SnapshotEnd checks its seq and key count), make it durable (sync, or
//     for a Checkpoint engine, write its checkpoint). A crash or an error
//     here leaves the old data; Open removes the stage.
//  2. commit: write the ENGINE file naming gen+1, with the seq S and the
//     history the log must restart from (the atomic rename is the commit
//     point).
//  3. swap: readers move to the new engine, the old one closes, the log
//     restarts at S+1, ENGINE drops its reset note, and the old
//     generation's files go. A crash here: Open finds the reset note and
//     redoes the log reset, and removes the old generation.
func (f *follower) resync(r *wire.Reader, wl wire.Welcome) error {
	n := f.n
	n.engMu.RLock()
	gen := n.gen + 1
	n.engMu.RUnlock()
	if err := n.removeGen(gen); err != nil { // an earlier attempt's leftovers
		return err
	}
	eng, err := n.cfg.Engines.Open(gen, true)
	if err != nil {
		return fmt.Errorf("open a new engine: %w", err)
	}
	abandon := func(err error) error {
		eng.Close()
		if rerr := n.removeGen(gen); rerr != nil {
			n.cfg.Logger.Warn("could not remove an abandoned resync's engine; the next Open removes it", "gen", gen, "err", rerr)
		}
		return err
	}
	if err := readSnapshot(r, eng, wl.Seq); err != nil {
		return abandon(err)
	}
	if f.testHookResync != nil {
		f.testHookResync("loaded")
	}
	if err := f.stageDone(eng, gen, wl); err != nil {
		return abandon(err)
	}
	if f.testHookResync != nil {
		f.testHookResync("staged")
	}
	// The commit point.
	if err := n.writeEngineState(engineState{gen: gen, reset: wl.Seq, history: wl.History}); err != nil {
		return abandon(err)
	}
	if f.testHookResync != nil {
		f.testHookResync("committed")
	}
	n.engMu.Lock()
	old := n.eng
	n.eng, n.gen = eng, gen
	n.live.Store(&eng)
	n.engMu.Unlock()
	old.Close()
	if err := n.log.Reset(wl.Seq+1, wl.History); err != nil {
		return err
	}
	n.applied.Store(wl.Seq)
	n.checkpointSeq.Store(wl.Seq)
	n.notifyApplied()
	if f.testHookResync != nil {
		f.testHookResync("reset")
	}
	if err := n.writeEngineState(engineState{gen: gen}); err != nil {
		return err
	}
	if err := n.removeGen(gen - 1); err != nil {
		n.cfg.Logger.Warn("could not remove the replaced engine; the next Open removes it", "gen", gen-1, "err", err)
	}
	return nil
}

// stageDone makes a loaded stage durable: a checkpoint for an engine that
// keeps nothing itself, a sync otherwise.
func (f *follower) stageDone(eng logkv.Engine, gen uint64, wl wire.Welcome) error {
	n := f.n
	if !n.cfg.Checkpoint {
		return eng.Sync()
	}
	snap, err := eng.NewSnapshot()
	if err != nil {
		return err
	}
	defer snap.Close()
	return n.writeCheckpoint(snap, n.checkpointPath(gen), wl.History)
}

// discards returns how many records this node's engine applied that
// following a leader, which sends a full resync at seq with history, would
// throw away: those past the point where the histories fork, or past the
// snapshot. Epochs alone cannot tell two unrelated nodes of epoch 1 apart,
// so what the snapshot does not cover counts as discarded: a follower that
// merely lags its leader is behind its snapshot and discards nothing.
func (f *follower) discards(wl wire.Welcome) uint64 {
	n := f.n
	applied := n.applied.Load()
	fork := commitlog.ForkPoint(n.log.History(), applied, wl.History, wl.Seq)
	if applied <= fork {
		return 0
	}
	return applied - fork
}

// receive runs the stream: this goroutine reads record frames, appends
// them to the log and queues them; an applier goroutine applies the queued
// records to the engine in order; a syncer goroutine syncs the log (one
// fsync for all the frames appended meanwhile) and acks. Receive, apply and
// fsync thus overlap, and a follower's applied seq never waits for its
// fsync. The records are the leader's durable ones, so applying them before
// the local fsync is safe: after a crash the engine may be ahead of the
// local log, which recovery handles by restarting the log after the engine
// (Replica.recover). A frame that fails a check ends the stream before anything
// in it is appended. The syncer waits syncDelay before each fsync (see
// Config.FollowerSyncDelay).
func (f *follower) receive(s transport.Stream, r *wire.Reader, w *wire.Writer, syncDelay time.Duration) error {
	n := f.n
	if a, last := n.applied.Load(), n.log.LastSeq(); a < last {
		// Records an earlier stream appended but did not apply: from the log.
		if err := n.log.Sync(last); err != nil {
			return err
		}
		if err := n.replay(a + 1); err != nil {
			return err
		}
	}
	q := newRecordQueue(maxQueuedBytes)
	applyKick, syncKick := make(chan struct{}, 1), make(chan struct{}, 1)
	done := make(chan struct{})
	errs := make(chan error, 2)
	run := func(loop func() error) {
		err := loop()
		if err != nil {
			q.close() // a receiver waiting for room gives up
			s.Close() // stops the receiver
		}
		errs <- err
	}
	go run(func() error { return f.applyLoop(q, applyKick, syncKick, done) })
	go run(func() error { return f.syncLoop(w, syncDelay, syncKick, done) })
	err := f.receiveLoop(r, q, applyKick)
	close(done)
	q.close()
	for range 2 {
		if lerr := <-errs; lerr != nil {
			err = lerr // the cause: it closed the stream the receiver then failed on
		}
	}
	return err
}

// maxQueuedBytes bounds the record frames received but not yet applied; past
// it the receiver stops reading, and QUIC flow control holds the leader's
// sender for this follower (never the leader's writers).
const maxQueuedBytes = 64 << 20

// recordQueue holds the records received and appended to the log but not yet
// applied, in seq order. Their batches alias frame payloads the queue owns.
type recordQueue struct {
	mu     sync.Mutex
	recs   []commitlog.Record
	bytes  int
	max    int
	closed bool
	room   chan struct{} // signalled when bytes drop or the queue closes
}

func newRecordQueue(max int) *recordQueue {
	return &recordQueue{max: max, room: make(chan struct{}, 1)}
}

// push queues recs (whose batches alias a payload of size bytes), first
// waiting while the queue is over its bound. It fails once the queue is
// closed.
func (q *recordQueue) push(recs []commitlog.Record, size int) error {
	q.mu.Lock()
	for q.bytes >= q.max && !q.closed {
		q.mu.Unlock()
		<-q.room
		q.mu.Lock()
	}
	defer q.mu.Unlock()
	if q.closed {
		return errors.New("replicate: the applier stopped")
	}
	q.recs = append(q.recs, recs...)
	q.bytes += size
	return nil
}

// take removes and returns every queued record, and the bytes they hold.
func (q *recordQueue) take() ([]commitlog.Record, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	recs, bytes := q.recs, q.bytes
	q.recs, q.bytes = nil, 0
	return recs, bytes
}

// freed tells a waiting receiver there is room again.
func (q *recordQueue) freed() {
	select {
	case q.room <- struct{}{}:
	default:
	}
}

func (q *recordQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.freed()
}

func (f *follower) receiveLoop(r *wire.Reader, q *recordQueue, kick chan<- struct{}) error {
	n := f.n
	var recs []commitlog.Record
	for {
		fr, err := r.ReadFrame()
		if err != nil {
			return err
		}
		switch fr.Type {
		case wire.TypeRecords:
			// The reader reuses its buffer; the queued records keep theirs.
			payload := bytes.Clone(fr.Payload)
			recs, err = wire.DecodeRecords(payload, recs)
			if err != nil {
				return err
			}
			if next := n.log.LastSeq() + 1; recs[0].Seq != next {
				return fmt.Errorf("%w: records from seq %d, expected %d", wire.ErrProtocol, recs[0].Seq, next)
			}
			if e := f.leaderEpoch.Load(); recs[len(recs)-1].Epoch > e {
				return fmt.Errorf("%w: record of epoch %d from a leader of epoch %d", wire.ErrProtocol, recs[len(recs)-1].Epoch, e)
			}
			for _, rec := range recs {
				if err := n.log.AppendRecord(rec); err != nil {
					return err
				}
			}
			if err := q.push(recs, len(payload)); err != nil {
				return err
			}
			if last := recs[len(recs)-1].Seq; last > f.leaderLast.Load() {
				f.leaderLast.Store(last)
			}
		case wire.TypeHeartbeat:
			hb, err := wire.DecodeHeartbeat(fr.Payload)
			if err != nil {
				return err
			}
			f.leaderLast.Store(hb.LastSeq)
		default:
			return fmt.Errorf("%w: unexpected %s frame while streaming", wire.ErrProtocol, fr.Type)
		}
		select {
		case kick <- struct{}{}:
		default: // the applier has a kick pending already
		}
	}
}

// applyLoop applies the queued records whenever kicked, then kicks the
// syncer, until done. Records appended but not applied when it stops stay in
// the log; the next stream applies them from there.
func (f *follower) applyLoop(q *recordQueue, kick <-chan struct{}, syncKick chan<- struct{}, done <-chan struct{}) error {
	n := f.n
	m := coalescer{applied: n.applied.Store}
	for {
		select {
		case <-kick:
		case <-done:
			return nil
		}
		recs, _ := q.take()
		q.freed()
		if len(recs) > 0 {
			eng := n.Engine()
			for _, rec := range recs {
				if err := m.makeRoom(eng, len(rec.Batch)); err != nil {
					return n.fail(err)
				}
				if err := m.add(rec.Seq, rec.Batch); err != nil {
					return err // the leader sent a bad batch: end the stream
				}
			}
			if err := m.flush(eng); err != nil {
				return n.fail(err)
			}
			n.notifyApplied()
		}
		select {
		case syncKick <- struct{}{}:
		default: // the syncer has a kick pending already
		}
	}
}

// syncLoop syncs the log and acks (written, durable and applied seqs)
// whenever kicked, delay after the kick, until done.
func (f *follower) syncLoop(w *wire.Writer, delay time.Duration, kick, done <-chan struct{}) error {
	n := f.n
	for {
		select {
		case <-kick:
		case <-done:
			return nil
		}
		if d := delay; d > 0 {
			// Let more frames arrive, so that one fsync covers them.
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-done:
				t.Stop()
				return nil
			}
		}
		if err := n.log.Sync(n.log.LastSeq()); err != nil {
			return err
		}
		if err := f.ack(w); err != nil {
			return err
		}
	}
}

func (f *follower) ack(w *wire.Writer) error {
	n := f.n
	return w.WriteFrame(wire.TypeAck, wire.AppendAck(nil, wire.Ack{Written: n.log.LastSeq(), Durable: n.log.DurableSeq(), Applied: n.applied.Load()}))
}
