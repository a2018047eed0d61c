package node

// The target's half of a slot move (move.go draws the whole), and the
// leader's sweep of the rows of slots its shard does not serve.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/coord"
)

// moveLeaderKey is coord's leader key of shard.
func moveLeaderKey(cluster, shard string) string {
	return "/logkv/" + cluster + "/shards/" + shard + "/leader"
}

// runMoves runs on every member until ctx ends: while it leads its shard,
// it imports each move the map names to its shard (one goroutine per move)
// and, after each table it has not swept, deletes the rows of slots its
// shard neither owns nor imports (dropUnowned).
func (b *clusterBackend) runMoves(ctx context.Context) {
	type worker struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	workers := map[string]*worker{}
	// finished holds the table version at which a move's worker ended: the
	// table may show the move a while after its flip, and a worker started
	// then only finds it gone in etcd.
	finished := map[string]int64{}
	var swept *slotTable
	var wasLeading bool
	stopAll := func() {
		for k, w := range workers {
			w.cancel()
			<-w.done
			delete(workers, k)
		}
	}
	defer stopAll()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-b.moves.confirm: // a new leader, or a command refused for its table
		}
		t := b.route.table.Load()
		for k, w := range workers {
			select {
			case <-w.done:
				delete(workers, k)
				if t != nil {
					finished[k] = t.version
				}
			default:
			}
		}
		leading := !b.IsFollower()
		if e := b.leading.Load(); e != 0 && t != nil && b.moves.freshFor.Load() != e {
			// Elected at revision e: a read of the map now is after it, so
			// a table of that version (notSharded: no map) holds every
			// flip before this node led (moveTracker.freshFor). The read
			// is here, off the command path: route and Submit only refuse.
			if err := b.confirmTable(ctx, t); err == nil {
				b.moves.freshFor.Store(e)
			} else if !errors.Is(err, errTableStale) {
				b.n.log.Debug("cluster: cannot confirm the slot table against etcd; retrying", "err", err)
			}
		}
		if !leading || t == nil || t == notSharded {
			if len(workers) > 0 {
				stopAll()
			}
			wasLeading, swept = false, nil
			continue
		}
		if !wasLeading {
			swept = nil // a new leader sweeps once
		}
		wasLeading = true
		want := map[string]bool{}
		for _, mv := range t.moves {
			if int(mv.To) != t.self {
				continue
			}
			// A move is its slots and its source: an abort and a move of
			// the same slots from another shard is another move.
			from := t.shards[mv.From]
			k := moveKeyOf(mv.First, mv.Last) + " from " + from
			want[k] = true
			if v, ok := finished[k]; ok && t.version <= v {
				continue
			}
			delete(finished, k)
			if workers[k] == nil {
				wctx, cancel := context.WithCancel(ctx)
				w := &worker{cancel: cancel, done: make(chan struct{})}
				workers[k] = w
				first, last := mv.First, mv.Last
				go func() {
					defer close(w.done)
					b.importRange(wctx, first, last, from)
				}()
			}
		}
		for k, w := range workers {
			if !want[k] {
				w.cancel() // the move is gone from the map (done or aborted)
				<-w.done
				delete(workers, k)
			}
		}
		if swept != t {
			// A table etcd has moved past is not swept (dropUnowned): the
			// next one the watch brings is.
			if err := b.dropUnowned(ctx, t); err != nil && !errors.Is(err, errTableStale) {
				b.n.log.Warn("cluster: deleting the rows of slots this shard does not serve failed; retrying", "err", err)
				continue
			}
			swept = t
		}
	}
}

// importRange copies first..last into this shard until the map flips it
// here, or the move leaves the map (an abort), or ctx ends (the node no
// longer leads). Each failed attempt is logged and retried: the copy
// starts again from nothing.
func (b *clusterBackend) importRange(ctx context.Context, first, last uint16, from string) {
	log := b.n.log.With("move", moveKeyOf(first, last), "from", from)
	b.moveStats.running.Add(1)
	defer b.moveStats.running.Add(-1)
	start := time.Now()
	for attempt := 1; ctx.Err() == nil; attempt++ {
		done, err := b.importAttempt(ctx, first, last, from, attempt, start, log)
		if done {
			return
		}
		if ctx.Err() != nil {
			return
		}
		b.moveStats.failed.Add(1)
		log.Warn("cluster: slot move attempt failed; copying anew", "attempt", attempt, "err", err)
		sleepCtx(ctx, moveRetry)
	}
}

