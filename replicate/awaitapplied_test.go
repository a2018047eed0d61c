package replicate

import (
	"context"
	"testing"
	"time"

	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// TestAwaitAppliedDoesNotHurrySync: with SyncInterval, AwaitApplied makes a
// write readable without waking the background syncer (kvnode's barriers:
// its expirer made about a hundred fsyncs a second by them), while Await
// wakes it. The syncer is held inside an fsync, so a kick stays in its
// channel, where the test sees it.
func TestAwaitAppliedDoesNotHurrySync(t *testing.T) {
	hold, blocked, release, inj := holdLogSyncs()
	defer release()
	c := newCluster(t, nil)
	mem := vfs.NewMem()
	a := c.start("a", "", func(cfg *Config) {
		cfg.FS = vfs.NewErrorFS(mem, inj)
		cfg.SyncInterval = time.Hour // only Await's kicks start a sync
	})

	hold.Store(true)
	seq, err := a.Submit(batchOf("first", "1"))
	require.NoError(t, err)
	require.NoError(t, a.Await(seq)) // kicks the syncer, which takes the kick
	<-blocked                        // and is now inside its fsync

	seq, err = a.Submit(batchOf("second", "2"))
	require.NoError(t, err)
	require.NoError(t, a.AwaitApplied(seq))
	v, err := a.Engine().Get([]byte("second"))
	require.NoError(t, err, "AwaitApplied made the write readable")
	require.Equal(t, "2", string(v))
	require.Less(t, a.log.DurableSeq(), seq)
	require.Zero(t, len(a.syncKick), "AwaitApplied woke the background syncer")

	require.NoError(t, a.Await(seq))
	require.Equal(t, 1, len(a.syncKick), "Await did not wake the background syncer")
}

// TestWaitFollowersAfterAwaitApplied: WaitFollowers (Redis' WAIT) for a
// record that only AwaitApplied waited for wakes the background syncer
// itself, as followers get durable records only: with an hour's
// SyncInterval it would otherwise wait the hour (the timeout here).
func TestWaitFollowersAfterAwaitApplied(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "", func(cfg *Config) { cfg.SyncInterval = time.Hour })
	b := c.start("b", "a")
	seq, err := a.Submit(batchOf("client", "1"))
	require.NoError(t, err)
	require.NoError(t, a.Await(seq))
	waitApplied(t, seq, b)

	seq, err = a.Submit(batchOf("expiry", "delete"))
	require.NoError(t, err)
	require.NoError(t, a.AwaitApplied(seq))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.Equal(t, 1, a.WaitFollowers(ctx, a.Log().LastSeq(), 1), "the follower never got the record")
}
