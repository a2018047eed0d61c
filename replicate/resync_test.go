package replicate

import (
	"fmt"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/wire"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// overwrite writes n batches that set the same few keys over and over: a log
// many times the size of the data it leaves.
func overwrite(t *testing.T, leader *Replica, n int) {
	var b logkv.Batch
	for i := range n {
		b.Reset()
		b.Set(fmt.Appendf(nil, "hot%d", i%8), fmt.Appendf(nil, "value-%d-%0100d", i, i))
		_, err := leader.Write(&b)
		require.NoError(t, err)
	}
}

func TestLargeBacklogResyncs(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ratio      float64
		minBacklog int64
		resync     bool
	}{
		{"backlog many times the data", 0, 16 << 10, true},
		{"under the minimum backlog", 0, 16 << 20, false},
		{"resync by backlog disabled", -1, 16 << 10, false},
		{"backlog small against the data", 1000, 16 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, func(cfg *Config) {
				cfg.ResyncBacklogRatio, cfg.ResyncMinBacklog = tc.ratio, tc.minBacklog
			})
			a := c.start("a", "")
			b := c.start("b", "a")
			write(t, a, 0, 200, 2)
			requireConverged(t, a, b)
			require.NoError(t, b.Checkpoint())
			c.stop("b")
			// Enough that the log outgrows the engine even counting the memory
			// engine's whole first arena chunk (64 KiB mapped for a few hundred keys).
			overwrite(t, a, 6000)
			backlog := a.Log().SizeFrom(b.LastSeq() + 1)
			m := a.Engine().Metrics()
			require.Greater(t, float64(backlog), 10*float64(m.DiskBytes+m.MemBytes), "the log after b's seq is many times the data")
			_, err := a.Log().NewReader(b.LastSeq() + 1)
			require.NoError(t, err, "the log b needs is retained")

			b = c.start("b", "a")
			requireConverged(t, a, b)
			want := uint64(0)
			if tc.resync {
				want = 1
			}
			require.Equal(t, want, a.Followers()[0].Resyncs)
			require.Equal(t, want, b.Status().Resyncs)
			// And it follows on from there.
			write(t, a, 1000, 50, 1)
			requireConverged(t, a, b)
		})
	}
}

// A follower waits before its fsyncs as long as its leader asks, whatever
// its own configuration says: the leader knows whether writes wait on them.
func TestLeaderSetsFollowerSyncDelay(t *testing.T) {
	for _, tc := range []struct {
		name   string
		leader func(*Config)
		want   time.Duration
	}{
		{"async default", func(*Config) {}, 20 * time.Millisecond},
		{"sync default", func(c *Config) { c.AckMode, c.Quorum = Sync, 1 }, 2 * time.Millisecond},
		{"configured", func(c *Config) { c.FollowerSyncDelay = 7 * time.Millisecond }, 7 * time.Millisecond},
		{"no wait", func(c *Config) { c.FollowerSyncDelay = -1 }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, nil)
			a := c.start("a", "", tc.leader)
			b := c.start("b", "a", func(c *Config) { c.FollowerSyncDelay = time.Second })
			write(t, a, 0, 10, 1)
			requireConverged(t, a, b)
			require.Equal(t, tc.want, b.Status().SyncDelay)
		})
	}
}

func TestFollowerSyncDelayLimit(t *testing.T) {
	c := newCluster(t, nil)
	cfg := c.base("a")
	cfg.FS, cfg.Role = vfs.NewMem(), Leader
	cfg.FollowerSyncDelay = wire.MaxSyncDelay + time.Millisecond
	_, err := Open(cfg)
	require.ErrorContains(t, err, "FollowerSyncDelay")
}
