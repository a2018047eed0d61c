package node

import (
	"context"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// Issue 16: a MONITOR client obeys client_output_buffer_limit's normal
// class, as in Redis: a monitor that does not read is closed once its
// pending lines pass the hard limit, or stay over the soft limit for
// soft_seconds, and the closing is counted by reason. It used to have a
// fixed 32 MiB queue whatever the limits said (the hard case fails
// without the fix: 16 MiB of lines never reach 32 MiB).
func TestMonitorOutputLimits(t *testing.T) {
	big := strings.Repeat("v", 256<<10)
	for _, tc := range []struct {
		name   string
		limit  OutputBufferLimit
		reason string
		// lines is how much to feed the monitor at most: under the old
		// fixed 32 MiB, so only the configured limits can close it.
		lines int
	}{
		{"hard", OutputBufferLimit{Hard: 4 << 20}, closedOutputHard, 16 << 20},
		{"soft", OutputBufferLimit{Hard: 64 << 20, Soft: 1 << 20, SoftSeconds: 1}, closedOutputSoft, 16 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := adminNode(t, func(c *Config) { c.ClientOutputBufferLimit.Normal = tc.limit })
			mon := dialRawAdmin(t, n)
			require.Equal(t, "+OK\r\n", mon.do("monitor"))
			// mon reads nothing from now on.
			c := dialAdmin(t, n)
			ctx := context.Background()
			fed := 0
			deadline := time.Now().Add(30 * time.Second)
			for n.state().monitors.count.Load() > 0 {
				require.True(t, time.Now().Before(deadline), "the monitor was never closed")
				if fed < tc.lines {
					require.NoError(t, c.Set(ctx, "k", big, 0).Err())
					fed += len(big)
				} else {
					// Over soft, and the lines stop growing: only time
					// closes it now.
					require.NoError(t, c.Ping(ctx).Err())
					time.Sleep(10 * time.Millisecond) // paces the polling
				}
			}
			var m dto.Metric
			require.NoError(t, n.metrics.closed.WithLabelValues(tc.reason).Write(&m))
			require.Equal(t, 1.0, m.GetCounter().GetValue(), "closed for %s", tc.reason)
			require.NoError(t, c.Ping(ctx).Err(), "the node serves on")
		})
	}
}
