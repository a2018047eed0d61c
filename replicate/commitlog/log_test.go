package commitlog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

func batch(t testing.TB, i uint64) []byte {
	var b logkv.Batch
	b.Set(fmt.Appendf(nil, "key%06d", i), fmt.Appendf(nil, "value%d-%s", i, make([]byte, i%50)))
	if i%7 == 0 {
		b.Delete(fmt.Appendf(nil, "key%06d", i/2))
	}
	return append([]byte(nil), b.Repr()...)
}

func openMem(t testing.TB, fs vfs.FS, segSize int64) *Log {
	l, err := Open("log", &Options{FS: fs, SegmentSize: segSize})
	require.NoError(t, err)
	return l
}

func appendN(t testing.TB, l *Log, n int) {
	for range n {
		last := l.LastSeq()
		seq, err := l.Append(batch(t, last+1))
		require.NoError(t, err)
		require.Equal(t, last+1, seq)
	}
	require.NoError(t, l.Sync(l.LastSeq()))
}

// readRange reads records [from, to] and checks they are the expected ones.
func readRange(t testing.TB, l *Log, from, to uint64) {
	r, err := l.NewReader(from)
	require.NoError(t, err)
	defer r.Close()
	for seq := from; seq <= to; seq++ {
		rec, err := r.Next(context.Background())
		require.NoError(t, err)
		require.Equal(t, seq, rec.Seq)
		require.Equal(t, batch(t, seq), rec.Batch, "seq %d", seq)
	}
}

func TestAppendReadReopen(t *testing.T) {
	fs := vfs.NewMem()
	l := openMem(t, fs, 4<<10)
	require.NoError(t, l.BeginEpoch(1))
	appendN(t, l, 500)
	require.Greater(t, len(l.segs), 3, "small segments roll")
	readRange(t, l, 1, 500)
	readRange(t, l, 237, 500)
	readRange(t, l, 500, 500)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "close twice")
	_, err := l.Append(batch(t, 1))
	require.ErrorIs(t, err, logkv.ErrClosed)

	l = openMem(t, fs, 4<<10)
	defer l.Close()
	require.Equal(t, uint64(500), l.LastSeq())
	require.Equal(t, uint64(500), l.DurableSeq())
	require.Equal(t, uint64(1), l.FirstSeq())
	require.Equal(t, []EpochStart{{1, 1}}, l.History())
	readRange(t, l, 1, 500)
	appendN(t, l, 10)
	readRange(t, l, 495, 510)
}

func TestAppendNeedsEpoch(t *testing.T) {
	l := openMem(t, vfs.NewMem(), 0)
	defer l.Close()
	_, err := l.Append(batch(t, 1))
	require.ErrorIs(t, err, ErrNoEpoch)
}

func TestReaderFollowsTail(t *testing.T) {
	l := openMem(t, vfs.NewMem(), 2<<10)
	defer l.Close()
	require.NoError(t, l.BeginEpoch(1))
	r, err := l.NewReader(1)
	require.NoError(t, err)
	defer r.Close()
	got := make(chan uint64)
	go func() {
		defer close(got)
		for {
			rec, err := r.Next(context.Background())
			if err != nil {
				return
			}
			got <- rec.Seq
		}
	}()
	for i := uint64(1); i <= 200; i++ {
		_, err := l.Append(batch(t, i))
		require.NoError(t, err)
		if i%3 == 0 {
			require.NoError(t, l.Sync(i))
			for want := i - 2; want <= i; want++ {
				require.Equal(t, want, <-got)
			}
		}
	}
	require.NoError(t, l.Close())
	_, ok := <-got
	require.False(t, ok, "reader ends when the log closes")
	_, err = r.Next(context.Background())
	require.ErrorIs(t, err, logkv.ErrClosed)
}

