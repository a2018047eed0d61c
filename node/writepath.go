package node

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/groupsync"
	"github.com/logkv/logkv/replicate"
	"github.com/logkv/logkv/replicate/coord"
	"github.com/tidwall/redcon"
)

// # The write path
//
// A write command passes these stages in a node; each names the function
// (and file) that runs it. replicate/commit.go continues from Submit and
// Await, and draws the commit log's side.
//
//	client --RESP--> an event loop's OnTraffic (server.go)
//	  |
//	  | serve       parse each complete request (resp.go); a command that
//	  |             may wait (mayWait: WAIT and slow commands, any write
//	  |             when backend.SubmitWaits, a write that reads or a read
//	  |             after this pipeline's writes when backend.SyncWaits and
//	  |             not Visible) runs off the loop from there on (runOffLoop)
//	  | run         look up and check: MOVED on a cluster, arity, AUTH,
//	  |             access, READONLY on a follower; a read after this
//	  |             pipeline's writes syncs them first unless Visible
//	  v
//	  | queue       a blind write (SET k v [EX|PX], MSET up to 1 MiB) joins
//	  |             the client's run (queueWrite, below); a refused one
//	  |             owes its error there, after the run's replies (owe)
//	  | end run     submitRun submits the run as one batch, then writes
//	  |             the replies it owes: run calls it before any command
//	  |             that does not join, endPipeline at the pipeline's end,
//	  |             queueWrite past 1 MiB. A reply never submits a write
//	  | tx          every other write runs on a tx under its key locks:
//	  |             backend.Barrier makes every submitted write readable,
//	  |             the tx reads through its own writes, and commits one
//	  |             batch (keyspace.go: tx.apply; MULTI/EXEC shares one tx)
//	  v
//	  | submit      backend.Submit(batch), under the key locks: the write is
//	  |             ordered, not yet durable (below). standalone: the engine;
//	  |             replicatedBackend: replicate.Replica.Submit (Write, which
//	  |             waits for the quorum, in sync mode); clusterBackend: the
//	  |             same, refused (TRYAGAIN) while its lease is not known
//	  |             valid, and marked (or, in a move's pause, refused) for a
//	  |             slot move that ships its keys (move_source.go)
//	  v
//	  | hold        endPipeline (server.go): a pipeline that wrote (c.dirty)
//	  |             holds its replies in its loop's group (loopSync.hold);
//	  |             one run off the loop syncs on its own (runOffLoop)
//	  | group sync  loopSync.run, once the loop has served every ready
//	  |             connection: one backend.Sync for all the held pipelines.
//	  |             replicatedBackend: replicate.Replica.Await(the highest seq
//	  |             submitted): durable, applied, and in sync mode on the
//	  |             quorum; clusterBackend: then still leading the epoch the
//	  |             writes were logged in (mayAck); standalone: engineSync
//	  |             (with appendfsync everysec, a syncer every second)
//	  v
//	  ack         loopSync.release writes the held replies. A failed Sync
//	              drops the connections unanswered (syncFailed): no reply
//	              claims a write that is not durable.
//
// # The queue stage
//
// A client's blind writes (SET key value, MSET) are not handed to the
// backend one by one. They gather in the client's run (pendingWrites) and
// go as one batch, with one key-lock round, one commit-log record and one
// engine apply, when the run ends: before any command that does not join
// it, at the end of the pipeline, or once the batch reaches
// maxRunBytes. Their OK replies are written then, in order, or each
// gets the batch's error. A batch commits whole or not at all, so every
// write of a run shares one outcome, which is what the client would have
// seen command by command: replies are sent only after the pipeline's sync
// either way. Redis clients see no difference but the speed: under
// redis-benchmark -P 16 the replicated leader spends its per-record costs
// (submit, framing, apply, shipping) once per pipeline.
//
// The run is submitted at a stage of its own, by the serving layer and
// nowhere else (submitRun: run, endPipeline and runOffLoop in server.go,
// beforeCommand and afterCommand under CLIENT REPLY OFF or SKIP, and
// queueWriteAt past the size cap), never while a command holds key locks
// and never by writing a reply: replyConn only writes bytes.
//
// Nothing can overtake a run: a command that does not join it ends it
// before it runs (queueable says which join), and a blind write refused
// while a run is open (a bad argument, MOVED, NOAUTH, READONLY) owes its
// error in the run, after the replies before it (client.fail: owe).

