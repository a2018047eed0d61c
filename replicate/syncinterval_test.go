package replicate

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/vfs"
	"github.com/stretchr/testify/require"
)

// TestSyncIntervalAcksBeforeFsync: with SyncInterval, a write is
// acknowledged and readable on the leader once it is written to the
// operating system, while its fsync is still to come; followers receive it
// only once the background syncer has made it durable; a machine crash
// before that sync loses it, and the node comes back consistent.
func TestSyncIntervalAcksBeforeFsync(t *testing.T) {
	var hold atomic.Bool
	gate := make(chan struct{})
	blocked := make(chan struct{}, 1)
	inj := vfs.InjectorFunc(func(op vfs.Op) error {
		if op.Kind == vfs.OpSync && strings.HasSuffix(op.Path, ".log") && hold.Load() {
			select {
			case blocked <- struct{}{}:
			default:
			}
			<-gate
		}
		return nil
	})
	c := newCluster(t, nil)
	mem := vfs.NewMem()
	a := c.start("a", "", func(cfg *Config) {
		cfg.FS = vfs.NewErrorFS(mem, inj)
		cfg.SyncInterval = time.Hour // only Await's kicks start a sync
	})
	b := c.start("b", "a")
	last := write(t, a, 0, 50, 2)
	waitApplied(t, last, b)

	hold.Store(true)
	var batch logkv.Batch
	batch.Set([]byte("early"), []byte("acked before its fsync"))
	seq, err := a.Write(&batch) // returns although the fsync cannot finish
	require.NoError(t, err)
	<-blocked // the background syncer is inside the fsync
	v, err := a.Engine().Get([]byte("early"))
	require.NoError(t, err, "an acknowledged write is readable on the leader")
	require.Equal(t, "acked before its fsync", string(v))
	require.Less(t, a.log.DurableSeq(), seq)
	require.Less(t, b.LastSeq(), seq, "followers get durable records only")

	crashed := mem.CrashClone(vfs.CrashOptions{}) // the machine dies now
	hold.Store(false)
	close(gate)
	waitApplied(t, seq, b)
	v, err = b.Engine().Get([]byte("early"))
	require.NoError(t, err)
	require.Equal(t, "acked before its fsync", string(v))

	// The crash image: the write is gone, everything synced before it is not.
	c.stop("b")
	c.nodes["a"].Close()
	delete(c.nodes, "a")
	c.fs["a"] = crashed
	a = c.start("a", "")
	require.Equal(t, last, a.LastSeq())
	_, err = a.Engine().Get([]byte("early"))
	require.ErrorIs(t, err, logkv.ErrNotFound)
}

// TestSyncIntervalSyncsInTheBackground: without any kick, the ticker alone
// makes flushed writes durable within SyncInterval.
func TestSyncIntervalSyncsInTheBackground(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "", func(cfg *Config) { cfg.SyncInterval = 5 * time.Millisecond })
	b := c.start("b", "a")
	seq, err := a.Submit(batchOf("k", "v"))
	require.NoError(t, err)
	require.NoError(t, a.log.Flush()) // written, but nothing kicked the syncer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.WaitApplied(ctx, seq), "the ticker synced it, and the follower got it")
	require.GreaterOrEqual(t, a.log.DurableSeq(), seq)
	require.NoError(t, a.Await(seq))
	requireConverged(t, a, b)
}

func batchOf(k, v string) *logkv.Batch {
	var b logkv.Batch
	b.Set([]byte(k), []byte(v))
	return &b
}