func TestReaderSeesOnlyDurable(t *testing.T) {
	l := openMem(t, vfs.NewMem(), 0)
	defer l.Close()
	require.NoError(t, l.BeginEpoch(1))
	appendN(t, l, 3)
	_, err := l.Append(batch(t, 4))
	require.NoError(t, err)
	r, err := l.NewReader(3)
	require.NoError(t, err)
	defer r.Close()
	rec, err := r.Next(context.Background())
	require.NoError(t, err)
	require.Equal(t, uint64(3), rec.Seq)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = r.Next(ctx)
	require.ErrorIs(t, err, context.Canceled, "seq 4 is not durable yet")
	require.NoError(t, l.Sync(4))
	rec, err = r.Next(context.Background())
	require.NoError(t, err)
	require.Equal(t, uint64(4), rec.Seq)
}

func TestGroupCommitConcurrent(t *testing.T) {
	l := openMem(t, vfs.NewMem(), 8<<10)
	defer l.Close()
	require.NoError(t, l.BeginEpoch(1))
	const writers, each = 8, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				var b logkv.Batch
				b.Set(fmt.Appendf(nil, "w%d-%d", w, i), []byte("v"))
				seq, err := l.Append(b.Repr())
				require.NoError(t, err)
				require.NoError(t, l.Sync(seq))
				require.GreaterOrEqual(t, l.DurableSeq(), seq)
			}
		})
	}
	wg.Wait()
	require.Equal(t, uint64(writers*each), l.DurableSeq())
	r, err := l.NewReader(1)
	require.NoError(t, err)
	defer r.Close()
	seen := map[string]bool{}
	for seq := uint64(1); seq <= writers*each; seq++ {
		rec, err := r.Next(context.Background())
		require.NoError(t, err)
		require.Equal(t, seq, rec.Seq)
		b, err := logkv.DecodeBatch(rec.Batch)
		require.NoError(t, err)
		rd := b.Reader()
		_, k, _, _ := rd.Next()
		seen[string(k)] = true
	}
	require.Len(t, seen, writers*each)
}

func TestTrimBefore(t *testing.T) {
	l := openMem(t, vfs.NewMem(), 2<<10)
	defer l.Close()
	require.NoError(t, l.BeginEpoch(1))
	appendN(t, l, 300)
	old, err := l.NewReader(1)
	require.NoError(t, err)
	defer old.Close()
	_, err = old.Next(context.Background())
	require.NoError(t, err)

	size := l.Size()
	require.NoError(t, l.TrimBefore(150))
	first := l.FirstSeq()
	require.LessOrEqual(t, first, uint64(150))
	require.Greater(t, first, uint64(1))
	require.Less(t, l.Size(), size)
	_, err = l.NewReader(first - 1)
	require.ErrorIs(t, err, ErrTrimmed)
	readRange(t, l, first, 300)

	// The reader that was in a removed segment finishes it, then finds the
	// next one removed (unless it was kept).
	var rerr error
	for range 300 {
		if _, rerr = old.Next(context.Background()); rerr != nil {
			break
		}
		if old.NextSeq() >= first {
			break
		}
	}
	if rerr != nil {
		require.ErrorIs(t, rerr, ErrTrimmed)
	}

	// Trimming everything keeps the active segment.
	require.NoError(t, l.TrimBefore(1000))
	require.Equal(t, uint64(300), l.LastSeq())
	require.NoError(t, l.Close())
	l = openMem(t, l.fs, 2<<10)
	defer l.Close()
	require.Equal(t, uint64(300), l.LastSeq())
	readRange(t, l, l.FirstSeq(), 300)
}

