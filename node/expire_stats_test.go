package node

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestExpireCycleMax checks INFO stats' expire_cycle_max_us: the longest
// cycle's wall time, that of the cycle that removed the keys (no more than
// the test timed around it), and no less after a shorter cycle. The
// background expirer's first cycle (expireIdleEvery after the start) may
// run before the test stops it, and did on a loaded machine (the field read
// 66): the test zeroes the field once the expirer is stopped, so that only
// its own cycles count.
func TestExpireCycleMax(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.stopBackground() // only this test's cycles run from here
		n.state().expire.cycleMaxMicros.Store(0)
		cycleMax := func() int64 {
			for line := range strings.SplitSeq(c.Info(ctx, "stats").Val(), "\r\n") {
				if v, ok := strings.CutPrefix(line, "expire_cycle_max_us:"); ok {
					us, err := strconv.ParseInt(v, 10, 64)
					require.NoError(t, err)
					return us
				}
			}
			t.Fatal("INFO stats has no expire_cycle_max_us")
			return 0
		}
		require.Equal(t, int64(0), cycleMax())
		n.setClock(clock0)
		for i := range 500 {
			require.NoError(t, c.Set(ctx, "k"+strconv.Itoa(i), "v", time.Second).Err())
		}
		n.setClock(clock0 + 2_000)
		start := time.Now()
		deleted, err := n.expireDue()
		took := time.Since(start).Microseconds()
		require.NoError(t, err)
		require.Equal(t, 500, deleted)
		longest := cycleMax()
		require.Positive(t, longest)
		require.LessOrEqual(t, longest, took, "the cycle's own time, not more")
		_, err = n.expireDue() // nothing due: a shorter cycle
		require.NoError(t, err)
		require.Equal(t, longest, cycleMax())
	})
}

// TestExpirerReadsIntoItsBuffer checks that the expirer's check of each
// key's deadline allocates nothing on an engine that appends values
// (logkv.ValueAppender: every engine here): removing 2,000 due keys
// allocates well under one object a key (a Get of each key's value made
// it about 1.4).
func TestExpirerReadsIntoItsBuffer(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.stopBackground()
		n.setClock(clock0)
		const keys = 2000
		p := c.Pipeline()
		for i := range keys {
			p.Set(ctx, "key:"+strconv.Itoa(i), "v", time.Second)
		}
		_, err := p.Exec(ctx)
		require.NoError(t, err)
		n.setClock(clock0 + 2_000)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		deleted, err := n.expireDue()
		runtime.ReadMemStats(&after)
		require.NoError(t, err)
		require.Equal(t, keys, deleted)
		perKey := float64(after.Mallocs-before.Mallocs) / keys
		t.Logf("%.2f allocations a key removed", perKey)
		require.Less(t, perKey, 0.9)
	})
}
