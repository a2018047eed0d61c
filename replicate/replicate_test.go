package replicate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/commitlog"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

func TestReplicateInMemory(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	b := c.start("b", "a")
	cn := c.start("c", "a", func(cfg *Config) { cfg.Compress = true })
	write(t, a, 0, 3000, 8)
	requireConverged(t, a, b, cn)
	leaderHearsAll(t, a)
	st := a.Followers()
	require.Len(t, st, 2)
	for _, s := range st {
		require.Equal(t, StateStreaming, s.State)
		require.Equal(t, a.LastSeq(), s.Applied)
		require.Zero(t, s.Resyncs, "fresh followers catch up from the log at seq 1")
	}
	require.Equal(t, Follower, b.Role())
	_, err := b.Write(new(logkv.Batch))
	require.NoError(t, err, "an empty batch is a no-op anywhere")
	var one logkv.Batch
	one.Set([]byte("k"), []byte("v"))
	_, err = b.Write(&one)
	require.ErrorIs(t, err, ErrNotLeader)
}

func TestFollowerRestartCatchesUp(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	b := c.start("b", "a")
	write(t, a, 0, 500, 4)
	requireConverged(t, a, b)
	require.NoError(t, b.Checkpoint())
	c.stop("b")
	write(t, a, 500, 500, 4)
	b = c.start("b", "a")
	require.GreaterOrEqual(t, b.LastSeq(), uint64(500), "restarted from its checkpoint")
	requireConverged(t, a, b)
	require.Zero(t, b.Status().Resyncs, "caught up from its seq, no resync")
	require.Zero(t, a.Followers()[0].Resyncs)
}

func TestWipedFollowerResyncs(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.SegmentSize = 4 << 10 })
	a := c.start("a", "")
	b := c.start("b", "a")
	write(t, a, 0, 400, 4)
	requireConverged(t, a, b)
	leaderHearsAll(t, a)
	// Trim the leader's log so that a wiped follower cannot catch up from
	// seq 1.
	require.NoError(t, a.Checkpoint())
	require.NoError(t, a.Maintain())
	require.Greater(t, a.Log().FirstSeq(), uint64(1))

	c.stop("b")
	c.wipe("b")
	write(t, a, 400, 100, 2)
	b = c.start("b", "a")
	requireConverged(t, a, b)
	require.Equal(t, uint64(1), b.Status().Resyncs)
	require.Equal(t, uint64(1), a.Followers()[0].Resyncs)
	// And it follows on from there.
	write(t, a, 500, 100, 2)
	requireConverged(t, a, b)
}

func TestRetentionCapResyncs(t *testing.T) {
	c := newCluster(t, func(cfg *Config) {
		cfg.SegmentSize = 4 << 10
		cfg.RetentionBytes = 32 << 10
		cfg.Checkpoint = false // the memory engine then counts as durable: trim freely
	})
	a := c.start("a", "")
	b := c.start("b", "a")
	write(t, a, 0, 100, 1)
	requireConverged(t, a, b)
	c.stop("b")
	write(t, a, 100, 3000, 4)
	require.Greater(t, a.Log().Size(), int64(64<<10))
	require.NoError(t, a.Maintain())
	st := a.Followers()
	require.True(t, st[0].NeedResync, "b is past the cap")
	require.Less(t, a.Log().Size(), int64(40<<10), "the log was trimmed past the dead follower")
	_, err := a.Log().NewReader(101)
	require.ErrorIs(t, err, commitlog.ErrTrimmed)

	b = c.start("b", "a")
	requireConverged(t, a, b)
	require.Equal(t, uint64(1), a.Followers()[0].Resyncs)
	require.False(t, a.Followers()[0].NeedResync)
}

func TestSyncQuorum(t *testing.T) {
	c := newCluster(t, func(cfg *Config) {
		cfg.AckMode, cfg.Quorum, cfg.QuorumTimeout = Sync, 2, 300*time.Millisecond
	})
	a := c.start("a", "")
	b := c.start("b", "a")
	cn := c.start("c", "a")
	for i := range 200 {
		var batch logkv.Batch
		batch.Set(fmt.Appendf(nil, "k%d", i), []byte("v"))
		seq, err := a.Write(&batch)
		require.NoError(t, err)
		// Acked: durable in both followers' logs already.
		require.GreaterOrEqual(t, b.Log().DurableSeq(), seq)
		require.GreaterOrEqual(t, cn.Log().DurableSeq(), seq)
	}
	// Kill the leader right after an ack: the followers' logs, as a power
	// loss would leave them, hold every acked write.
	last := a.LastSeq()
	for _, id := range []string{"b", "c"} {
		crashed := c.fs[id].CrashClone(vfsDrop())
		l, err := commitlog.Open("node/log", &commitlog.Options{FS: crashed})
		require.NoError(t, err)
		require.GreaterOrEqual(t, l.LastSeq(), last, id)
		l.Close()
	}

	c.stop("c")
	var batch logkv.Batch
	batch.Set([]byte("lonely"), []byte("v"))
	start := time.Now()
	seq, err := a.Write(&batch)
	require.ErrorIs(t, err, ErrQuorum)
	require.Contains(t, err.Error(), "replicate: quorum of 2 not reached within 300ms")
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	require.Equal(t, a.LastSeq(), seq, "committed on the leader all the same")
}