func TestTruncateAfter(t *testing.T) {
	for _, cut := range []uint64{0, 1, 57, 149, 150, 299, 300} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			fs := vfs.NewMem()
			l := openMem(t, fs, 2<<10)
			require.NoError(t, l.BeginEpoch(1))
			appendN(t, l, 150)
			require.NoError(t, l.BeginEpoch(2))
			appendN(t, l, 150)
			require.NoError(t, l.BeginEpoch(3))
			r, err := l.NewReader(1)
			require.NoError(t, err)
			defer r.Close()

			require.NoError(t, l.TruncateAfter(cut))
			require.Equal(t, cut, l.LastSeq())
			if cut < 300 {
				_, err = r.Next(context.Background())
				require.ErrorIs(t, err, ErrTruncated)
			}
			want := []EpochStart{{1, 1}, {2, 151}, {3, 301}}
			switch {
			case cut < 150:
				want = want[:1]
			case cut < 300:
				want = want[:2]
			}
			require.Equal(t, want, l.History())
			readRange(t, l, 1, cut)
			require.NoError(t, l.Close())

			l = openMem(t, fs, 2<<10)
			defer l.Close()
			require.Equal(t, cut, l.LastSeq())
			require.Equal(t, want, l.History())
			require.NoError(t, l.AppendRecord(Record{Seq: cut + 1, Epoch: 9, Batch: batch(t, cut+1)}))
			require.NoError(t, l.Sync(cut+1))
			readRange(t, l, 1, cut+1)
			require.Equal(t, EpochStart{9, cut + 1}, l.History()[len(l.History())-1])
		})
	}
}

func TestReset(t *testing.T) {
	fs := vfs.NewMem()
	l := openMem(t, fs, 2<<10)
	require.NoError(t, l.BeginEpoch(1))
	appendN(t, l, 100)
	h := []EpochStart{{1, 1}, {4, 500}}
	require.NoError(t, l.Reset(1001, h))
	require.Equal(t, uint64(1000), l.LastSeq())
	require.Equal(t, uint64(1001), l.FirstSeq())
	_, err := l.NewReader(1000)
	require.ErrorIs(t, err, ErrTrimmed)
	require.NoError(t, l.AppendRecord(Record{Seq: 1001, Epoch: 4, Batch: batch(t, 1001)}))
	require.NoError(t, l.Close())
	l = openMem(t, fs, 2<<10)
	defer l.Close()
	require.Equal(t, uint64(1001), l.LastSeq())
	require.Equal(t, h, l.History())
	readRange(t, l, 1001, 1001)
	names, err := fs.List("log")
	require.NoError(t, err)
	require.Equal(t, []string{"00000000000003e9.log", "EPOCHS"}, names)
}

func TestAppendRecordOrder(t *testing.T) {
	l := openMem(t, vfs.NewMem(), 0)
	defer l.Close()
	require.ErrorIs(t, l.AppendRecord(Record{Seq: 2, Epoch: 1, Batch: batch(t, 2)}), ErrOutOfOrder)
	require.NoError(t, l.AppendRecord(Record{Seq: 1, Epoch: 3, Batch: batch(t, 1)}))
	require.ErrorIs(t, l.AppendRecord(Record{Seq: 2, Epoch: 2, Batch: batch(t, 2)}), ErrOutOfOrder)
	require.ErrorIs(t, l.AppendRecord(Record{Seq: 2, Epoch: 3}), logkv.ErrBatchTooLarge)
	require.NoError(t, l.AppendRecord(Record{Seq: 2, Epoch: 5, Batch: batch(t, 2)}))
	require.Equal(t, []EpochStart{{3, 1}, {5, 2}}, l.History())
	require.ErrorIs(t, l.BeginEpoch(5), ErrOutOfOrder)
}

func TestCorruptSealedSegment(t *testing.T) {
	fs := vfs.NewMem()
	l := openMem(t, fs, 2<<10)
	require.NoError(t, l.BeginEpoch(1))
	appendN(t, l, 100)
	first := l.segs[0].path
	require.NoError(t, l.Close())
	f, err := fs.OpenReadWrite(first)
	require.NoError(t, err)
	st, _ := f.Stat()
	buf := make([]byte, st.Size())
	_, err = f.ReadAt(buf, 0)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(0))
	buf[40] ^= 0xff
	_, err = f.Write(buf)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = Open("log", &Options{FS: fs, SegmentSize: 2 << 10})
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	require.Contains(t, err.Error(), filepath.Base(first))
}

