package replicate

import (
	"testing"
	"time"

	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

func TestShipDelayDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want time.Duration
	}{
		{"async default", func(*Config) {}, 2 * time.Millisecond},
		{"sync default: none", func(c *Config) { c.AckMode, c.Quorum = Sync, 1 }, 0},
		{"configured", func(c *Config) { c.ShipDelay = 7 * time.Millisecond }, 7 * time.Millisecond},
		{"no wait", func(c *Config) { c.ShipDelay = -1 }, -1},
		{"the limit", func(c *Config) { c.ShipDelay = MaxShipDelay }, MaxShipDelay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, nil)
			a := c.start("a", "", tc.mod)
			require.Equal(t, tc.want, a.cfg.ShipDelay)
		})
	}
}

func TestShipDelayLimit(t *testing.T) {
	c := newCluster(t, nil)
	cfg := c.base("a")
	cfg.FS, cfg.Role = vfs.NewMem(), Leader
	cfg.ShipDelay = MaxShipDelay + time.Millisecond
	_, err := Open(cfg)
	require.ErrorContains(t, err, "ShipDelay")
}

// streaming waits until the leader streams to every one of n followers.
func streaming(t *testing.T, leader *Replica, n int) {
	require.Eventually(t, func() bool {
		st := leader.Followers()
		for _, s := range st {
			if s.State != StateStreaming {
				return false
			}
		}
		return len(st) == n
	}, 30*time.Second, time.Millisecond, "the leader streams to its followers")
}

// Frames to a follower are at least ShipDelay apart, so a burst of group
// commits reaches it in a few frames: at most one more than the delays that
// fit in the time the burst took to arrive.
func TestShipDelayBatchesFrames(t *testing.T) {
	const delay = 50 * time.Millisecond
	c := newCluster(t, nil)
	a := c.start("a", "", func(c *Config) { c.ShipDelay = delay })
	b := c.start("b", "a")
	streaming(t, a, 1)
	before := a.Followers()[0].SentFrames
	t0 := time.Now()
	last := write(t, a, 0, 800, 8) // unpaced, a dozen or more frames on a MemFS
	waitApplied(t, last, b)
	elapsed := time.Since(t0)
	frames := a.Followers()[0].SentFrames - before
	t.Logf("800 writes in %v reached the follower in %d frames", elapsed, frames)
	require.LessOrEqual(t, frames, 1+int64(elapsed/delay))
	requireConverged(t, a, b)
}

// The wait comes after a frame, never before: a write after an idle spell
// reaches the followers at once, whatever the delay.
func TestShipDelaySendsAnIdleWriteAtOnce(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "", func(c *Config) { c.ShipDelay = MaxShipDelay })
	b := c.start("b", "a")
	streaming(t, a, 1)
	t0 := time.Now()
	last := write(t, a, 0, 1, 1)
	waitApplied(t, last, b)
	require.Less(t, time.Since(t0), MaxShipDelay, "the first record after an idle spell waited for the delay")
	// A burst right after it waits out the delay, and still arrives whole.
	write(t, a, 1, 200, 4)
	requireConverged(t, a, b)
}
