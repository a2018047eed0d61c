package commitlog

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// writeCounter counts the writes to segment files made through an ErrorFS
// and, when block is set, stops the first of them until release is closed,
// after closing entered.
type writeCounter struct {
	n       atomic.Int64
	block   bool
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func newWriteCounter() *writeCounter {
	return &writeCounter{entered: make(chan struct{}), release: make(chan struct{})}
}

func (w *writeCounter) MaybeError(op vfs.Op) error {
	if op.Kind != vfs.OpWrite || !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	w.n.Add(1)
	if w.block {
		w.once.Do(func() {
			close(w.entered)
			<-w.release
		})
	}
	return nil
}

// countedLog opens a log at epoch 1 on a MemFS whose segment writes a
// writeCounter counts; the log is closed when the test ends.
func countedLog(t *testing.T, segSize int64) (*Log, *vfs.MemFS, *writeCounter) {
	mem := vfs.NewMem()
	wc := newWriteCounter()
	l := openMem(t, vfs.NewErrorFS(mem, wc), segSize)
	t.Cleanup(func() { l.Close() })
	require.NoError(t, l.BeginEpoch(1))
	return l, mem, wc
}

// lastAfterProcessCrash returns the last seq a log opened on fs finds: what
// a process crash would keep of a log still open on fs.
func lastAfterProcessCrash(t *testing.T, fs vfs.FS) uint64 {
	l := openMem(t, fs, 1<<20)
	defer l.Close()
	return l.LastSeq()
}

// appendBatches appends the records LastSeq()+1..LastSeq()+n, each with
// batch(t, seq+salt).
func appendBatches(t *testing.T, l *Log, n int, salt uint64) {
	for range n {
		_, err := l.Append(batch(t, l.LastSeq()+1+salt))
		require.NoError(t, err)
	}
}

// TestFlushToSkipsWritten: FlushTo writes what is buffered when its record is
// not yet written, and makes no system call when it is.
func TestFlushToSkipsWritten(t *testing.T) {
	l, mem, wc := countedLog(t, 1<<20)
	appendBatches(t, l, 3, 0)
	base := wc.n.Load()

	require.NoError(t, l.FlushTo(2))
	require.Equal(t, base+1, wc.n.Load(), "one write for the buffered records")
	require.Equal(t, uint64(3), lastAfterProcessCrash(t, mem), "the write took everything buffered")
	require.NoError(t, l.FlushTo(1))
	require.NoError(t, l.FlushTo(3))
	require.NoError(t, l.FlushTo(0))
	require.Equal(t, base+1, wc.n.Load(), "written records cost no write")

	appendBatches(t, l, 2, 0)
	require.NoError(t, l.FlushTo(3), "covered even with newer records buffered")
	require.Equal(t, base+1, wc.n.Load(), "a covered caller does not write others' records")
	require.Equal(t, uint64(3), lastAfterProcessCrash(t, mem))
	require.NoError(t, l.FlushTo(4))
	require.Equal(t, base+2, wc.n.Load())
	require.Equal(t, uint64(5), lastAfterProcessCrash(t, mem))
	require.NoError(t, l.FlushTo(5))
	require.Equal(t, base+2, wc.n.Load())

	require.ErrorContains(t, l.FlushTo(6), "last written is 5")
	require.Equal(t, uint64(0), l.DurableSeq(), "FlushTo does not sync")

	require.NoError(t, l.Close())
	require.NoError(t, l.FlushTo(5), "written records stay written after Close")
	_, err := l.Append(batch(t, 6))
	require.ErrorIs(t, err, logkv.ErrClosed)
	require.ErrorIs(t, l.Flush(), logkv.ErrClosed)
}

// TestFlushToConcurrent: writers appending and flushing at once lose
// nothing, and each one's records are written when its FlushTo returns.
func TestFlushToConcurrent(t *testing.T) {
	l, mem, wc := countedLog(t, 1<<30)
	const writers, each = 8, 200
	base := wc.n.Load()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				var b logkv.Batch
				b.Set([]byte("k"), make([]byte, 100))
				seq, err := l.Append(b.Repr())
				require.NoError(t, err)
				require.NoError(t, l.FlushTo(seq))
				require.GreaterOrEqual(t, l.flushedSeq.Load(), seq)
			}
		})
	}
	wg.Wait()
	require.LessOrEqual(t, wc.n.Load()-base, int64(writers*each))
	require.Equal(t, uint64(writers*each), lastAfterProcessCrash(t, mem), "every record reached the files")
	t.Logf("%d FlushTo calls, %d writes", writers*each, wc.n.Load()-base)
}

