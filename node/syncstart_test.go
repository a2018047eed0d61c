package node

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A new leader in sync mode starts before any follower exists: its first
// record (the keyspace format key) needs no quorum. It failed to start after
// ack_timeout, which cmd/kvhistory/internal/history's e2e test found once it stopped
// skipping. Its clients' writes still wait for the quorum.
func TestSyncLeaderStartsWithoutFollowers(t *testing.T) {
	tlsDir := filepath.Join(t.TempDir(), "tls")
	sync := func(c *Config) {
		c.Replication.Ack, c.Replication.Quorum = "sync", 1
		c.Replication.AckTimeout = Duration(10 * time.Second)
	}
	leader := replNode(t, tlsDir, "memory", "", sync)
	follower := replNode(t, tlsDir, "memory", leader.rep(t).Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dial(t, leader, nil)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err(), "a write reaches the quorum")
	caughtUp(t, leader, follower)
	require.Equal(t, "v", dial(t, follower, nil).Get(ctx, "k").Val())
}
