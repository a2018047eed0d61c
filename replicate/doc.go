// Package replicate turns an engine into a replicated store: a Replica owns an
// engine behind a commit log (package commitlog) and, as leader, ships that
// log to followers over a transport (package transport: QUIC with mutual TLS,
// or in memory for tests), in the protocol of package wire. The references
// are PostgreSQL streaming replication and Redis PSYNC: resume from an
// offset, resync when the history is gone, promote with a new history id
// (the epoch), report lag.
//
// # Write path
//
// commit.go holds the whole of it, opening with a diagram of its stages.
// Replica.Write appends the batch to the commit log under a mutex (which
// assigns its seq), waits for the group fsync that covers it
// (commitlog.Log.Sync: concurrent writers share one fsync), then applies the
// durable records to the engine in seq order with WriteOptions.Seq. In Async
// mode it returns then; in Sync mode it also waits until Quorum followers
// report the record durable in their own logs, or fails after QuorumTimeout
// with an error wrapping ErrQuorum ("replicate: quorum of N not reached
// within T"). The write is then committed on the leader but not known to be
// on the quorum; it never silently counts as acknowledged unless
// FallbackAsync is set. The engine is applied after the fsync, so it never
// holds a seq the log could lose; it may hold one the quorum does not yet:
// QuorumSeq is the quorum-acknowledged watermark, and a read that must be
// linearizable answers only once it passes what the read saw
// (WaitQuorumSeq; kvnode's read index).
//
// A writer that submits without awaiting (Submit alone: a bulk import such
// as a slot move's target) does not hold its records in memory until its
// Await: past 4 MiB submitted and not applied, a background applier writes
// and applies them as Await would (never waiting for the quorum, which only
// an Await acknowledges), and past 16 MiB Submit waits for it, the
// backpressure a memtable stall gives in an LSM.
//
// # Following
//
// A follower dials its leader and sends Hello: its id, epoch history, last
// log seq and engine seq. The id must be the name the transport
// authenticated (over QUIC, the follower's certificate's): the leader
// refuses a follower claiming another's (ErrIdentity). The leader computes the fork point F, the last seq
// on which both histories agree (commitlog.ForkPoint). If the follower's
// engine has applied nothing past F and the leader's log still holds F+1,
// the leader streams from F+1 (partial catch-up) and the follower first cuts
// any log tail past F. Otherwise (a wiped follower, one past the retention
// cap, one whose engine applied a deposed leader's records) the leader sends
// a full resync: a consistent engine snapshot at seq S in chunks, which the
// follower loads into a new engine beside its live one, restarting its log
// at S+1 (see Full resync). The leader also resyncs a follower whose backlog is large
// against the data (Config.ResyncBacklogRatio): a sorted snapshot loads
// faster than the same bytes of records. Records then stream in frames of up to MaxFrameBytes; the
// follower appends them to its log, applies them, and syncs and acks
// written, durable and applied seqs, waiting before each fsync as long as
// the leader's Welcome asked (Config.FollowerSyncDelay). The leader paces
// the frames (Config.ShipDelay, 2ms in Async mode): the first record after
// an idle spell goes at once, and under load a frame carries everything
// made durable since the last. Each follower has its own sender goroutine that
// reads the leader's log from disk, so a slow follower only holds back its
// own stream (flow control is the transport's), never the leader's writes.
//
// # Full resync
//
// A full resync never destroys before it has the replacement. The snapshot
// loads into a new engine generation (Config.Engines: a directory beside
// the live engine's), which is made durable (synced, or checkpointed for an
// engine that keeps nothing); only then does the ENGINE file (engines.go)
// name it, durably and atomically: that rename is the commit point. Readers
// then move to the new engine, the old one closes, the log restarts at S+1
// and the old generation's files go. A crash before the commit point leaves
// the old engine, checkpoint and log; after it, Open finishes the log reset
// the ENGINE file records. A snapshot that fails its checks (SnapshotEnd's
// seq and key count) is abandoned the same way.
//
// A follower refuses a resync that would discard more records its engine
// applied than Config.MaxDiscard (records past the fork point or past the
// snapshot), with ErrWouldDiscard and the numbers, and keeps its data;
// Follow then puts the node back in the role it had. FollowForce follows
// regardless. Records only in its log (a crash's unapplied tail) are cut at
// the fork as before.
//
// # Epochs and promotion
//
// Every record carries the epoch of the leader that wrote it; Promote starts
// a new epoch, newer than any the node has seen, at its next seq, and the
// log records the change durably. A node that starts a history of its own
// picks a random first epoch (below 2^40), as Redis picks a random
// replication id: two nodes that never shared a history never agree on an
// epoch, so one following the other forks at seq 0 instead of passing two
// unrelated logs for one. A node opened as a follower does not
// replay its own log at Open: it first asks its leader where the histories
// fork, cuts its log after the fork point, replays the rest, and only then
// streams (Promote replays whatever is left, if the leader was never
// reached). So a deposed leader restarted as a follower (from a checkpoint
// taken before the fork) loses its divergent tail without a resync; one whose
// engine already applied that tail (Follow while running) is resynced. Until
// it reaches its leader, a restarted follower serves its checkpoint's state.
// A follower refuses a leader whose epoch is
// older than its own, and records of an epoch newer than its leader's; a
// leader refuses a follower that has seen a newer epoch (it was deposed). A
// deposed leader that Follows the new one finds its divergent tail cut (or,
// as its engine applied it, is resynced).
//
// # Retention and checkpoints
//
// Maintain (run every MaintainEvery) trims the log before the oldest record
// that is still needed: by the engine's durable state (the last checkpoint,
// for an engine that keeps nothing across a restart, such as memory; the
// last engine Sync otherwise) and by every known follower, except those that
// would keep more than RetentionBytes: those are marked for a full resync
// and disconnected, as with PostgreSQL's max_slot_wal_keep_size, so that a
// dead follower never fills the leader's disk. Known followers are those
// that connected since the node became leader (they are not persisted),
// less those disconnected for longer than ForgetFollowerAfter (an hour by
// default): a follower gone for good stops holding the log, and one that
// returns after the log moved on is resynced.
//
// A checkpoint is <Dir>/checkpoint: a Checkpoint frame, the snapshot in the
// chunk frames of a full resync, and a SnapshotEnd (see package wire). On
// Open, an engine that comes back empty is loaded from it, then the log is
// replayed from the checkpoint's seq + 1.
//
// # Metrics
//
// Followers reports per follower: state, acked seqs, lag in records, bytes
// and seconds, apply rate, resync count. Status reports a node's own view.
package replicate