// maxRunBytes bounds a client's run: past it the run is submitted, so a
// long pipeline of writes is submitted in pieces of about this size.
const maxRunBytes = 1 << 20

// pendingWrites is a client's run of blind writes not yet submitted.
type pendingWrites struct {
	batch   logkv.Batch
	stripes []int // key-lock stripes of the batch's keys
	// owed are the replies the run owes, in command order: one per blind
	// write, and the errors of the commands refused while the run was open.
	owed []owedReply
	// kbuf and vbuf hold one pair's engine encoding (keyspace.go) on its
	// way into batch, which copies it.
	kbuf, vbuf []byte
	// firstDue is the earliest deadline the batch writes (0: none).
	firstDue int64
}

// owedReply is a reply a run owes: a blind write's (stats set), which is
// OK or the batch's error once the batch is submitted, or a refused
// command's error (stats nil), written as is in its place.
type owedReply struct {
	stats   *commandStats
	refusal string
}

// open reports whether c has a run of blind writes not yet submitted.
func (p *pendingWrites) open() bool { return len(p.owed) > 0 }

// owe makes msg, the error of a command refused while the run is open, a
// reply of the run, so that it follows the replies owed before it. It
// reports false, owing nothing, when no run is open: the caller then writes
// the error at once.
func (p *pendingWrites) owe(msg string) bool {
	if !p.open() {
		return false
	}
	p.owed = append(p.owed, owedReply{refusal: msg})
	return true
}

// queueWrite adds the pairs of one blind write (key, value, key, value...)
// to c's pending run; cmd owes an OK once the run is applied. The pairs are
// checked already and form a valid batch on their own. Each is encoded for
// the client's database with no deadline: a blind write clears a TTL, as in
// Redis, and leaves the old deadline's index entry to the expirer, which
// finds it stale (keyspace.go).
func (n *Node) queueWrite(c *client, cmd *command, pairs [][]byte) {
	n.queueWriteAt(c, cmd, pairs, 0)
}

// queueWriteAt is queueWrite with deadline expireAt (0: none) for every
// pair, each with its expiry index entry: SET key value EX|PX, which reads
// nothing either. Its deadline lies in the future when the command is
// parsed, but may pass before the run is applied: the key is then written
// expired, which readers never see and the expirer removes, as if it had
// expired a moment after the SET. The old deadline's entry, if any, stays
// stale as for a blind SET: a tx would have read the key to find it, and
// that read per key, with the command's own lock round, barrier and commit
// record, made loading keys with TTLs 6x slower than without (1M keys:
// 16-27 s against 2-3 s, docs/keyspace.md).
func (n *Node) queueWriteAt(c *client, cmd *command, pairs [][]byte, expireAt int64) {
	p := &c.pend
	db := c.ks.db
	gen, err := n.gen(db)
	if err != nil {
		n.replyErr(c, err) // owed in the run, if one is open
		return
	}
	if p.open() && p.batch.Size()+pairsSize(pairs) > maxRunBytes {
		// Past the cap, the run goes before this write starts a new one.
		// After gen, whose error must not follow the run's replies in the
		// output afterCommand scans for it: it would count a refusal the
		// run owed there a second time.
		n.submitRun(c)
	}
	for i := 0; i < len(pairs); i += 2 {
		p.kbuf = appendDataKey(p.kbuf[:0], db, gen, pairs[i])
		p.vbuf = appendValue(p.vbuf[:0], expireAt, pairs[i+1])
		p.batch.Set(p.kbuf, p.vbuf)
		if expireAt != 0 {
			p.kbuf = appendExpiryKey(p.kbuf[:0], db, gen, expireAt, pairs[i])
			p.batch.Set(p.kbuf, nil)
		}
		p.stripes = append(p.stripes, n.locks.stripe(pairs[i]))
	}
	if expireAt != 0 {
		// Before the submit, as tx.apply does, and again after it
		// (submitRun).
		n.lowerNextDue(expireAt)
		if p.firstDue == 0 || expireAt < p.firstDue {
			p.firstDue = expireAt
		}
	}
	p.owed = append(p.owed, owedReply{stats: &n.metrics.cmds[cmd.id]})
	if p.batch.Size() >= maxRunBytes {
		n.submitRun(c)
	}
}

