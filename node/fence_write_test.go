package node

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv/replicate/coord"
)

// TestClusterFencedKeyspaceWriteSaysTRYAGAIN: a keyspace write (PEXPIREAT,
// PERSIST, SET with a deadline: the commands that read the key before they
// write) whose leader loses its leadership after the write reached the
// quorum is answered TRYAGAIN, as a plain SET is
// (TestClusterNoAckAfterLeadershipEnds): it may have been applied. The read
// index must not take it for a read and answer "READONLY ... while the
// read ran", which tells a client the write was refused: kvhistory's
// automatic-failover expiry runs found PERSISTs answered so that were in
// the new leader's data (issue #17).
func TestClusterFencedKeyspaceWriteSaysTRYAGAIN(t *testing.T) {
	requireEtcdCluster(t)
	ctx := context.Background()
	tc := newTestCluster(t, time.Second)
	syncMode := func(c *Config) { c.Replication.Ack, c.Replication.Quorum = "sync", 1 }
	a := tc.add("a", syncMode)
	require.Equal(t, a, tc.leader(20*time.Second))
	tc.add("b", syncMode)
	require.Equal(t, a, tc.leader(20*time.Second))
	ac := a.client(t)
	require.NoError(t, ac.Set(ctx, "k", "v", 0).Err())

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
	defer a.cb().testHookAwaited.Store(nil)
	done := make(chan error, 1)
	deadline := time.Now().Add(time.Hour).UnixMilli()
	go func() { done <- ac.Do(ctx, "pexpireat", "k", strconv.FormatInt(deadline, 10)).Err() }()
	select {
	case <-reached:
	case <-time.After(20 * time.Second):
		t.Fatal("the write never reached its quorum")
	}
	// End a's leadership while the write waits (an operator's delete of
	// the leader key, as an expired lease and a new leader's key would).
	_, err := tc.etcd.Client(t).Delete(ctx, coord.Prefix(tc.name)+"shards/0/leader")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return m.Leading() != epoch }, 20*time.Second, 5*time.Millisecond,
		"the leader did not see its key vanish")
	close(release)

	err = <-done
	require.Error(t, err, "a write was acknowledged after its leader's epoch %d ended", epoch)
	require.Equal(t, errFenced.Error(), err.Error(), "the write's own refusal: it may have been applied")
}
