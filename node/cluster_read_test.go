package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// syncQuorum1 runs a member in sync mode with a quorum of one follower and
// a short ack timeout, so that a write no follower takes fails quickly.
func syncQuorum1(c *Config) {
	c.Replication.Ack, c.Replication.Quorum = "sync", 1
	c.Replication.AckTimeout = Duration(1500 * time.Millisecond)
}

// waitQuorumHolds polls until the leader's quorum holds everything it
// applied: nothing in flight.
func waitQuorumHolds(t *testing.T, m *clusterMember) {
	t.Helper()
	r := m.cb().r
	require.Eventually(t, func() bool { return r.LastSeq() <= r.QuorumSeq() }, 20*time.Second, 5*time.Millisecond,
		"the quorum never caught up with the leader (applied %d, quorum %d)", r.LastSeq(), r.QuorumSeq())
}

// TestClusterReadIndex: a read on a sync-mode leader never returns a write
// the quorum does not hold (issue #17's dirty reads). With its only
// follower down, a SET is applied on the leader and waits for a quorum that
// never comes; a GET meanwhile must not answer its value: it waits, then
// answers TRYAGAIN, while the commands around it in its pipeline answer as
// usual. Once the follower is back and holds the write, reads return it.
func TestClusterReadIndex(t *testing.T) {
	requireEtcdCluster(t)
	ctx := context.Background()
	tc := newTestCluster(t, 2*time.Second)
	a := tc.add("a", syncQuorum1)
	require.Equal(t, a, tc.leader(20*time.Second))
	b := tc.add("b", syncQuorum1)
	require.Equal(t, a, tc.leader(20*time.Second))
	ac := a.client(t)
	require.NoError(t, ac.Set(ctx, "k", "v1", 0).Err())
	waitQuorumHolds(t, a)
	got, err := ac.Get(ctx, "k").Result()
	require.NoError(t, err, "nothing in flight: the read answers at once")
	require.Equal(t, "v1", got)

	tc.crash(b) // the quorum is gone; b stays in the synchronous set
	r := a.cb().r
	before := r.LastSeq()
	done := make(chan error, 1)
	go func() { done <- a.client(t).Set(ctx, "k", "v2", 0).Err() }()
	require.Eventually(t, func() bool { return r.LastSeq() > before }, 20*time.Second, time.Millisecond,
		"the write never reached the leader's engine")
	require.Less(t, r.QuorumSeq(), r.LastSeq())

	// Without the read index this GET answered v2: a value the next
	// leader (b, which never got it) would not have.
	cmds, _ := ac.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Ping(ctx)
		p.Get(ctx, "k")
		p.Echo(ctx, "after")
		return nil
	})
	require.Len(t, cmds, 3)
	require.NoError(t, cmds[0].Err())
	getErr := cmds[1].Err()
	require.Error(t, getErr, "a read answered a write the quorum does not hold: %v", cmds[1])
	require.True(t, strings.HasPrefix(getErr.Error(), "TRYAGAIN"), getErr.Error())
	require.Equal(t, "after", cmds[2].(*redis.StringCmd).Val(), "the pipeline's other replies stay in place")
	// A transaction that only reads is one read: its EXEC answers TRYAGAIN.
	_, err = ac.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, "k")
		return nil
	})
	require.Error(t, err, "EXEC answered a write the quorum does not hold")
	require.True(t, strings.HasPrefix(err.Error(), "TRYAGAIN"), err.Error())
	require.Error(t, <-done, "the write had no quorum")

	// b comes back, catches up, and holds v2: now it may be read.
	tc.start(b, syncQuorum1)
	require.Eventually(t, func() bool {
		v, err := ac.Get(ctx, "k").Result()
		return err == nil && v == "v2"
	}, 30*time.Second, 10*time.Millisecond, "the write b now holds is never read")
}

// TestClusterReadLease: a sync-mode leader that cannot confirm its lease
// (etcd gone, past its fencing deadline) answers reads TRYAGAIN rather than
// a value another leader may have overwritten by then.
func TestClusterReadLease(t *testing.T) {
	requireEtcdCluster(t)
	ctx := context.Background()
	tc := newTestCluster(t, 2*time.Second)
	a := tc.add("a", syncQuorum1)
	require.Equal(t, a, tc.leader(20*time.Second))
	tc.add("b", syncQuorum1)
	require.Equal(t, a, tc.leader(20*time.Second))
	ac := a.client(t)
	require.NoError(t, ac.Set(ctx, "k", "v", 0).Err())
	waitQuorumHolds(t, a)

	m := a.cb().member.Load()
	epoch := m.LeadingNow()
	tc.etcd.Stop()
	fence := m.Deadline()
	for time.Now().Before(fence) {
		time.Sleep(10 * time.Millisecond) // polling with a deadline: the fence is at most TTL - margin away
	}
	refused := false
	for !refused && m.LeadingNow() == epoch {
		_, err := ac.Get(ctx, "k").Result()
		if m.LeadingNow() != epoch {
			break // stepped down meanwhile: its reads are a follower's
		}
		require.Error(t, err, "a read answered past the fencing deadline, by a leader that cannot confirm its lease")
		require.True(t, strings.HasPrefix(err.Error(), "TRYAGAIN"), err.Error())
		refused = true
	}
	require.True(t, refused, "the leader stepped down before a read could be tried past its deadline")

	// Once it steps down (a TTL without etcd), it says so: its reads are a
	// follower's from then on, and a client that checks ROLE around a read
	// (kvhistory does) must not take them for a leader's. It said master
	// while its replication still led, with no leader known.
	require.Eventually(t, func() bool { return m.LeadingNow() == 0 }, 10*time.Second, 5*time.Millisecond)
	role, err := ac.Do(ctx, "ROLE").Slice()
	require.NoError(t, err)
	require.Equal(t, "slave", role[0], "a stepped-down leader says master: %v", role)
	require.Contains(t, ac.Info(ctx, "replication").Val(), "role:slave\r\n")
}