// pairsSize bounds the bytes pairs (key, value, key, value...) add to a
// batch's encoding: each with a length varint of at most 5 bytes, and per
// pair a kind byte, the key prefix and the value header, and an expiry
// index entry (a kind byte, the prefix, the key, two varints) should it
// have a deadline.
func pairsSize(pairs [][]byte) int {
	size := len(pairs) / 2 * (1 + maxDataPrefixLen + valueHeaderMax + 1 + maxExpiryPrefixLen + 5 + 5)
	for i := 0; i < len(pairs); i += 2 {
		size += len(pairs[i])
	}
	for _, a := range pairs {
		size += len(a) + 5
	}
	return size
}

// submitRun is the queue stage's end: it submits c's run of blind writes,
// if one is open, as one batch under its keys' locks, and writes the
// replies the run owes, in order. The serving layer calls it (see the
// queue stage above), never a command that holds key locks: a run's
// keys may be any keys, and a tx holding some of their stripes would wait
// for itself. It ends by checking c's output against its limits, as the
// replies it wrote may have crossed them.
func (n *Node) submitRun(c *client) {
	p := &c.pend
	if !p.open() {
		c.conn.checkLimits()
		return
	}
	unlock := n.locks.lockStripes(p.stripes)
	err := n.backend.Submit(&p.batch)
	if err == nil && n.ks.watch.count.Load() > 0 {
		n.touchBatch(&p.batch) // under the locks, as EXEC checks under them
	}
	unlock()
	if err == nil {
		c.dirty = true
	}
	if p.firstDue != 0 {
		// Again once submitted: an expirer walk that read nextDue before
		// this write and the index before it was visible must not hide it.
		// Also when Submit failed: a write refused after it was logged
		// (errFenced, a quorum timeout) may be applied.
		n.lowerNextDue(p.firstDue)
	}
	p.firstDue = 0
	var msg string
	if err != nil {
		msg = n.errReply(err) // once: it logs corruption
	}
	for _, o := range p.owed {
		switch {
		case o.stats == nil:
			// A refused command's error: counted in INFO errorstats here,
			// as afterCommand found it not written yet.
			start := len(c.conn.out)
			c.conn.WriteError(o.refusal)
			if len(c.conn.out) > start { // else dropped: the client is cut
				n.state().countError(c.conn.out[start:])
			}
		case err != nil:
			c.conn.out = redcon.AppendError(c.conn.out, msg)
			o.stats.errors.Inc()
		default:
			// Appended, not through WriteString: one limits check for the
			// run, at the end (its OKs are fewer bytes than its batch).
			c.conn.out = redcon.AppendOK(c.conn.out)
		}
	}
	clear(p.owed)
	p.owed, p.stripes = p.owed[:0], p.stripes[:0]
	if p.batch.Size() > 2*maxRunBytes {
		p.batch = logkv.Batch{} // one big MSET: do not keep its buffer
	} else {
		p.batch.Reset()
	}
	c.conn.checkLimits()
}

// touchBatch marks the watchers of the client keys b wrote.
func (n *Node) touchBatch(b *logkv.Batch) {
	r := b.Reader()
	for {
		_, k, _, ok := r.Next()
		if !ok {
			return
		}
		if db, _, key, ok := decodeDataKey(k); ok {
			n.touchKey(db, key)
		}
	}
}

// queueable reports whether the command args joins a client's run unless
// it is refused: a plain SET, a SET with a relative deadline (EX or PX,
// whose deadline is in the future if it is valid), or an MSET of at most
// maxRunBytes, which write without reading. Anything else ends the
// run before it runs (run in server.go), so it must say no to every command
// that may write a reply other than an error: a larger MSET runs on a tx of
// its own, whose key locks the run's submit would wait for.
func queueable(cm *command, args [][]byte) bool {
	switch cm {
	case cmdSetEntry:
		return len(args) == 3 || len(args) == 5 && relativeExpiry(args[3])
	case cmdMSetEntry:
		return len(args) >= 3 && len(args)%2 == 1 && pairsSize(args[1:]) <= maxRunBytes
	}
	return false
}

// relativeExpiry reports whether a is SET's EX or PX option.
func relativeExpiry(a []byte) bool {
	return len(a) == 2 && (a[0]|0x20 == 'e' || a[0]|0x20 == 'p') && a[1]|0x20 == 'x'
}

// The backend below is where the stages meet storage: what Submit and Sync
// promise, the three implementations (standalone here, replicatedBackend in
// replicated.go, clusterBackend in cluster.go), and what each reports of
// itself (replicationView). It performs storage operations only: the
// command layer formats what it reports (cmd_server.go, info.go).