func TestSyncQuorumFallback(t *testing.T) {
	c := newCluster(t, func(cfg *Config) {
		cfg.AckMode, cfg.Quorum, cfg.QuorumTimeout, cfg.FallbackAsync = Sync, 1, 50*time.Millisecond, true
	})
	a := c.start("a", "")
	var batch logkv.Batch
	batch.Set([]byte("k"), []byte("v"))
	_, err := a.Write(&batch)
	require.NoError(t, err, "FallbackAsync acknowledges without the quorum")
}

func TestPromotionCutsDivergentTail(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	b := c.start("b", "a")
	cn := c.start("c", "a")
	write(t, a, 0, 300, 4)
	requireConverged(t, a, b, cn)

	// a is cut off: b is promoted and c follows it.
	first := a.Epoch()
	require.NoError(t, b.Promote())
	require.Equal(t, first+1, b.Epoch())
	require.NoError(t, cn.Follow("b"))
	// The deposed a goes on taking writes nobody else will see.
	var batch logkv.Batch
	for i := range 20 {
		batch.Reset()
		batch.Set(fmt.Appendf(nil, "divergent%d", i), []byte("lost"))
		_, err := a.Write(&batch)
		require.NoError(t, err)
	}
	write(t, b, 300, 200, 4)
	requireConverged(t, b, cn)

	// a applied its divergent writes: following b would throw them away,
	// which a refuses (MaxDiscard 0), staying the leader it was with its
	// data intact.
	before := scan(t, a.Engine())
	err := a.Follow("b")
	require.ErrorIs(t, err, ErrWouldDiscard)
	require.ErrorContains(t, err, "applied 20 records that snapshot does not hold")
	require.Equal(t, Leader, a.Role())
	require.Equal(t, before, scan(t, a.Engine()))

	// Forced, a rejoins as b's follower: its tail past the fork point goes.
	require.NoError(t, a.FollowForce("b"))
	write(t, b, 500, 50, 2)
	requireConverged(t, b, a, cn)
	_, err = a.Engine().Get([]byte("divergent0"))
	require.ErrorIs(t, err, logkv.ErrNotFound)
	require.Equal(t, b.Log().History(), a.Log().History())
	require.Equal(t, first+1, a.Epoch())
	fork := commitlog.ForkPoint(a.Log().History(), a.Log().LastSeq(), b.Log().History(), b.Log().LastSeq())
	require.Equal(t, b.Log().LastSeq(), fork, "a's log agrees with b's")

	// Writes to the deposed node are refused now.
	_, err = a.Write(&batch)
	require.ErrorIs(t, err, ErrNotLeader)
}

func TestCheckpointRestart(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.SegmentSize = 4 << 10 })
	a := c.start("a", "")
	write(t, a, 0, 1000, 4)
	require.NoError(t, a.Checkpoint())
	require.NoError(t, a.Maintain())
	require.Greater(t, a.Log().FirstSeq(), uint64(1), "log trimmed before the checkpoint")
	write(t, a, 1000, 200, 4)
	want := scan(t, a.Engine())
	last := a.LastSeq()
	c.stop("a")
	a = c.start("a", "")
	require.Equal(t, last, a.LastSeq())
	require.Equal(t, want, scan(t, a.Engine()))
	write(t, a, 1200, 10, 1)
	require.Equal(t, last+10, a.LastSeq())
}

func TestMaintainCheckpointsWhenDue(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.SegmentSize = 4 << 10; cfg.CheckpointEvery = 16 << 10 })
	a := c.start("a", "")
	write(t, a, 0, 1000, 4)
	require.NoError(t, a.Maintain())
	require.Greater(t, a.Log().FirstSeq(), uint64(1))
	require.Equal(t, a.LastSeq(), a.checkpointSeq.Load())
}

func TestWaitAppliedHonoursContext(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, a.WaitApplied(ctx, 5), context.Canceled)
}

