package replicate

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/commitlog"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// TestSyncIntervalAcksBeforeFsync: with SyncInterval, a write is
// acknowledged and readable on the leader once it is written to the
// operating system, while its fsync is still to come; followers receive it
// only once the background syncer has made it durable; a machine crash
// before that sync loses it, and the node comes back consistent.
func TestSyncIntervalAcksBeforeFsync(t *testing.T) {
	hold, blocked, release, inj := holdLogSyncs()
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
	release()
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

// holdLogSyncs returns an injector that, once hold is set, blocks every
// fsync of a commit-log segment until release; blocked receives a value when
// one is held.
func holdLogSyncs() (hold *atomic.Bool, blocked <-chan struct{}, release func(), inj vfs.Injector) {
	hold = new(atomic.Bool)
	gate := make(chan struct{})
	b := make(chan struct{}, 1)
	inj = vfs.InjectorFunc(func(op vfs.Op) error {
		if op.Kind == vfs.OpSync && strings.HasSuffix(op.Path, ".log") && hold.Load() {
			select {
			case b <- struct{}{}:
			default:
			}
			<-gate
		}
		return nil
	})
	return hold, b, func() { hold.Store(false); close(gate) }, inj
}

func batchOf(k, v string) *logkv.Batch {
	var b logkv.Batch
	b.Set([]byte(k), []byte(v))
	return &b
}

// TestFollowerAppliesBeforeItsFsync: a follower applies the leader's
// (durable) records as they arrive and syncs its own log after, so its
// applied seq may run ahead of its durable one; a crash of the follower
// before its fsync loses nothing the cluster cannot give back.
func TestFollowerAppliesBeforeItsFsync(t *testing.T) {
	hold, blocked, release, inj := holdLogSyncs()
	c := newCluster(t, nil)
	a := c.start("a", "")
	mem := vfs.NewMem()
	c.fs["b"] = mem
	b := c.start("b", "a", func(cfg *Config) { cfg.FS = vfs.NewErrorFS(mem, inj) })
	requireConverged(t, a, b)

	hold.Store(true)
	last := write(t, a, 0, 200, 2)
	waitApplied(t, last, b) // although b's fsync cannot finish
	<-blocked
	require.Less(t, b.log.DurableSeq(), last)
	crashed := mem.CrashClone(vfs.CrashOptions{}) // b's machine dies now

	release()
	c.stop("b")
	c.fs["b"] = crashed
	b = c.start("b", "a")
	write(t, a, 200, 100, 2)
	requireConverged(t, a, b)
}

func TestRecordQueueBound(t *testing.T) {
	q := newRecordQueue(100)
	rec := []commitlog.Record{{Seq: 1, Epoch: 1}}
	require.NoError(t, q.push(rec, 150)) // over the bound after, not before
	pushed := make(chan error, 1)
	go func() { pushed <- q.push(rec, 10) }()
	select {
	case err := <-pushed:
		t.Fatalf("push returned %v while the queue was over its bound", err)
	default:
	}
	recs, n := q.take()
	require.Len(t, recs, 1)
	require.Equal(t, 150, n)
	q.freed()
	require.NoError(t, <-pushed)
	require.NoError(t, q.push(rec, 200))
	go func() { pushed <- q.push(rec, 1) }()
	q.close()
	require.Error(t, <-pushed, "a closed queue fails a waiting push")
}

// TestFollowerSyncDelay: a follower waits FollowerSyncDelay before each
// fsync, so one fsync covers every frame that arrives meanwhile: at most one
// per delay, however many frames come, and everything still becomes durable.
func TestFollowerSyncDelay(t *testing.T) {
	const delay = 50 * time.Millisecond
	var syncs atomic.Int64
	inj := vfs.InjectorFunc(func(op vfs.Op) error {
		if op.Kind == vfs.OpSync && strings.HasSuffix(op.Path, ".log") {
			syncs.Add(1)
		}
		return nil
	})
	c := newCluster(t, nil)
	// The leader's value is the one its followers use (it sends it in its
	// Welcome); set on the follower alone, the leader's 20ms Async default
	// applied and the bound below failed whenever writes came fast.
	a := c.start("a", "", func(cfg *Config) { cfg.FollowerSyncDelay = delay })
	mem := vfs.NewMem()
	c.fs["b"] = mem
	b := c.start("b", "a", func(cfg *Config) {
		cfg.FS = vfs.NewErrorFS(mem, inj)
		cfg.FollowerSyncDelay = delay
	})
	requireConverged(t, a, b)
	start, before := time.Now(), syncs.Load()
	var last uint64
	for i := range 300 { // one writer: about a frame per write
		last = write(t, a, i, 1, 1)
		if i%50 == 0 {
			waitApplied(t, last, b) // frames keep coming while the follower waits
		}
	}
	require.Eventually(t, func() bool { return b.log.DurableSeq() >= last }, 30*time.Second, time.Millisecond)
	n, elapsed := syncs.Load()-before, time.Since(start)
	t.Logf("%d follower fsyncs in %v for 300 writes", n, elapsed)
	require.LessOrEqual(t, n, int64(elapsed/delay)+2, "at most one fsync per delay")
	requireConverged(t, a, b)
}