// backend is where a node's writes go: straight to the engine for a
// standalone node, or through the replicated commit log. It owns the engine.
type backend interface {
	// Engine returns the engine to read from now (a follower's full resync
	// replaces it).
	Engine() logkv.Engine
	// Set and Submit submit a write in order without waiting for durability.
	// Callers hold the key locks of the keys written.
	Set(key, value []byte) error
	Submit(b *logkv.Batch) error
	// Visible reports whether a submitted write is readable at once; if not,
	// it is readable after Sync or Barrier.
	Visible() bool
	// Barrier makes every write submitted so far (by any client) readable.
	// Read-modify-write commands call it under their key locks before
	// reading.
	Barrier() error
	// Sync makes every write submitted so far durable and readable (and, in
	// sync replication, held by the quorum).
	Sync() error
	// SyncWaits reports whether Sync (and Barrier, where writes are not
	// visible at once) may wait for an fsync or for followers; SubmitWaits,
	// whether Submit and Set may (sync replication). The event loops run
	// what may wait elsewhere (server.go). With Visible, these say what
	// the storage operations above cost, not what the engine can do: they
	// change at run time (CONFIG SET appendfsync), and the serving layer
	// asks them per command.
	SyncWaits() bool
	SubmitWaits() bool
	// Wait blocks until n followers hold every write made so far, the
	// timeout passes (0: forever) or done closes (the client left), and
	// returns how many do.
	Wait(done <-chan struct{}, n int, timeout time.Duration) int
	// ReplicaOf follows the leader at host:port (force: whatever that
	// discards, see replication.max_discard), or with empty host, promotes
	// this node to leader.
	ReplicaOf(host, port string, force bool) error
	// IsFollower reports whether writes are refused.
	IsFollower() bool
	// Replication reports the node's role and its commit log's state, as
	// data: ROLE (cmd_server.go) and INFO's replication and persistence
	// sections (info.go) are formatted from it.
	Replication() replicationView
	// NotReady says why the node should not take traffic, or "".
	NotReady() string
	// Close makes every write durable and closes the engine.
	Close() error
}

// replicationView is what a backend reports of its role and its commit log.
// It holds data only; the command layer formats it (cmd_server.go: ROLE;
// info.go: INFO replication and persistence), so a backend never writes a
// reply. Each field says which reply shows it.
type replicationView struct {
	// master: the node takes writes (ROLE's and INFO's role "master",
	// else "slave"). A cluster member that is not the elected leader is
	// never master, even while its commit log still leads (cluster.go).
	master bool
	// lastSeq is the newest write's seq: ROLE's offset on a master and
	// INFO's master_repl_offset.
	lastSeq uint64
	// log is the commit log's status, nil without one (durability none):
	// INFO's repl_* and commitlog_* lines, and a follower's offsets.
	log *replicate.Status
	// writeErr is the commit log's write error, if writes are failing
	// (INFO aof_last_write_status).
	writeErr error
	// followers are those of a commit log that leads (ROLE's replicas,
	// INFO's slaveN lines).
	followers []replicate.FollowerStatus
	// leaderAddr is the replication address followed (INFO master_addr).
	leaderAddr string
	// masterHost, masterPort and linkState are ROLE's master and link
	// state on a node that is not master.
	masterHost string
	masterPort int
	linkState  string
	// cluster is a cluster member's view (INFO's cluster_* lines), nil
	// on a node outside a cluster.
	cluster *memberView
}

// memberView is a cluster member's view of its shard, for INFO
// replication's cluster_* lines.
type memberView struct {
	name string
	// joined: the member runs, so the fields below are known.
	joined bool
	leader *coord.Leader // the shard's elected leader, nil while none is
	// readLag is how far behind this member's reads may be; maxReadLag
	// the bound (0: none, and neither is shown).
	readLag, maxReadLag time.Duration
	leading             uint64        // the epoch this member leads, 0 if none
	leaseValid          bool          // its etcd lease is known to live
	leaseLeft           time.Duration // until the lease ends, while leading
}

// eng returns the engine to read from.
func (n *Node) eng() logkv.Engine { return n.backend.Engine() }

