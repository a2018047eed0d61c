package coord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The synchronous set (sync mode). The take-over rule (Eligible) trusts the
// sync key: every acknowledged write is durable on at least Quorum members
// of Set, the leader included. Replication counts only the followers the
// member lets it count (Replica.SetSyncSet), and two orders keep the
// recorded set a superset of them while the set changes:
//
//   - grow: record the larger set in etcd first, then let replication count
//     the new members;
//   - shrink: stop counting the members that leave first, wait until every
//     write acknowledged so far is durable on a quorum of the smaller set
//     (Replica.SyncDurable), then record it.
//
// A new leader records the union of the set it inherits and the live
// members, with the smaller of the two quorums: the writes of the old
// epoch are on a quorum of the old set, and the new leader may hold some
// that no other live member holds yet. It shrinks the set to the live
// members (and raises the quorum to its own) once they hold everything
// acknowledged, which also drops members that are gone for good, so that
// they do not keep the next failover waiting for their progress.
//
// Every write of the sync key is a transaction on the leader key's
// CreateRevision (a deposed leader cannot overwrite its successor's set)
// and on the sync key's ModRevision (no lost update).

// errSyncRace ends a change of the synchronous set that lost a race.
var errSyncRace = errors.New("coord: the leader key or the synchronous set changed meanwhile; the next round reads them again")

// growSync records the union of the recorded set and the live members
// (with this member), then lets replication count them. It runs at
// election, before the leader takes a write, and whenever members join.
func (m *Member) growSync(ctx context.Context, epoch uint64, r Replica) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	st, err := ReadShard(ctx, m.cli, m.cfg.Cluster, m.cfg.Shard)
	if err != nil {
		return err
	}
	in := map[string]bool{m.cfg.ID: true}
	for id := range st.Members {
		in[id] = true
	}
	s := SyncSet{V: formatVersion, Quorum: m.cfg.SyncQuorum + 1, Epoch: epoch}
	if st.Sync != nil {
		for _, id := range st.Sync.Set {
			in[id] = true
		}
		// A smaller quorum only makes the take-over rule ask for more
		// members: safe for the old epoch's writes.
		s.Quorum = max(1, min(s.Quorum, st.Sync.Quorum))
	}
	for id := range in {
		s.Set = append(s.Set, id)
	}
	slices.Sort(s.Set)
	if st.Sync == nil || !slices.Equal(s.Set, st.Sync.Set) || s.Quorum != st.Sync.Quorum || st.Sync.Epoch != epoch {
		if err := m.putSync(ctx, epoch, st.SyncRevision, s); err != nil {
			return err
		}
		m.log.Info("synchronous set recorded", "set", s.Set, "quorum", s.Quorum)
	}
	r.SetSyncSet(s.Set)
	return nil
}

// shrinkSync drops the members of the recorded set that are no longer live
// and raises its quorum to this leader's, once the live members hold every
// write acknowledged so far.
func (m *Member) shrinkSync(ctx context.Context, epoch uint64, r Replica) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	st, err := ReadShard(ctx, m.cli, m.cfg.Cluster, m.cfg.Shard)
	if err != nil {
		return err
	}
	if st.Sync == nil {
		return nil // growSync records one first
	}
	want := m.cfg.SyncQuorum + 1
	var keep, followers []string
	for _, id := range st.Sync.Set {
		if _, live := st.Members[id]; live || id == m.cfg.ID {
			keep = append(keep, id)
			if id != m.cfg.ID {
				followers = append(followers, id)
			}
		}
	}
	if len(keep) == len(st.Sync.Set) && st.Sync.Quorum == want {
		return nil
	}
	if len(keep) < want {
		return fmt.Errorf("coord: only %d members of the synchronous set %v are live, fewer than the quorum %d: keeping the set (writes wait for their quorum; bring a member back)", len(keep), st.Sync.Set, want)
	}
	// Stop counting the members that leave, then wait until what was
	// acknowledged (at most what is durable here now) is on the quorum of
	// those that stay.
	r.SetSyncSet(keep)
	mark, _ := r.Progress()
	deadline := time.Now().Add(m.cfg.TTL)
	for r.SyncDurable(followers, want-1) < mark {
		if m.Leading() != epoch || ctx.Err() != nil {
			return errSyncRace
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("coord: the live members %v of the synchronous set do not hold seq %d on a quorum of %d yet; keeping the recorded set %v", keep, mark, want, st.Sync.Set)
		}
		m.pause(ctx, m.cfg.ReportEvery)
	}
	s := SyncSet{V: formatVersion, Set: keep, Quorum: want, Epoch: epoch}
	if err := m.putSync(ctx, epoch, st.SyncRevision, s); err != nil {
		return err
	}
	m.log.Info("synchronous set shrunk to the live members", "set", keep, "quorum", want, "was", st.Sync.Set)
	return nil
}

// putSync writes the sync key if epoch still leads and the key is still at
// rev (0: absent).
func (m *Member) putSync(ctx context.Context, epoch uint64, rev int64, s SyncSet) error {
	txn, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(m.cfg.leaderKey()), "=", int64(epoch)),
			clientv3.Compare(clientv3.ModRevision(m.cfg.syncKey()), "=", rev)).
		Then(clientv3.OpPut(m.cfg.syncKey(), mustJSON(s))).
		Commit()
	if err != nil {
		return fmt.Errorf("coord: record the synchronous set: %w", err)
	}
	if !txn.Succeeded {
		return errSyncRace
	}
	return nil
}

// maintainSync runs in sync mode: while the member leads, it adds members
// that join to the synchronous set (at once, on the members watch) and
// drops those gone (every Settle).
func (m *Member) maintainSync(ctx context.Context, r Replica) {
	wch := m.cli.Watch(clientv3.WithRequireLeader(ctx), m.cfg.prefix()+"members/", clientv3.WithPrefix())
	t := time.NewTicker(m.cfg.Settle)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-wch:
			if !ok {
				wch = nil // etcd lost its leader: the ticker carries on
			}
		case <-t.C:
		}
		epoch := m.Leading()
		if epoch == 0 {
			continue
		}
		err := m.growSync(ctx, epoch, r)
		if err == nil {
			err = m.shrinkSync(ctx, epoch, r)
		}
		if msg := fmt.Sprint(err); err != nil && msg != lastErr && ctx.Err() == nil {
			m.log.Warn("synchronous set not updated", "err", err)
			lastErr = msg
		} else if err == nil {
			lastErr = ""
		}
	}
}
