package node

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logkv/logkv/replicate"
	"github.com/stretchr/testify/require"
)

// replication.forget_follower_after defaults to replicate's default and
// reads as a duration.
func TestForgetFollowerAfterConfig(t *testing.T) {
	require.Equal(t, Duration(replicate.DefaultForgetFollowerAfter), DefaultConfig().Replication.ForgetFollowerAfter)

	file := filepath.Join(t.TempDir(), "node.yaml")
	require.NoError(t, os.WriteFile(file, []byte("replication:\n  forget_follower_after: 90s\n"), 0o600))
	cfg, err := LoadConfig(file)
	require.NoError(t, err)
	require.Equal(t, Duration(90*time.Second), cfg.Replication.ForgetFollowerAfter)
}