// newBackend picks the write path. With durability full (the default) every
// write goes through the commit log, as on a replicated leader, whether or
// not certificates allow shipping it: durability never depends on
// replication. Only durability none writes to the engine alone.
func (n *Node) newBackend() (backend, error) {
	if n.logged() {
		return n.withCluster(n.openReplicated())
	}
	e, err := n.openEngine(false)
	if err != nil {
		return nil, err
	}
	n.log.Warn("durability is none: writes go to the engine alone, without the commit log; acknowledged writes may be lost in a crash (the memory engine keeps nothing across a restart)", "engine", n.cfg.Engine)
	s := &standalone{engine: e}
	s.group.init(e.Sync)
	if n.cfg.AppendFsync == "everysec" {
		s.startSyncer(time.Second, n.log)
	}
	return s, nil
}

// standalone is the backend of a node with durability none: the engine
// alone, no commit log.
type standalone struct {
	engine logkv.Engine
	group  engineSync
	// With appendfsync everysec, a syncer syncs the engine every second
	// instead of each pipeline's end.
	everysec   bool
	stopSyncer chan struct{}
	syncerDone chan struct{}
}

// startSyncer makes writes wait for no fsync: the engine is synced every
// interval in the background instead.
func (s *standalone) startSyncer(interval time.Duration, log *slog.Logger) {
	s.everysec = true
	s.stopSyncer, s.syncerDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.syncerDone)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stopSyncer:
				return
			case <-t.C:
				if err := s.group.sync(); err != nil {
					log.Error("background sync failed", "err", err)
				}
			}
		}
	}()
}

func (s *standalone) Engine() logkv.Engine        { return s.engine }
func (s *standalone) NotReady() string            { return "" }
func (s *standalone) Set(key, value []byte) error { return s.engine.Set(key, value, nil) }
func (s *standalone) Visible() bool               { return true }
func (s *standalone) SyncWaits() bool             { return !s.everysec }
func (s *standalone) SubmitWaits() bool           { return false }
func (s *standalone) Barrier() error              { return nil }
func (s *standalone) Submit(b *logkv.Batch) error { return s.engine.Apply(b, nil) }
func (s *standalone) Sync() error {
	if s.everysec {
		return s.group.failed() // syncing is the syncer's job
	}
	return s.group.sync()
}
func (s *standalone) Wait(<-chan struct{}, int, time.Duration) int { return 0 }
func (s *standalone) IsFollower() bool                             { return false }
func (s *standalone) Close() error {
	if s.stopSyncer != nil {
		close(s.stopSyncer)
		<-s.syncerDone
		s.stopSyncer = nil
	}
	return s.engine.Close()
}
func (s *standalone) ReplicaOf(host, port string, _ bool) error {
	if host == "" {
		return nil // already a leader
	}
	return errors.New("this node runs without replication; start it with replication configured (-repl and -tls-dir) to follow a leader")
}

// Replication: a leader of no followers, without a commit log.
func (s *standalone) Replication() replicationView {
	return replicationView{master: true, lastSeq: s.engine.LastSeq()}
}

// engineSync groups the syncs of an engine the node writes without a
// commit log, through internal/groupsync: concurrent callers share one
// sync, and a caller waits only for a sync that started after it arrived
// (so it covers the caller's writes). A caller's ticket is the count of
// calls so far, and a round covers every ticket drawn before it started. A
// failed sync is sticky: after an fsync error the kernel may have dropped
// the dirty pages, so no later success can vouch for earlier writes.
type engineSync struct {
	tickets atomic.Uint64 // calls so far
	synced  atomic.Uint64 // the tickets a finished sync covers
	group   *groupsync.Group[uint64]
}

// init makes sync the function a round runs.
func (g *engineSync) init(sync func() error) {
	g.group = groupsync.New(g.synced.Load,
		func(uint64) (uint64, error) { return g.tickets.Load(), nil },
		func(ticket uint64) error {
			if err := sync(); err != nil {
				return fmt.Errorf("node: sync failed, refusing further writes: %w", err)
			}
			g.synced.Store(ticket) // rounds run one at a time: it only grows
			return nil
		})
}

// sync returns once a sync that started after the call has succeeded, or
// the sticky error.
func (g *engineSync) sync() error { return g.group.SyncTo(g.tickets.Add(1)) }

// failed returns the sticky error of a failed sync, if one failed.
func (g *engineSync) failed() error {
	if g.group == nil {
		return nil // a backend tests made bare
	}
	return g.group.Err()
}
