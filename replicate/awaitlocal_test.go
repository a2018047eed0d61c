package replicate

import (
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// AwaitLocal makes a Sync-mode leader's write durable and applied without a
// quorum, where Await fails for want of followers.
func TestAwaitLocalNeedsNoQuorum(t *testing.T) {
	c := newCluster(t, func(cfg *Config) {
		cfg.AckMode, cfg.Quorum, cfg.QuorumTimeout = Sync, 1, 50*time.Millisecond
	})
	a := c.start("a", "")
	var b logkv.Batch
	b.Set([]byte("format"), []byte{1})
	seq, err := a.Submit(&b)
	require.NoError(t, err)
	require.NoError(t, a.AwaitLocal(seq))
	require.Equal(t, seq, a.LastSeq(), "applied")
	require.GreaterOrEqual(t, a.Log().DurableSeq(), seq, "durable")
	v, err := a.Engine().Get([]byte("format"))
	require.NoError(t, err)
	require.Equal(t, []byte{1}, v)

	seq, err = a.Submit(&b)
	require.NoError(t, err)
	require.ErrorIs(t, a.Await(seq), ErrQuorum, "a client write still waits for its quorum")
}
