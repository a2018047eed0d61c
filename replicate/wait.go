package replicate

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/logkv/logkv"
)

// WaitFollowers waits until want followers report every record up to seq
// durable in their logs, or ctx ends, or the node stops leading (or closes),
// and returns how many followers hold seq then. It is woken by the
// followers' acks, never by polling, so a waiter costs nothing while no ack
// arrives: Redis' WAIT.
//
// Followers are sent durable records only, so with SyncInterval it wakes
// the background syncer when seq is not yet durable: a record whose writer
// did not (AwaitApplied: kvnode's expiry deletes) would otherwise reach the
// followers only at the syncer's next round, up to SyncInterval later.
func (n *Replica) WaitFollowers(ctx context.Context, seq uint64, want int) int {
	n.roleMu.Lock()
	l := n.leader
	n.roleMu.Unlock()
	if l == nil {
		return 0
	}
	if seq > n.log.DurableSeq() {
		n.wakeSyncer()
	}
	for {
		l.mu.Lock()
		held := 0
		for _, p := range l.peers {
			if p.durable.Load() >= seq {
				held++
			}
		}
		ch := l.acked
		l.mu.Unlock()
		if held >= want {
			return held
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return held
		case <-l.ctx.Done():
			return held
		}
	}
}

// WriteErr returns why the node cannot take writes, if it cannot: its commit
// log failed a write (wrapping commitlog.ErrWriteFailed: a full disk, which
// clears by itself once a write succeeds) or an fsync (commitlog.ErrFailed:
// sticky until the node is reopened), or its engine refused a committed
// record (sticky too). nil otherwise.
func (n *Replica) WriteErr() error {
	if p := n.failed.Load(); p != nil {
		return *p
	}
	return n.log.Err()
}

// SetSyncSet restricts the followers a sync-mode write's quorum counts to
// ids; nil counts every follower (the default, for a node no coordination
// records). It persists across promotions and takes effect for the writes
// waiting now.
//
// Why: coordination (package coord) records in etcd the set a new leader is
// chosen from, and trusts that every acknowledged write is on a quorum of
// it. A follower outside the recorded set must therefore never count, or a
// failover could elect a node that lacks an acknowledged write. coord
// records a set in etcd before it widens the counting set here, and narrows
// it here before it records a smaller one, so the recorded set always holds
// every follower that counted.
func (n *Replica) SetSyncSet(ids []string) {
	if ids == nil {
		n.syncSet.Store(nil)
	} else {
		set := make(map[string]bool, len(ids))
		for _, id := range ids {
			set[id] = true
		}
		n.syncSet.Store(&set)
	}
	// Wake the quorum waiters so that they count again with the new set.
	n.roleMu.Lock()
	l := n.leader
	n.roleMu.Unlock()
	if l != nil {
		l.recount()
	}
}

// counts reports whether a follower's acks count towards a quorum.
func (n *Replica) counts(id string) bool {
	set := n.syncSet.Load()
	return set == nil || (*set)[id]
}

// SyncDurable returns the highest seq durable on this leader and on at
// least want of the followers ids (want 0: the leader's own durable seq),
// 0 on a node that does not lead. Coordination uses it before it records a
// smaller synchronous set: every write acknowledged so far must be on a
// quorum of the smaller set first.
func (n *Replica) SyncDurable(ids []string, want int) uint64 {
	n.roleMu.Lock()
	l := n.leader
	n.roleMu.Unlock()
	if l == nil {
		return 0
	}
	own := n.log.DurableSeq()
	if want <= 0 {
		return own
	}
	in := make(map[string]bool, len(ids))
	for _, id := range ids {
		in[id] = true
	}
	var held []uint64
	l.mu.Lock()
	for id, p := range l.peers {
		if in[id] {
			held = append(held, p.durable.Load())
		}
	}
	l.mu.Unlock()
	if len(held) < want {
		return 0
	}
	slices.Sort(held)
	return min(own, held[len(held)-want])
}

// QuorumSeq returns the highest seq durable on Quorum of the followers a
// sync-mode quorum counts (SetSyncSet) in the leadership now running: the
// quorum-acknowledged watermark. It is 0 on a node that does not lead, in
// Async mode, and in a new leadership until its followers have acked. It is
// one atomic load.
//
// Why: a leader applies a write to its engine before the quorum holds it
// (Write's order: log, fsync, apply, quorum), so a read of the engine may
// see a write that a failover then loses. A read that must be linearizable
// captures LastSeq after it looked at the engine and answers only once
// QuorumSeq has reached it (etcd's ReadIndex; WaitQuorumSeq waits). When
// nothing is in flight, LastSeq <= QuorumSeq already and the read pays two
// atomic loads.
//
// It may go down: when the counted set narrows (SetSyncSet), or a follower
// is forgotten or resynced. A read compares against the value of its time.
func (n *Replica) QuorumSeq() uint64 { return n.quorumSeq.Load() }

// WaitQuorumSeq waits until QuorumSeq reaches seq, for at most the
// configured QuorumTimeout. It fails if ctx ends, the node does not lead or
// stops leading, or the timeout passes (wrapping ErrQuorum). Followers' acks
// wake it; nothing polls.
func (n *Replica) WaitQuorumSeq(ctx context.Context, seq uint64) error {
	if n.quorumSeq.Load() >= seq {
		return nil
	}
	n.roleMu.Lock()
	l := n.leader
	n.roleMu.Unlock()
	if l == nil || n.cfg.AckMode != Sync {
		return ErrNotLeader
	}
	timer := time.NewTimer(n.cfg.QuorumTimeout)
	defer timer.Stop()
	for {
		l.mu.Lock()
		ch := l.acked
		l.mu.Unlock()
		// Read after taking ch: an ack between the two would otherwise be
		// missed until the next one.
		if n.quorumSeq.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.ctx.Done():
			return logkv.ErrClosed
		case <-timer.C:
			return fmt.Errorf("replicate: seq %d not on a quorum of %d within %v (quorum holds %d): %w", seq, n.cfg.Quorum, n.cfg.QuorumTimeout, n.quorumSeq.Load(), ErrQuorum)
		}
	}
}

// recount recomputes the quorum watermark and wakes every waiter.
func (l *leader) recount() {
	l.mu.Lock()
	l.recountLocked()
	l.mu.Unlock()
}

// recountLocked is recount with l.mu held: QuorumSeq becomes the Quorum-th
// highest durable seq among the counted followers (0 with fewer), and the
// waiters on l.acked wake to look again.
func (l *leader) recountLocked() {
	n := l.n
	if q := n.cfg.Quorum; n.cfg.AckMode == Sync && q > 0 {
		var buf [16]uint64 // no allocation for up to 16 followers
		held := buf[:0]
		for _, p := range l.peers {
			if n.counts(p.id) {
				held = append(held, p.durable.Load())
			}
		}
		w := uint64(0)
		if len(held) >= q {
			slices.Sort(held)
			w = held[len(held)-q]
		}
		n.quorumSeq.Store(w)
	}
	close(l.acked)
	l.acked = make(chan struct{})
}
