package replicate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// leaderOf returns n's leader side.
func leaderOf(t *testing.T, n *Replica) *leader {
	n.roleMu.Lock()
	defer n.roleMu.Unlock()
	require.NotNil(t, n.leader, "node %s is not leading", n.ID())
	return n.leader
}

// stopFollower stops follower id and waits until leader a sees it gone; it
// returns when its connection ended, as the leader recorded it.
func stopFollower(t *testing.T, c *cluster, a *Replica, id string) time.Time {
	c.stop(id)
	ld := leaderOf(t, a)
	var left time.Time
	require.Eventually(t, func() bool {
		ld.mu.Lock()
		defer ld.mu.Unlock()
		p := ld.peers[id]
		if p == nil || p.stream != nil {
			return false
		}
		left = p.leftAt
		return true
	}, 10*time.Second, time.Millisecond, "the leader sees %s leave", id)
	return left
}

// A follower disconnected for longer than ForgetFollowerAfter is forgotten at
// the next Maintain: it no longer pins the leader's log, and when it returns
// to a log that no longer holds what it lacks it is resynced.
func TestForgetDisconnectedFollower(t *testing.T) {
	c := newCluster(t, func(cfg *Config) {
		cfg.ForgetFollowerAfter = 50 * time.Millisecond
		cfg.SegmentSize = 1 // a segment per record: the log trims to the record
	})
	a := c.start("a", "")
	b := c.start("b", "a")
	write(t, a, 0, 100, 2)
	requireConverged(t, a, b)
	leaderHearsAll(t, a)
	require.NoError(t, b.Checkpoint())
	stopFollower(t, c, a, "b")

	last := write(t, a, 100, 100, 2)
	require.NoError(t, a.Checkpoint())
	require.Eventually(t, func() bool {
		require.NoError(t, a.Maintain())
		return len(a.Followers()) == 0
	}, 10*time.Second, 5*time.Millisecond, "b is forgotten")
	require.NoError(t, a.Maintain())
	require.Equal(t, last, a.Log().FirstSeq(), "the log no longer waits for b (the open segment stays)")

	// Back: the log lacks what it needs, so it gets a full resync.
	b = c.start("b", "a")
	write(t, a, 200, 10, 1)
	requireConverged(t, a, b)
	require.Equal(t, uint64(1), b.Status().Resyncs)
	require.Len(t, a.Followers(), 1)
}

// Until ForgetFollowerAfter has passed, a disconnected follower is
// remembered and pins the log; from that moment on it is forgotten. A
// negative setting never forgets. The clock is the argument of forget.
func TestForgetFollowerAfter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		after  time.Duration
		forget bool
	}{
		{"an hour", time.Hour, true},
		{"never", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, func(cfg *Config) {
				cfg.ForgetFollowerAfter = tc.after
				cfg.SegmentSize = 1 // a segment per record: the log trims to the record
			})
			a := c.start("a", "")
			b := c.start("b", "a")
			write(t, a, 0, 100, 2)
			requireConverged(t, a, b)
			leaderHearsAll(t, a)
			left := stopFollower(t, c, a, "b")

			last := write(t, a, 100, 100, 2)
			require.NoError(t, a.Checkpoint())
			require.NoError(t, a.Maintain())
			require.Len(t, a.Followers(), 1, "b is remembered")
			require.LessOrEqual(t, a.Log().FirstSeq(), uint64(101), "the log is kept from what b needs")

			ld := leaderOf(t, a)
			forgetAt := func(now time.Time) int {
				ld.mu.Lock()
				defer ld.mu.Unlock()
				ld.forget(now)
				return len(ld.peers)
			}
			require.Equal(t, 1, forgetAt(left.Add(time.Hour-time.Millisecond)), "remembered just before the hour")
			if !tc.forget {
				require.Equal(t, 1, forgetAt(left.Add(1000*time.Hour)), "never forgotten")
				return
			}
			require.Equal(t, 0, forgetAt(left.Add(time.Hour)), "forgotten at the hour")
			require.NoError(t, a.Maintain())
			require.Equal(t, last, a.Log().FirstSeq(), "the log no longer waits for b (the open segment stays)")
		})
	}
}
