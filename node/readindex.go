package node

// Linearizable reads on a sync-mode cluster leader (docs/cluster.md, "Reads
// on the leader"; issue #17). A leader applies a write to its engine before
// the quorum holds it (replicate's order: log, fsync, apply, quorum), so a
// read of the engine may see a write that a failover then erases, and a
// leader past its lease may not lead any more. A read therefore answers only
// once (i) every write the engine had applied when the read looked is on the
// quorum, and (ii) the node still leads the epoch it read under, with its
// lease valid by its own clock: etcd's ReadIndex with a lease.
//
//	read command, on its loop (or its client's goroutine)
//	   fenceRead: epoch before; run; A = LastSeq after
//	      A <= QuorumSeq, lease valid  -> answered as is (the common case:
//	                                      atomic loads and a clock read)
//	      lease not valid             -> its reply becomes TRYAGAIN/READONLY
//	      otherwise                    -> owed: client.fence notes the epoch,
//	                                      max A and where its reply is; the
//	                                      pipeline's replies are held
//	   settleReadGroup, off the loop (the loop's group sync, or the client's
//	      syncDirty): one WaitQuorumSeq for the highest A the group owes,
//	      then per client: still leading its epoch with a valid lease?
//	   answerReads, on the loop before the replies go out (writeReplies):
//	      replaces each owed reply that failed with the verdict's error
//
// A read that waits waits off the loop, batched: the clients a loop held
// together share one wait, as their writes share one Sync. Async mode and
// followers are unchanged: their reads are stale by design (a follower's
// bounded by cluster.max_read_lag).
//
// The lease check comes after the read, never only before: a leader paused
// between a check and its read (kvhistory's pause-leader) would read after
// another leader took writes. Checked after, the same epoch with a valid
// lease means this node led throughout the read, so no write acknowledged
// before the read began is missing from what it saw.

import (
	"context"
	"fmt"

	"github.com/tidwall/redcon"
)

// readFence is what a client's pipeline owes before its replies go out:
// reads that saw writes not yet on the quorum.
type readFence struct {
	// epoch is the leadership the owed reads ran under; mixed: reads of
	// two leaderships, which no single check confirms.
	epoch uint64
	mixed bool
	// seq is the highest seq the engine had applied after an owed read; 0
	// when nothing is owed or settleReadGroup has settled it.
	seq uint64
	// spans are the owed replies' places in conn.out.
	spans []replySpan
	// verdict is settleReadGroup's: "" if the owed reads may be answered,
	// else the error that replaces each of their replies.
	verdict string
}

// replySpan is one reply's bytes in conn.out: [start, end).
type replySpan struct{ start, end int }

// owed reports whether replies wait for the fence: endPipeline then holds
// the client for its loop's group sync.
func (f *readFence) owed() bool { return len(f.spans) > 0 }

// fenceRead makes c's replies linearizable on a sync-mode cluster leader.
// guardStaleRead applies it to every command that reads data: reads, and
// writes, which are fenced only when they wrote nothing (a write that wrote
// was on the quorum, after every write applied before it, and mayAck-ed,
// before it answered; one that wrote nothing, a SET NX on a present key,
// answered from what it read).
//
// EXEC is fenced as one command, as a write: its reply is one span, and the
// commands it runs are not fenced on their own (their replies are inside
// EXEC's, which EXEC rewrites when its transaction fails). Nor is a command
// whose reply CLIENT REPLY drops.
func fenceRead(c *command) {
	write := c.write || c.name == "exec"
	run := c.run
	c.run = func(n *Node, cl *client, args [][]byte) {
		b, ok := n.backend.(*clusterBackend)
		if !ok || !b.syncAck || cl.ks.exec != nil || cl.x.reply == replyOff || cl.x.reply == replySkipThis {
			run(n, cl, args)
			return
		}
		m := b.member.Load()
		var epoch uint64
		if m != nil {
			epoch = m.LeadingNow()
		}
		if epoch == 0 {
			run(n, cl, args) // not leading: a follower's read
			return
		}
		start := len(cl.conn.out)
		dirty := cl.dirty
		if write {
			cl.dirty = false
		}
		run(n, cl, args)
		if write {
			wrote := cl.dirty
			cl.dirty = dirty || wrote
			if wrote || len(cl.conn.out) == start {
				// It wrote (fenced by its own Submit), or it queued a
				// blind write whose reply comes later.
				return
			}
		}
		// LastSeq before QuorumSeq: what the read saw is at most LastSeq,
		// and the watermark only has to pass it once.
		seq := b.r.LastSeq()
		if seq <= b.r.QuorumSeq() && m.ValidFor(epoch) {
			return // the common case: nothing in flight
		}
		span := replySpan{start, len(cl.conn.out)}
		if !m.ValidFor(epoch) {
			answerRead(cl, span, b.readRefusal(m.LeadingNow() == epoch))
			return
		}
		f := &cl.fence
		if f.owed() && f.epoch != epoch {
			f.mixed = true
		}
		f.epoch, f.seq = epoch, max(f.seq, seq)
		f.spans = append(f.spans, span) // endPipeline holds the replies
	}
}