// TestFlushToGroup: callers that queue behind a writer blocked in its write
// find their records written by it, and make no write of their own.
func TestFlushToGroup(t *testing.T) {
	l, mem, wc := countedLog(t, 1<<20)
	const n = 16
	appendBatches(t, l, n, 0)
	base := wc.n.Load()
	wc.block = true

	errs := make(chan error, n)
	go func() { errs <- l.FlushTo(1) }()
	<-wc.entered // the first caller is in its write, holding the flush mutex
	for seq := uint64(2); seq <= n; seq++ {
		go func() { errs <- l.FlushTo(seq) }()
	}
	close(wc.release)
	for range n {
		require.NoError(t, <-errs)
	}
	require.Equal(t, base+1, wc.n.Load(), "one write covered every caller")
	require.Equal(t, uint64(n), lastAfterProcessCrash(t, mem))
}

// TestFlushToAfterTruncate: after TruncateAfter or Reset, the seqs of removed
// records are reused by new ones, which FlushTo must write.
func TestFlushToAfterTruncate(t *testing.T) {
	l, mem, wc := countedLog(t, 1<<20)
	appendBatches(t, l, 10, 0)
	require.NoError(t, l.FlushTo(10))

	require.NoError(t, l.TruncateAfter(5))
	appendBatches(t, l, 5, 1000) // seqs 6..10 again, with other batches
	before := wc.n.Load()
	require.NoError(t, l.FlushTo(10))
	require.Equal(t, before+1, wc.n.Load(), "the new records are written")
	l2 := openMem(t, mem, 1<<20)
	readRange(t, l2, 1, 5)
	r, err := l2.NewReader(6)
	require.NoError(t, err)
	for seq := uint64(6); seq <= 10; seq++ {
		rec, err := r.Next(t.Context())
		require.NoError(t, err)
		require.Equal(t, seq, rec.Seq)
		require.Equal(t, batch(t, seq+1000), rec.Batch, "seq %d is the new record", seq)
	}
	r.Close()
	require.NoError(t, l2.Close())

	require.NoError(t, l.Reset(4, []EpochStart{{Epoch: 2, Seq: 1}}))
	require.NoError(t, l.FlushTo(3), "records before the reset point count as written")
	appendBatches(t, l, 3, 0) // seqs 4..6
	before = wc.n.Load()
	require.NoError(t, l.FlushTo(6))
	require.Equal(t, before+1, wc.n.Load(), "the records after the reset are written")
	l3 := openMem(t, mem, 1<<20)
	defer l3.Close()
	require.Equal(t, uint64(4), l3.FirstSeq())
	require.Equal(t, uint64(6), l3.LastSeq())
	readRange(t, l3, 4, 6)
}

// TestFailedTruncateForgetsDurable: a TruncateAfter that fails part way
// leaves the log failed, and Sync does not report the records it was
// removing as durable.
func TestFailedTruncateForgetsDurable(t *testing.T) {
	tog := vfs.NewToggle(vfs.OpRemove)
	mem := vfs.NewMem()
	l := openMem(t, vfs.NewErrorFS(mem, tog), 4<<10)
	defer l.Close()
	require.NoError(t, l.BeginEpoch(1))
	appendBatches(t, l, 200, 0)
	require.NoError(t, l.Sync(200))
	names, err := mem.List("log")
	require.NoError(t, err)
	require.Greater(t, len(names), 3, "several segments, so truncating removes files")

	tog.On()
	require.ErrorIs(t, l.TruncateAfter(10), vfs.ErrInjected)
	require.LessOrEqual(t, l.DurableSeq(), uint64(10))
	require.ErrorIs(t, l.Sync(200), vfs.ErrInjected, "not durable: the log failed while removing it")
}
