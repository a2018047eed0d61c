package replicate

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
)

// WaitFollowers returns as soon as enough followers ack (it is woken by the
// acks), gives up when its context ends, and returns at once on a node that
// does not lead.
func TestWaitFollowers(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	last := write(t, a, 0, 20, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.Zero(t, a.WaitFollowers(ctx, last, 1), "no follower: the context ends the wait")

	got := make(chan int, 1)
	go func() { got <- a.WaitFollowers(context.Background(), last, 1) }()
	b := c.start("b", "a")
	select {
	case n := <-got:
		require.Equal(t, 1, n)
	case <-time.After(30 * time.Second):
		t.Fatal("WaitFollowers did not wake on the follower's ack")
	}
	require.Zero(t, b.WaitFollowers(context.Background(), last, 1), "a follower leads no one")

	// Cancelling ends a wait no ack can satisfy.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { got <- a.WaitFollowers(ctx, last+1000, 1) }()
	cancel()
	select {
	case n := <-got:
		require.Zero(t, n)
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled WaitFollowers did not return")
	}
}

// In sync mode with a synchronous set, only its followers count towards the
// quorum: a write that only a follower outside the set holds is not
// acknowledged (coordination's take-over rule trusts the set it recorded),
// and widening the set lets the waiting write through.
func TestSyncSetQuorum(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.AckMode, cfg.Quorum, cfg.QuorumTimeout = Sync, 1, 300*time.Millisecond })
	a := c.start("a", "")
	a.SetSyncSet([]string{"a", "b"})
	c.start("c", "a")
	var b logkv.Batch
	b.Set([]byte("k"), []byte("v"))
	_, err := a.Write(&b)
	require.ErrorIs(t, err, ErrQuorum, "only c, outside the synchronous set, holds the write")
	require.Contains(t, err.Error(), "synchronous set")
	require.Zero(t, a.SyncDurable([]string{"b"}, 1))
	require.Equal(t, a.Log().DurableSeq(), a.SyncDurable([]string{"c"}, 1))

	// A write waiting for its quorum goes through once c joins the set.
	// Long enough now for the write to wait for the widening (no write runs).
	c.nodes["a"].cfg.QuorumTimeout = 30 * time.Second
	done := make(chan error, 1)
	go func() {
		_, err := a.Write(&b)
		done <- err
	}()
	require.Never(t, func() bool { return len(done) > 0 }, 100*time.Millisecond, 5*time.Millisecond)
	a.SetSyncSet([]string{"a", "b", "c"})
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("widening the synchronous set did not wake the waiting write")
	}
	a.SetSyncSet(nil)
	_, err = a.Write(&b)
	require.NoError(t, err, "no set: every follower counts")
}

// TestQuorumSeq: the watermark a linearizable read waits for is what the
// quorum holds, not what the leader applied: a write the only counted
// follower lacks raises LastSeq but not QuorumSeq, and WaitQuorumSeq for it
// times out; once the follower counts, the watermark reaches it.
func TestQuorumSeq(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.AckMode, cfg.Quorum, cfg.QuorumTimeout = Sync, 1, 300*time.Millisecond })
	a := c.start("a", "")
	require.Zero(t, a.QuorumSeq(), "no follower has acked")
	c.start("b", "a")
	var b logkv.Batch
	b.Set([]byte("k"), []byte("v"))
	seq, err := a.Write(&b)
	require.NoError(t, err)
	require.GreaterOrEqual(t, a.QuorumSeq(), seq, "b acked the write: the watermark covers it")
	require.NoError(t, a.WaitQuorumSeq(context.Background(), seq))

	// b stops counting: a write reaches the engine, not the quorum.
	a.SetSyncSet([]string{"a"})
	require.Zero(t, a.QuorumSeq(), "no counted follower")
	seq, err = a.Write(&b)
	require.ErrorIs(t, err, ErrQuorum)
	require.Equal(t, seq, a.LastSeq(), "applied before the quorum")
	require.Less(t, a.QuorumSeq(), a.LastSeq())
	require.ErrorIs(t, a.WaitQuorumSeq(context.Background(), seq), ErrQuorum)

	// Counting b again lets a waiter through, woken rather than polling.
	c.nodes["a"].cfg.QuorumTimeout = 30 * time.Second
	done := make(chan error, 1)
	go func() { done <- a.WaitQuorumSeq(context.Background(), seq) }()
	require.Never(t, func() bool { return len(done) > 0 }, 50*time.Millisecond, 5*time.Millisecond)
	a.SetSyncSet(nil)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the watermark did not reach a write b holds")
	}
	require.GreaterOrEqual(t, a.QuorumSeq(), seq)
}