// readRefusal is the error a read gets on a leader that cannot confirm it:
// TRYAGAIN while it still holds its epoch but cannot renew its lease (or
// hands leadership over): retry this node, it resumes or another takes
// over; READONLY once it leads no more, as a deposed leader answers writes,
// so that Sentinel clients (go-redis, redis-py, ioredis) look the leader up
// again.
func (b *clusterBackend) readRefusal(stillLeading bool) string {
	if stillLeading {
		return "TRYAGAIN this leader cannot confirm its leadership lease in etcd now (renewal late, or leadership being handed over), so this read could miss writes of a newer leader; retry shortly"
	}
	return fmt.Sprintf("READONLY this node stopped leading while the read ran, so it could miss writes of the new leader; ask SENTINEL get-master-addr-by-name %s for the leader", b.n.cfg.Cluster.Name)
}

// settleReads settles the reads c owes (its own goroutine, or its loop when
// the loop could not take the group sync).
func (n *Node) settleReads(c *client) {
	if c.fence.seq == 0 {
		return
	}
	one := [1]*client{c}
	n.settleReadGroup(one[:])
}

// settleReadGroup settles the reads a group of held clients owes: one wait
// until the quorum holds the highest seq any of them saw (at most the
// replication ack timeout), then a verdict per client. It runs off the
// loop, on clients the loop does not touch while they are held; the loop
// applies the verdicts (answerReads).
func (n *Node) settleReadGroup(group []*client) {
	b, ok := n.backend.(*clusterBackend)
	if !ok {
		return
	}
	var need uint64
	for _, c := range group {
		need = max(need, c.fence.seq)
	}
	if need == 0 {
		return
	}
	err := b.r.WaitQuorumSeq(context.Background(), need)
	m := b.member.Load()
	for _, c := range group {
		f := &c.fence
		if f.seq == 0 {
			continue
		}
		switch {
		case f.mixed:
			f.verdict = "TRYAGAIN this node's leadership changed between the reads of this pipeline; retry"
		case b.r.QuorumSeq() < f.seq:
			f.verdict = fmt.Sprintf("TRYAGAIN this read saw writes the quorum of followers does not hold yet (%v); retry", err)
		case m == nil || !m.ValidFor(f.epoch):
			f.verdict = b.readRefusal(m != nil && m.LeadingNow() == f.epoch)
		}
		f.seq = 0
	}
}

// answerReads applies the verdict on c's owed reads before its replies go
// out: each failed one's reply becomes the error. It runs on the loop.
func (n *Node) answerReads(c *client) {
	f := &c.fence
	if !f.owed() {
		return
	}
	verdict := f.verdict
	if f.seq != 0 {
		// Never settled: cannot happen (every path that writes replies
		// settles first), and a read is not answered unconfirmed.
		verdict = "TRYAGAIN this read could not be confirmed on the quorum; retry"
	}
	if verdict != "" {
		out := c.conn.out
		if c.conn.cut || len(out) < f.spans[len(f.spans)-1].end {
			c.drop = true // the replies are not where they were: none goes
		} else {
			// Rebuild from the end so the earlier spans stay valid.
			for i := len(f.spans) - 1; i >= 0; i-- {
				s := f.spans[i]
				tail := append([]byte(nil), out[s.end:]...)
				out = append(redcon.AppendError(out[:s.start], verdict), tail...)
			}
			c.conn.out = out
		}
	}
	f.spans, f.seq, f.epoch, f.mixed, f.verdict = f.spans[:0], 0, 0, false, ""
}

// answerRead replaces one reply the client just produced with an error.
func answerRead(cl *client, s replySpan, msg string) {
	if cl.conn.cut || len(cl.conn.out) != s.end {
		cl.drop = true
		return
	}
	cl.conn.out = redcon.AppendError(cl.conn.out[:s.start], msg)
	cl.failed = true
}