func TestOpenOnDisk(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, &Options{SegmentSize: 16 << 10})
	require.NoError(t, err)
	require.NoError(t, l.BeginEpoch(1))
	appendN(t, l, 1000)
	require.NoError(t, l.Close())
	l, err = Open(dir, nil)
	require.NoError(t, err)
	defer l.Close()
	readRange(t, l, 1, 1000)
	readRange(t, l, 777, 1000)
}

func TestForkPoint(t *testing.T) {
	h := func(pairs ...uint64) []EpochStart {
		var out []EpochStart
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, EpochStart{pairs[i], pairs[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		a        []EpochStart
		aLast    uint64
		b        []EpochStart
		bLast    uint64
		want     uint64
		describe string
	}{
		{h(1, 1), 100, h(1, 1), 50, 50, "same epoch: the shorter"},
		{h(1, 1), 0, h(1, 1), 50, 0, "empty log"},
		{nil, 0, h(1, 1, 2, 30), 50, 0, "fresh follower"},
		{h(1, 1), 100, h(1, 1, 2, 91), 120, 90, "old leader past the fork"},
		{h(1, 1), 80, h(1, 1, 2, 91), 120, 80, "follower behind the fork"},
		{h(1, 1, 2, 91), 95, h(1, 1, 2, 91, 3, 94), 120, 93, "two promotions"},
		{h(1, 1, 3, 91), 95, h(1, 1, 2, 91), 120, 90, "rival epochs"},
		{h(1, 1, 2, 51, 3, 51), 60, h(1, 1, 3, 51), 70, 60, "empty epoch"},
		{h(2, 1), 10, h(1, 1), 10, 0, "no common prefix"},
	} {
		t.Run(tc.describe, func(t *testing.T) {
			require.Equal(t, tc.want, ForkPoint(tc.a, tc.aLast, tc.b, tc.bLast))
			require.Equal(t, tc.want, ForkPoint(tc.b, tc.bLast, tc.a, tc.aLast))
		})
	}
}

func TestErrorsAreSentinels(t *testing.T) {
	require.True(t, errors.Is(fmt.Errorf("x: %w", ErrTrimmed), ErrTrimmed))
}

// TestFlushReachesTheOS: Flush hands the appended records to the operating
// system, so that they survive the process dying, but does not make them
// durable: a machine crash still loses them, and readers do not see them.
func TestFlushReachesTheOS(t *testing.T) {
	fs := vfs.NewMem()
	l := openMem(t, fs, 1<<20)
	defer l.Close()
	require.NoError(t, l.BeginEpoch(1))
	appendN(t, l, 10)
	for range 5 {
		_, err := l.Append(batch(t, l.LastSeq()+1))
		require.NoError(t, err)
	}
	// What a process crash keeps is what the files hold now: the log opened
	// again on the same files (the first one still open, as a dead process
	// leaves them).
	afterProcessCrash := func() uint64 {
		l2 := openMem(t, fs, 1<<20)
		defer l2.Close()
		return l2.LastSeq()
	}
	require.Equal(t, uint64(10), afterProcessCrash(), "appends sit in the process until a flush")

	require.NoError(t, l.Flush())
	require.Equal(t, uint64(15), l.LastSeq())
	require.Equal(t, uint64(10), l.DurableSeq(), "Flush does not sync")
	crashed := fs.CrashClone(vfs.CrashOptions{})
	require.Equal(t, uint64(15), afterProcessCrash(), "flushed records survive the process")
	l3 := openMem(t, crashed, 1<<20)
	require.Equal(t, uint64(10), l3.LastSeq(), "a machine crash loses what was only flushed")
	require.NoError(t, l3.Close())

	require.NoError(t, l.Close())
	require.ErrorIs(t, l.Flush(), logkv.ErrClosed)
}
