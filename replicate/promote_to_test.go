package replicate

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPromoteTo: a follower promotes to the epoch it is given; a leader
// starts a newer one while leading, and its follower follows it into the
// new epoch; an epoch not newer than the log's is refused.
func TestPromoteTo(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	b := c.start("b", "a")
	write(t, a, 0, 50, 2)
	requireConverged(t, a, b)

	// A leader starts a new epoch in place; its follower reconnects into it.
	e := a.Epoch() + 1000
	require.NoError(t, a.PromoteTo(e))
	require.Equal(t, e, a.Epoch())
	require.NoError(t, a.PromoteTo(e), "the epoch it already leads is a no-op")
	last := write(t, a, 50, 50, 2)
	waitApplied(t, last, b)
	require.Equal(t, e, b.Epoch())
	require.ErrorContains(t, a.PromoteTo(e-1), "already at epoch")

	// The follower takes over at a newer epoch, with everything.
	require.NoError(t, b.PromoteTo(e+7))
	require.Equal(t, Leader, b.Role())
	require.Equal(t, e+7, b.Epoch())
	require.Equal(t, scan(t, a.Engine()), scan(t, b.Engine()))
}
