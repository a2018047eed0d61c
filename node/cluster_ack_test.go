package node

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv/replicate/commitlog"
	"github.com/logkv/logkv/replicate/coord"
)

// TestClusterNoAckAfterLeadershipEnds: a sync-mode write that reaches its
// quorum only after its leader's leadership ended is not acknowledged.
//
// This is how kvhistory's paused leaders lost acknowledged writes (issue
// #17): a leader paused with a write waiting for its quorum resumed after
// another member was elected without the write, saw the new leader key and
// stepped down; its followers, not yet switched to the new leader, acked
// the write, and the old leader acknowledged it because, leading no epoch
// any more, it no longer counted as fenced. The new leader's followers then
// cut it. Here the leader key is deleted while the write waits between its
// quorum and the acknowledgement (a test hook holds it there), which ends
// the leadership the same way.
func TestClusterNoAckAfterLeadershipEnds(t *testing.T) {
	requireEtcdCluster(t)
	ctx := context.Background()
	tc := newTestCluster(t, time.Second)
	syncMode := func(c *Config) { c.Replication.Ack, c.Replication.Quorum = "sync", 1 }
	a := tc.add("a", syncMode)
	require.Equal(t, a, tc.leader(20*time.Second))
	tc.add("b", syncMode)
	require.Equal(t, a, tc.leader(20*time.Second))
	ac := a.client(t)
	require.NoError(t, ac.Set(ctx, "before", "1", 0).Err(), "a sync write with its quorum and a valid lease is acknowledged")

	m := a.cb().member.Load()
	epoch := m.Leading()
	require.NotZero(t, epoch)
	reached, release := make(chan struct{}), make(chan struct{})
	hook := func() {
		select {
		case <-reached: // only the first write is held
		default:
			close(reached)
			<-release
		}
	}
	a.cb().testHookAwaited.Store(&hook)
	done := make(chan error, 1)
	go func() { done <- ac.Set(ctx, "k", "held", 0).Err() }()
	select {
	case <-reached:
	case <-time.After(20 * time.Second):
		t.Fatal("the write never reached its quorum")
	}

	// End a's leadership while the write waits: an operator's delete of
	// the leader key, as an expired lease and a new leader's key would.
	cli := tc.etcd.Client(t)
	_, err := cli.Delete(ctx, coord.Prefix(tc.name)+"shards/0/leader")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return m.Leading() != epoch }, 20*time.Second, 5*time.Millisecond,
		"the leader did not see its key vanish")
	close(release)

	err = <-done
	require.Error(t, err, "a write was acknowledged after its leader's epoch %d ended", epoch)
	require.True(t, strings.HasPrefix(err.Error(), "TRYAGAIN"), err.Error())
	a.cb().testHookAwaited.Store(nil)

	// The cluster carries on: a leader is elected again and takes writes.
	l := tc.leader(20 * time.Second)
	require.NoError(t, l.client(t).Set(ctx, "after", "1", 0).Err())
}

// TestClusterShutdownFenced: a leader that can no longer renew its lease
// stops cleanly. Its last write was logged but refused its acknowledgement
// (the fencing deadline passed while it waited); Shutdown still succeeds,
// and the write stays in its log, unacknowledged.
func TestClusterShutdownFenced(t *testing.T) {
	requireEtcdCluster(t)
	ctx := context.Background()
	tc := newTestCluster(t, time.Second)
	a := tc.add("a")
	require.Equal(t, a, tc.leader(20*time.Second))
	ac := a.client(t)
	require.NoError(t, ac.Set(ctx, "k", "v1", 0).Err())

	m := a.cb().member.Load()
	epoch := m.LeadingNow()
	once := false
	hook := func() { // the write is durable; etcd goes and the deadline passes
		if once {
			return
		}
		once = true
		tc.etcd.Stop()
		for m.ValidFor(epoch) {
			time.Sleep(5 * time.Millisecond) // polling: the deadline is at most TTL - margin away
		}
	}
	a.cb().testHookAwaited.Store(&hook)
	err := ac.Set(ctx, "k", "v2", 0).Err()
	require.Error(t, err, "a write acknowledged past the fencing deadline")
	seq := a.cb().r.Log().LastSeq()
	dir := a.dir

	tc.stop(a) // requires Shutdown to succeed

	l, err := commitlog.Open(filepath.Join(dir, logSubdir, "log"), nil)
	require.NoError(t, err)
	defer l.Close()
	require.GreaterOrEqual(t, l.LastSeq(), seq, "the refused write is not in the log after shutdown")
}
