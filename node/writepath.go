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
//	  |             the client's run (pending.go: queueWrite); a refused one
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