// importAttempt is one copy of first..last: done is true once the move
// flipped here or left the map.
func (b *clusterBackend) importAttempt(ctx context.Context, first, last uint16, from string, attempt int, start time.Time, log *slog.Logger) (done bool, err error) {
	cluster := b.n.cfg.Cluster.Name
	// The map as etcd holds it, not this node's table: the table may still
	// show a move this node has just flipped, and copying it again would
	// begin by deleting the range it now owns.
	mctx, cancel := context.WithTimeout(ctx, clusterInfoTimeout)
	m, err := readSlotMap(mctx, b.cli, cluster)
	cancel()
	if err != nil {
		return false, err
	}
	if m == nil {
		return true, nil
	}
	i := m.findMove(first, last)
	if i < 0 || m.Shards[m.Moves[i].To] != b.myShard() || m.Shards[m.Moves[i].From] != from {
		return true, nil
	}
	mv := m.Moves[i]
	to := m.Shards[mv.To]
	if mv.State == moveSwitching {
		// A previous attempt (or leader) switched and did not flip: the
		// source serves again once the move is back to copying.
		if _, err := b.setMoveState(ctx, first, last, from, moveSwitching, moveCopying); err != nil {
			return false, fmt.Errorf("write the move back to copying: %w", err)
		}
		log.Info("cluster: a switch left undecided is rolled back; copying anew")
	}
	p := moveProgress{V: 1, First: first, Last: last, From: from, To: to, State: "copying", Target: b.r.ID(),
		Attempt: attempt, StartedMs: time.Now().UnixMilli()}
	b.publishProgress(ctx, p)

	// The source's leader and its move listener.
	lctx, cancel := context.WithTimeout(ctx, clusterInfoTimeout)
	resp, err := b.cli.Get(lctx, moveLeaderKey(cluster, from))
	cancel()
	if err != nil {
		return false, fmt.Errorf("read shard %s's leader: %w", from, err)
	}
	var l coord.Leader
	if len(resp.Kvs) == 0 || json.Unmarshal(resp.Kvs[0].Value, &l) != nil {
		return false, fmt.Errorf("shard %s has no leader now", from)
	}
	// The source's epoch: its leader key's CreateRevision. The flip holds
	// only while that key is still the one read here, so a source deposed
	// after its fence (a handover, a lapsed lease) flips nothing: its
	// successor may have acknowledged writes in the range that no round
	// shipped. (The node at l.Move leads this epoch when it starts the
	// stream, or the key changed since and the flip fails: one key lives
	// at a time, and each election creates it anew.)
	srcEpoch := resp.Kvs[0].CreateRevision
	if l.Move == "" {
		return false, fmt.Errorf("shard %s's leader %s names no move listener (a kvnode without slot moves?)", from, l.ID)
	}
	// A restarted copy starts from nothing: rows of an earlier attempt
	// could be keys deleted since.
	if _, err := b.n.deleteSlotRange(first, last); err != nil {
		return false, fmt.Errorf("clear the range before copying: %w", err)
	}
	gen, err := b.n.gen(0)
	if err != nil {
		return false, err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	s, err := b.moveTr.Dial(dctx, l.Move)
	cancel()
	if err != nil {
		return false, fmt.Errorf("dial shard %s's leader %s at %s: %w", from, l.ID, l.Move, err)
	}
	var closeOnce sync.Once
	closeStream := func() { closeOnce.Do(func() { _ = s.Close() }) } // ending the attempt either way
	defer closeStream()
	stop := context.AfterFunc(ctx, closeStream)
	defer stop()
	if _, err := s.Write(encodeMoveRequest(first, last)); err != nil {
		return false, err
	}
	// A read that makes no progress for moveReadTimeout ends the attempt:
	// a source process that hangs (stopped, not dead) keeps its kernel's
	// TCP keep-alives going, so only this finds it.
	rd := &timedReader{r: s, d: moveReadTimeout}
	rd.timer = time.AfterFunc(time.Hour, func() { rd.expired.Store(true); closeStream() })
	rd.timer.Stop()
	defer rd.timer.Stop()
	r := &moveReader{r: bufio.NewReaderSize(rd, 256<<10), first: first, last: last,
		maxKey: b.n.cfg.Limits.MaxKeySize, maxValue: b.n.cfg.Limits.MaxValueSize}
	ap := &moveApplier{b: b, gen: gen}

	// Copy, then tail rounds until one is small.
	copied := false
	rounds := 0
	lastPublish := time.Now()
	for {
		f, err := r.next()
		if err != nil {
			return false, err
		}
		switch f.kind {
		case frameRow, frameDelete:
			if err := ap.add(f); err != nil {
				return false, err
			}
			continue
		case frameSnapshot:
			copied = true
			p.State = "tail"
		case frameRound:
			rounds++
		default:
			return false, fmt.Errorf("node: slot move: unexpected frame %q before the pause", f.kind)
		}
		if err := ap.flush(); err != nil {
			return false, err
		}
		if f.kind == frameSnapshot {
			if err := b.Sync(); err != nil {
				return false, err
			}
			moveStage(ctx, "target-copied")
		}
		if time.Since(lastPublish) > time.Second {
			p.Keys, p.Bytes, p.Rounds = ap.keys, ap.bytes, rounds
			b.publishProgress(ctx, p)
			lastPublish = time.Now()
		}
		if copied && f.kind == frameRound && (f.n <= moveSwitchKeys || rounds >= moveMaxRounds) {
			break
		}
	}
	if err := b.Sync(); err != nil {
		return false, err
	}

	// Switch: the map says so first (a new source leader then refuses the
	// range too), then the source pauses and fences.
	sw, err := b.setMoveState(ctx, first, last, from, moveCopying, moveSwitching)
	if err != nil {
		return errors.Is(err, errMoveGone), err
	}
	pauseStart := time.Now()
	var pm [9]byte
	pm[0] = framePause
	binary.BigEndian.PutUint64(pm[1:], uint64(sw.Version))
	if _, err := s.Write(pm[:]); err != nil {
		return false, b.rollback(ctx, first, last, from, fmt.Errorf("ask the source to pause: %w", err))
	}
	timer := time.AfterFunc(moveSwitchTimeout, closeStream)
	fenced := false
	for !fenced {
		f, err := r.next()
		if err != nil {
			timer.Stop()
			return false, b.rollback(ctx, first, last, from, fmt.Errorf("waiting for the fence: %w", err))
		}
		switch f.kind {
		case frameRow, frameDelete:
			err = ap.add(f)
		case frameRound:
		case frameFence:
			fenced = true
		default:
			err = fmt.Errorf("node: slot move: unexpected frame %q after the pause", f.kind)
		}
		if err != nil {
			timer.Stop()
			return false, b.rollback(ctx, first, last, from, err)
		}
	}
	timer.Stop()
	if err := errors.Join(ap.flush(), b.Sync()); err != nil {
		return false, b.rollback(ctx, first, last, from, err)
	}
	// From here to the flip a flush of database 0 is refused here; one
	// submitted before is readable after the barrier, and fails the
	// attempt. (Checked later, a flush between the check and the flip hid
	// every copied row: the flip then served the range empty.)
	endSwitch := b.moves.beginSwitch()
	defer endSwitch()
	if err := b.replicatedBackend.Barrier(); err != nil {
		return false, b.rollback(ctx, first, last, from, err)
	}
	if g, err := b.n.readGen(0); err != nil || g != gen {
		return false, b.rollback(ctx, first, last, from, errors.New("database 0 was flushed here during the move"))
	}
	moveStage(ctx, "target-fenced")

	// Flip, while the move is still switching and this node still leads
	// the epoch it copied in.
	epoch := b.leadingEpoch()
	if epoch == 0 {
		return false, errors.New("this node stopped leading before the flip")
	}
	p.State, p.Keys, p.Bytes, p.Rounds = "done", ap.keys, ap.bytes, rounds
	p.DurationMs = time.Since(start).Milliseconds()
	p.PauseMs = time.Since(pauseStart).Milliseconds()
	fm, err := updateSlotMap(ctx, b.cli, cluster, func(m *slotMap) (*slotMap, []clientv3.Op, error) {
		i := m.findMove(first, last)
		if i < 0 || m.Shards[m.Moves[i].To] != to || m.Shards[m.Moves[i].From] != from {
			return nil, nil, errMoveGone
		}
		if m.Moves[i].State != moveSwitching {
			// Rolled back to copying (an earlier attempt's rollback that
			// landed late, an operator): the move is still this node's to
			// finish, so the attempt fails and the next copies anew.
			return nil, nil, errMoveStateChanged
		}
		p.PauseMs = time.Since(pauseStart).Milliseconds()
		val, _ := json.Marshal(p) // plain fields
		return m.flip(i), []clientv3.Op{clientv3.OpPut(moveProgressKey(cluster, first, last), string(val))}, nil
	}, clientv3.Compare(clientv3.CreateRevision(moveLeaderKey(cluster, to)), "=", int64(epoch)),
		clientv3.Compare(clientv3.CreateRevision(moveLeaderKey(cluster, from)), "=", srcEpoch))
	if errors.Is(err, errMapCondition) {
		// This node or the source's leader changed since the stream
		// began: the source serves again, and the next attempt copies
		// from whoever leads it now.
		return false, b.rollback(ctx, first, last, from, fmt.Errorf("flip the map: this node or shard %s's leader changed during the move: %w", from, err))
	}
	if err != nil {
		return errors.Is(err, errMoveGone), fmt.Errorf("flip the map: %w", err)
	}
	b.installFlip(fm)
	pause := time.Since(pauseStart)
	st := &b.moveStats
	st.done.Add(1)
	st.keys.Add(ap.keys)
	st.bytes.Add(ap.bytes)
	st.lastDurationMicros.Store(time.Since(start).Microseconds())
	st.lastPauseMicros.Store(pause.Microseconds())
	log.Info("cluster: slots moved here", "from", from, "keys", ap.keys, "bytes", ap.bytes, "rounds", rounds,
		"took", time.Since(start), "pause", pause, "map_version", fm.Version)
	return true, nil
}

// errMoveGone: the move left the map (aborted, or done) or names other
// shards: the importer ends (importAttempt's done).
var errMoveGone = errors.New("node: the move is no longer in the slot map as this target copies it (aborted?)")

// errMoveStateChanged: the move is still in the map, in a state other than
// the one this attempt expected (rolled back to copying under a flip).
// The attempt fails and the importer retries: ending it left the move in
// copying with no importer until an unrelated map change.
var errMoveStateChanged = errors.New("node: the move changed state under this attempt (rolled back?); copying anew")

// setMoveState writes the move of first..last from shard from, from state
// want to state to, on the map's revision. errMoveGone if the move is not
// in the map, errMoveStateChanged if it is in neither want nor to.
func (b *clusterBackend) setMoveState(ctx context.Context, first, last uint16, from, want, to string) (*slotMap, error) {
	return updateSlotMap(ctx, b.cli, b.n.cfg.Cluster.Name, func(m *slotMap) (*slotMap, []clientv3.Op, error) {
		i := m.findMove(first, last)
		if i < 0 || m.Shards[m.Moves[i].From] != from {
			return nil, nil, errMoveGone
		}
		if m.Moves[i].State == to {
			return nil, nil, errMapUnchanged
		}
		if m.Moves[i].State != want {
			return nil, nil, errMoveStateChanged
		}
		m.Moves[i].State = to
		return m, nil, nil
	})
}

// rollback writes a switching move back to copying (the source serves the
// range again) and returns cause. If etcd cannot be written the source
// stays paused: only a map it sees may tell it the switch is decided; the
// next attempt retries the rollback first.
func (b *clusterBackend) rollback(ctx context.Context, first, last uint16, from string, cause error) error {
	if _, err := b.setMoveState(ctx, first, last, from, moveSwitching, moveCopying); err != nil &&
		!errors.Is(err, errMoveGone) && !errors.Is(err, errMoveStateChanged) {
		return fmt.Errorf("%w (and writing the move back to copying failed: %v)", cause, err)
	}
	return cause
}

// moveApplier batches the rows the target receives into its own writes.
type moveApplier struct {
	b           *clusterBackend
	gen         uint32
	batch       logkv.Batch
	keys, bytes int64
	key         []byte
	firstDue    int64 // the batch's earliest deadline, 0 if none
}

// add puts one row or deletion into the batch, applying it when full.
func (a *moveApplier) add(f moveFrame) error {
	// appendDataKey's layout with the slot the reader checked (no second CRC).
	a.key = append(binary.BigEndian.AppendUint16(appendDBGen(a.key[:0], 0, a.gen), f.slot), f.key...)
	if f.kind == frameDelete {
		a.batch.Delete(a.key)
	} else {
		a.batch.Set(a.key, f.value)
		if _, at, _ := decodeValue(f.value); at != 0 { // checked by next
			a.key = appendExpiryKey(a.key[:0], 0, a.gen, at, f.key)
			a.batch.Set(a.key, nil)
			// The expirer must look by at (it may be past its floor, or
			// nextDue may say nothing is due), as for a local write.
			a.b.n.lowerNextDue(at)
			if a.firstDue == 0 || at < a.firstDue {
				a.firstDue = at
			}
		}
		a.keys++
		a.bytes += int64(len(f.key) + len(f.value))
	}
	if a.batch.Size() >= moveBatchBytes {
		return a.flush()
	}
	return nil
}

// flush applies the batch through the backend: the target's commit log,
// so its followers get the rows.
func (a *moveApplier) flush() error {
	if a.batch.Empty() {
		return nil
	}
	err := a.b.Submit(&a.batch)
	if a.firstDue != 0 {
		// Again once applied, as tx.apply does: a walk that read nextDue
		// before these rows were visible must not pass them by.
		a.b.n.lowerNextDue(a.firstDue)
		a.firstDue = 0
	}
	a.batch.Reset()
	return err
}

// emptiedBefore reports whether the map just before t (etcd's value of the
// map key at t's revision - 1) named this node's shard and gave it no slot
// and no move into it: remove-shard's last step, for a node that did not
// hold that table itself (its watch brought the flip and the removal in one
// response, or it restarted since). False when that map does not name the
// shard, does not decode or was compacted away: nothing then says moves
// emptied the shard.
func (b *clusterBackend) emptiedBefore(ctx context.Context, t *slotTable) (bool, error) {
	mctx, cancel := context.WithTimeout(ctx, clusterInfoTimeout)
	defer cancel()
	resp, err := b.cli.Get(mctx, slotsKey(b.n.cfg.Cluster.Name), clientv3.WithRev(t.version-1))
	if errors.Is(err, rpctypes.ErrCompacted) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the slot map before version %d: %w", t.version, err)
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	m, err := decodeSlotMap(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	if err != nil {
		return false, nil
	}
	prev := m.table()
	if prev.self = m.shardIndex(b.myShard()); prev.self < 0 {
		return false, nil
	}
	return prev.holdsNothing(), nil
}

// errTableStale: the slot map in etcd is newer than the table a sweep was
// asked to delete by; the sweep deleted nothing, and waits for the next.
var errTableStale = errors.New("node: the slot table is older than the map in etcd; not deleting by it")

// confirmTable reads the map from etcd (a linearizable read) and returns
// errTableStale unless it is t's version. The table a node routes by can
// lag etcd by any time (a broken watch, a member that just took over):
// deleting by a table that predates a flip into this shard deletes rows it
// owns, which were acknowledged by the source and exist nowhere else.
func (b *clusterBackend) confirmTable(ctx context.Context, t *slotTable) error {
	mctx, cancel := context.WithTimeout(ctx, clusterInfoTimeout)
	defer cancel()
	m, err := readSlotMap(mctx, b.cli, b.n.cfg.Cluster.Name)
	if err != nil {
		return err
	}
	if m == nil {
		if t == notSharded {
			return nil // no map, as the table says
		}
		return errTableStale
	}
	if t == notSharded || m.Version != t.version {
		return errTableStale
	}
	return nil
}

// dropUnowned deletes, through the log, the rows of database 0's slots that
// t gives neither to this node's shard nor to a move into it: the range a
// flip gave away, a copy an abort left. It seeks from one slot with rows to
// the next, so it reads about one key per range of rows it keeps.
//
// A map that does not name this node's shard (t.self -1) gives it nothing;
// its rows are deleted only if the last table that named the shard gave
// it nothing either (router.emptied: remove-shard after moves emptied it),
// and kept otherwise, with an error logged.
//
// It deletes a range only after etcd confirmed t is the map's current
// version (confirmTable), and returns errTableStale otherwise. Confirmed
// is enough for the deletes that follow: only a flip can give this shard
// a slot, a flip needs a move into this shard, and t's moves into this
// shard are kept; their importers are started by the same loop (runMoves)
// before it sweeps, so a move added after the check has no importer until
// the sweep is over (and an importer clears its range before it copies).
func (b *clusterBackend) dropUnowned(ctx context.Context, t *slotTable) error {
	keep := func(s uint16) bool {
		if int(t.owner[s]) == t.self {
			return true
		}
		for _, mv := range t.moves {
			if s >= mv.First && s <= mv.Last && int(mv.To) == t.self {
				return true
			}
		}
		return false
	}
	gen, err := b.n.gen(0)
	if err != nil {
		return err
	}
	prefix := dataPrefix(0, gen)
	for s := 0; s < numSlots && ctx.Err() == nil; {
		it, err := b.n.eng().NewIter(&logkv.IterOptions{LowerBound: slotPrefix(0, gen, uint16(s)), UpperBound: slotPrefix(0, gen, numSlots)})
		if err != nil {
			return err
		}
		found := -1
		if it.First() {
			k := it.Key()
			if len(k) >= len(prefix)+slotLen {
				found = int(binary.BigEndian.Uint16(k[len(prefix):]))
			}
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
		if found < 0 || found >= numSlots {
			return nil
		}
		if keep(uint16(found)) {
			s = found + 1
			continue
		}
		last := found
		for last+1 < numSlots && !keep(uint16(last+1)) {
			last++
		}
		if b.IsFollower() {
			return nil
		}
		if err := b.confirmTable(ctx, t); err != nil {
			return err
		}
		if t.self < 0 && !b.route.emptied.Load() {
			// A map that omits this shard while it holds rows it was never
			// emptied of by moves (as far as this node saw; the map before
			// t says for one that missed it): a map rewritten by hand.
			// Deleting would drop the whole shard; it is kept, and said
			// once per table (runMoves sweeps a table once).
			emptied, err := b.emptiedBefore(ctx, t)
			if err != nil {
				return err
			}
			if !emptied {
				b.n.log.Error("cluster: the slot map does not name this node's shard, which holds rows; keeping them, and serving none. "+
					"To serve them, put back a map that gives the shard its slots (add-shard gives it none, and the sweep would then delete them); "+
					"if they are meant to go, FLUSHALL on this node",
					"shard", b.myShard(), "map_version", t.version, "first_slot_with_rows", found)
				return nil
			}
		}
		n, err := b.n.deleteSlotRange(uint16(found), uint16(last))
		if err != nil {
			return err
		}
		if n > 0 {
			b.n.log.Info("cluster: deleted the rows of slots this shard does not serve", "slots", moveKeyOf(uint16(found), uint16(last)), "rows", n)
		}
		s = last + 1
	}
	return ctx.Err()
}

// timedReader closes its stream (timer's function) when one Read blocks
// for d. The clock runs only inside Read: the target's own work between
// reads (a batch's apply, a sync) never counts against the source. One
// timer reset per Read, which bufio makes a read of up to 256 KiB (a TLS
// record at a time): nothing per row.
type timedReader struct {
	r       io.Reader
	timer   *time.Timer
	d       time.Duration
	expired atomic.Bool // the timer fired: the stream was closed for it
}

func (t *timedReader) Read(p []byte) (int, error) {
	t.timer.Reset(t.d)
	n, err := t.r.Read(p)
	t.timer.Stop()
	if err != nil && t.expired.Load() {
		err = fmt.Errorf("node: slot move: the source sent nothing for %v (a hung process?); the attempt is retried: %w", t.d, err)
	}
	return n, err
}