// A deposed leader restarted as a follower from a checkpoint taken before
// the fork cuts its divergent log tail and catches up without a resync.
func TestRestartedDeposedLeaderTruncates(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	b := c.start("b", "a")
	write(t, a, 0, 300, 4)
	requireConverged(t, a, b)
	require.NoError(t, a.Checkpoint())

	require.NoError(t, b.Promote())
	var batch logkv.Batch
	for i := range 20 {
		batch.Reset()
		batch.Set(fmt.Appendf(nil, "divergent%d", i), []byte("lost"))
		_, err := a.Write(&batch)
		require.NoError(t, err)
	}
	require.Equal(t, uint64(320), a.Log().LastSeq())
	c.stop("a")
	write(t, b, 300, 100, 2)

	a = c.start("a", "b")
	requireConverged(t, b, a)
	require.Zero(t, a.Status().Resyncs, "the tail was cut, not resynced away")
	require.Equal(t, uint64(1), a.Log().FirstSeq(), "the log before the fork is kept")
	require.Equal(t, b.Log().History(), a.Log().History())
	_, err := a.Engine().Get([]byte("divergent0"))
	require.ErrorIs(t, err, logkv.ErrNotFound)
	// a's log now matches b's record for record past the fork.
	ra, err := a.Log().NewReader(301)
	require.NoError(t, err)
	defer ra.Close()
	rb, err := b.Log().NewReader(301)
	require.NoError(t, err)
	defer rb.Close()
	for seq := uint64(301); seq <= b.Log().LastSeq(); seq++ {
		x, err := ra.Next(context.Background())
		require.NoError(t, err)
		y, err := rb.Next(context.Background())
		require.NoError(t, err)
		require.Equal(t, y.Epoch, x.Epoch)
		require.Equal(t, y.Batch, x.Batch)
	}
}

// A follower that never reached its leader replays its own log when
// promoted.
func TestPromoteReplaysUnreachedLog(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	b := c.start("b", "a")
	write(t, a, 0, 200, 4)
	requireConverged(t, a, b)
	require.NoError(t, b.Checkpoint())
	write(t, a, 200, 50, 2)
	requireConverged(t, a, b)
	c.stop("b")
	c.stop("a")
	b = c.start("b", "a") // a is gone: b cannot reach it
	require.Equal(t, uint64(200), b.LastSeq())
	require.NoError(t, b.Promote())
	require.Equal(t, uint64(250), b.LastSeq())
	_, err := b.Engine().Get([]byte("key00000249"))
	require.NoError(t, err)
}

// A leader killed by a power loss comes back with every write it
// acknowledged: its checkpoint, then its log replayed.
func TestLeaderCrashKeepsAckedWrites(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newCluster(t, func(cfg *Config) { cfg.SegmentSize = 8 << 10 })
			a := c.start("a", "")
			write(t, a, 0, 300, 4)
			require.NoError(t, a.Checkpoint())
			require.NoError(t, a.Maintain())
			last := write(t, a, 300, 200, 4)
			want := scan(t, a.Engine())
			opts := vfsDrop()
			if seed > 0 {
				opts = vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, 7)), Data: vfs.TornUnsyncedData, Entries: vfs.KeepEntryPrefix}
			}
			crashed := c.fs["a"].CrashClone(opts)
			c.nodes["a"].Close() // abandon the old one: it writes to the old FS
			delete(c.nodes, "a")
			c.fs["a"] = crashed
			a = c.start("a", "")
			require.Equal(t, last, a.LastSeq())
			require.Equal(t, want, scan(t, a.Engine()))
		})
	}
}

func TestFollowerMetrics(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	b := c.start("b", "a")
	write(t, a, 0, 100, 2)
	requireConverged(t, a, b)
	st := a.Followers()
	require.Len(t, st, 1)
	require.Eventually(t, func() bool { return a.Followers()[0].Applied == 100 }, 10*time.Second, time.Millisecond, "the leader hears b's ack")
	st = a.Followers()
	require.Equal(t, FollowerStatus{ID: "b", State: StateStreaming, Written: 100, Durable: 100, Applied: 100,
		ApplyRate: st[0].ApplyRate, SentBytes: st[0].SentBytes, SentFrames: st[0].SentFrames}, st[0])
	require.Positive(t, st[0].SentBytes)
	require.Positive(t, st[0].SentFrames)
	require.LessOrEqual(t, st[0].SentFrames, int64(100), "at most a frame a record")

	c.stop("b")
	require.Eventually(t, func() bool { return a.Followers()[0].State == StateDisconnected }, 10*time.Second, time.Millisecond)
	write(t, a, 100, 50, 1)
	s := a.Followers()[0]
	require.Equal(t, uint64(50), s.LagRecords)
	require.Positive(t, s.LagBytes)
	require.Positive(t, s.LagSeconds)

	status := a.Status()
	require.Equal(t, Leader, status.Role)
	require.Equal(t, uint64(150), status.Applied)
	require.Equal(t, a.Log().History()[0].Epoch, status.Epoch, "a's first epoch, random")

	b = c.start("b", "a")
	requireConverged(t, a, b)
	fs := b.Status()
	require.Equal(t, Follower, fs.Role)
	require.Equal(t, StateStreaming, fs.State)
	require.Equal(t, uint64(150), fs.Applied)
	// The leader learns it from b's next ack.
	require.Eventually(t, func() bool { return a.Followers()[0].LagRecords == 0 }, 10*time.Second, time.Millisecond)
}
