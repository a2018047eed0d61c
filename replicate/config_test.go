package replicate

import (
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

func TestConfigEnsureDefaultsValidate(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	require.Equal(t, DefaultQuorumTimeout, c.QuorumTimeout)
	require.Equal(t, int64(DefaultRetentionBytes), c.RetentionBytes)
	require.Equal(t, DefaultForgetFollowerAfter, c.ForgetFollowerAfter)
	require.Equal(t, 20*time.Millisecond, c.FollowerSyncDelay, "async: followers' fsyncs are lag, not latency")
	require.Equal(t, 2*time.Millisecond, c.ShipDelay)
	require.NotNil(t, c.FS)
	require.NotNil(t, c.Logger)
	require.ErrorContains(t, c.Validate(), "Config.ID")

	s := Config{AckMode: Sync, QuorumTimeout: time.Second}
	s.EnsureDefaults()
	require.Equal(t, 2*time.Millisecond, s.FollowerSyncDelay, "sync: a write waits for its quorum's fsyncs")
	require.Zero(t, s.ShipDelay)
	require.Equal(t, time.Second, s.QuorumTimeout, "a set field stays")

	open := func(bool) (logkv.Engine, error) { return nil, nil }
	ok := Config{ID: "n1", Dir: "d", OpenEngine: open, Role: Leader}
	require.NoError(t, ok.EnsureDefaults().Validate())
	require.NotNil(t, ok.Engines, "OpenEngine alone is one generation")
	for _, c := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Dir = "" }, "Config.Dir is required"},
		{func(c *Config) { c.OpenEngine, c.Engines = nil, nil }, "OpenEngine or Config.Engines"},
		{func(c *Config) { c.Role = Follower }, "needs a Transport"},
		{func(c *Config) { c.Role = 7 }, "unknown role 7"},
		{func(c *Config) { c.ListenAddr = ":1" }, "ListenAddr needs a Transport"},
		{func(c *Config) { c.AckMode = Sync }, "Quorum of at least 1"},
		{func(c *Config) { c.FollowerSyncDelay = time.Hour }, "FollowerSyncDelay"},
		{func(c *Config) { c.ShipDelay = time.Hour }, "ShipDelay"},
	} {
		bad := Config{ID: "n1", Dir: "d", OpenEngine: open, Role: Leader}
		c.mod(&bad)
		require.ErrorContains(t, bad.EnsureDefaults().Validate(), c.want)
	}
}
