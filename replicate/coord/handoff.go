package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Handing leadership over (kvnode cluster failover), as Redis's FAILOVER:
//
//  1. The operator's HandOver writes shards/<shard>/handoff = {target},
//     bound to the leader's lease, in a transaction on the leader key's
//     CreateRevision (so it names this leadership, no later one).
//  2. The leader sees it (watchHandoff), stops acknowledging writes (Valid
//     turns false: clients get TRYAGAIN), and waits until the target's
//     progress reaches the leader's: its epoch, and its durable seq.
//  3. The leader deletes its leader key. Eligible lets only the target run
//     while the handoff key exists; the target wins and deletes the key.
//
// If the target does not catch up within HandoffTimeout, the leader
// deletes the handoff key and resumes: no write is lost either way, since
// nothing was acknowledged while it waited.

// HandoffTimeout bounds how long a leader waits for a handoff's target to
// catch up before it gives up and resumes.
const HandoffTimeout = 10 * time.Second

// HandOver asks the shard's leader to hand leadership to target (a member
// id; "" picks the live eligible follower with the most durable log) and
// waits, until ctx ends, for the target to lead. It returns the new leader.
func HandOver(ctx context.Context, cli *clientv3.Client, cluster, shard, target string) (*Leader, error) {
	st, err := ReadShard(ctx, cli, cluster, shard)
	if err != nil {
		return nil, err
	}
	if st.Leader == nil {
		return nil, errors.New("coord: the shard has no leader to hand over from; an election is under way or no member is eligible (see kvnode cluster status)")
	}
	if target == "" {
		var best Progress
		for id, mi := range st.Members {
			p, live := st.Progress[id]
			if id == st.Leader.ID || mi.NeverLeader || st.Drained[id] || !live {
				continue
			}
			// The most caught-up by epoch, then seq, as the leader will
			// wait for it (handOver).
			if target == "" || p.Ahead(best) || (!best.Ahead(p) && id < target) {
				target, best = id, p
			}
		}
		if target == "" {
			return nil, errors.New("coord: no live follower may lead (all are never_leader or drained, or none reports progress)")
		}
	} else if mi, ok := st.Members[target]; !ok || mi.NeverLeader || st.Drained[target] {
		return nil, fmt.Errorf("coord: %q is not a live member that may lead (never_leader or drained ones may not); see kvnode cluster status", target)
	}
	if target == st.Leader.ID {
		return st.Leader, nil
	}
	c := Config{Cluster: cluster, Shard: shard}
	if shard == "" {
		c.Shard = "0"
	}
	lresp, err := cli.Get(ctx, c.leaderKey())
	if err != nil {
		return nil, err
	}
	if len(lresp.Kvs) == 0 || uint64(lresp.Kvs[0].CreateRevision) != st.Leader.Epoch {
		return nil, errors.New("coord: the leader changed meanwhile; run the failover again")
	}
	txn, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(c.leaderKey()), "=", int64(st.Leader.Epoch))).
		Then(clientv3.OpPut(c.handoffKey(), mustJSON(Handoff{V: formatVersion, Target: target}), clientv3.WithLease(clientv3.LeaseID(lresp.Kvs[0].Lease)))).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("coord: write the handoff: %w", err)
	}
	if !txn.Succeeded {
		return nil, errors.New("coord: the leader changed meanwhile; run the failover again")
	}
	for {
		st, err := ReadShard(ctx, cli, cluster, shard)
		if err == nil && st.Leader != nil && st.Leader.ID == target {
			return st.Leader, nil
		}
		if err == nil && st.Handoff == nil && st.Leader != nil && st.Leader.ID != target {
			return nil, fmt.Errorf("coord: the leader gave up the handoff (%s did not catch up within %v); it leads again", target, HandoffTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("coord: %s does not lead yet: %w", target, ctx.Err())
		case <-time.After(50 * time.Millisecond): // polling etcd with the caller's deadline
		}
	}
}

// watchHandoff runs on the leader: when a handoff names another member, it
// pauses acknowledgements, waits for the target to catch up, then deletes
// the leader key.
func (m *Member) watchHandoff(ctx context.Context, r Replica) {
	key := m.cfg.handoffKey()
	wch := m.cli.Watch(clientv3.WithRequireLeader(ctx), key)
	check := func() {
		epoch := m.Leading()
		if epoch == 0 {
			return
		}
		resp, err := m.cli.Get(ctx, key)
		if err != nil || len(resp.Kvs) == 0 {
			return
		}
		var h Handoff
		if json.Unmarshal(resp.Kvs[0].Value, &h) != nil || h.Target == m.cfg.ID {
			return
		}
		m.handOver(ctx, epoch, h.Target, r)
	}
	check()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-wch:
			if !ok {
				return
			}
			if ev.Err() == nil && len(ev.Events) > 0 {
				check()
			}
		}
	}
}

func (m *Member) handOver(ctx context.Context, epoch uint64, target string, r Replica) {
	m.mu.Lock()
	m.setFenceLocked(func(f *fenceState) { f.paused = true })
	m.mu.Unlock()
	resume := func() {
		m.mu.Lock()
		m.setFenceLocked(func(f *fenceState) { f.paused = false })
		m.mu.Unlock()
	}
	durable, own := r.Progress()
	mine := Progress{Durable: durable, Epoch: own}
	m.log.Info("handing leadership over: writes paused", "target", target, "durable", durable, "epoch", own)
	deadline := time.Now().Add(HandoffTimeout)
	for {
		st, err := ReadShard(ctx, m.cli, m.cfg.Cluster, m.cfg.Shard)
		if err == nil {
			// By epoch, then seq (Progress.Ahead): a target at this seq in
			// an older epoch holds a divergent tail of its own, not these
			// records. The leader's first record of its epoch (kvnode's
			// Lead writes one, as Raft's no-op) gives a follower that holds
			// its records this epoch.
			if p, ok := st.Progress[target]; ok && !mine.Ahead(p) {
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			m.log.Warn("handoff target did not catch up; resuming", "target", target, "timeout", HandoffTimeout)
			m.cli.Delete(ctx, m.cfg.handoffKey())
			resume()
			return
		}
		m.pause(ctx, 20*time.Millisecond)
	}
	_, err := m.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(m.cfg.leaderKey()), "=", int64(epoch))).
		Then(m.cfg.releaseOps()...).Commit()
	if err != nil {
		m.log.Warn("handoff: releasing the leader key failed; resuming", "err", err)
		m.cli.Delete(ctx, m.cfg.handoffKey())
	}
	// Still paused: the elect loop steps down when it sees the key gone,
	// and no write is acknowledged meanwhile.
}
