package commitlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// cutCounter is a slog handler counting the torn tails recovery cuts, and
// those of them that intact (unsynced) records followed: the case the synced
// field exists for.
type cutCounter struct {
	cuts, cutsBeforeIntact atomic.Int64
}

func (c *cutCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *cutCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *cutCounter) WithGroup(string) slog.Handler            { return c }
func (c *cutCounter) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "torn tail") {
		return nil
	}
	c.cuts.Add(1)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" && strings.Contains(a.Value.String(), "valid frame follows") {
			c.cutsBeforeIntact.Add(1)
		}
		return true
	})
	return nil
}

// crashModel is what a test appended to a log: batches and epochs by seq,
// and the last seq a Sync returned for.
type crashModel struct {
	batches [][]byte // batches[seq-1]
	epochs  []uint64
	synced  uint64
}

// work appends, flushes, syncs and begins epochs at random on l, recording it
// in m. It ends with unsynced records, some of them flushed to the file.
func (m *crashModel) work(t *testing.T, rng *rand.Rand, l *Log, ops int) {
	for i := range ops {
		switch p := rng.IntN(100); {
		case p < 70 || i == ops-1:
			for range 1 + rng.IntN(8) {
				seq, err := l.Append(batch(t, uint64(len(m.batches)+1)))
				require.NoError(t, err)
				require.Equal(t, uint64(len(m.batches)+1), seq)
				m.batches = append(m.batches, batch(t, seq))
				m.epochs = append(m.epochs, l.Epoch())
			}
			if i == ops-1 {
				require.NoError(t, l.Flush())
			}
		case p < 82:
			require.NoError(t, l.Flush())
		case p < 97:
			if last := l.LastSeq(); last > 0 {
				require.NoError(t, l.Sync(last))
				m.synced = last
			}
		default:
			require.NoError(t, l.BeginEpoch(l.Epoch()+1))
		}
	}
}

// check opens the crashed log and requires what it holds to be a prefix of
// what was appended that holds every synced record, readable to its end.
func (m *crashModel) check(t *testing.T, fs vfs.FS, segSize int64, cuts *cutCounter) *Log {
	l, err := Open("log", &Options{FS: fs, SegmentSize: segSize, Logger: slog.New(cuts)})
	require.NoError(t, err, "a power loss damages only unsynced bytes: the log must open")
	last := l.LastSeq()
	require.GreaterOrEqual(t, last, m.synced, "every synced record survives")
	require.LessOrEqual(t, last, uint64(len(m.batches)), "nothing that was never appended appears")
	require.Equal(t, last, l.DurableSeq(), "what recovery keeps is durable")
	if last > 0 {
		r, err := l.NewReader(1)
		require.NoError(t, err)
		for seq := uint64(1); seq <= last; seq++ {
			rec, err := r.Next(context.Background())
			require.NoError(t, err)
			require.Equal(t, seq, rec.Seq)
			require.Equal(t, m.epochs[seq-1], rec.Epoch, "seq %d", seq)
			require.Equal(t, m.batches[seq-1], rec.Batch, "seq %d", seq)
		}
		require.NoError(t, r.Close())
	}
	if last > 0 {
		require.Equal(t, m.epochs[last-1], EpochAt(l.History(), last))
	}
	m.batches, m.epochs = m.batches[:last], m.epochs[:last]
	m.synced = last
	return l
}

// TestPowerLossKeepsSyncedPrefix crashes a log that has unsynced records in
// its files, damaging them as a power loss does (torn, zeroed, or corrupted
// in place with intact records after the damage), and requires that it
// always opens, keeps every synced record and keeps only a prefix of what was
// appended; then the recovered log goes on and survives a second crash.
func TestPowerLossKeepsSyncedPrefix(t *testing.T) {
	seeds := 200
	if testing.Short() {
		seeds = 40
	}
	modes := []struct {
		name string
		data vfs.DataLoss
	}{
		{"drop", vfs.DropUnsyncedData},
		{"torn", vfs.TornUnsyncedData},
		{"zeroed", vfs.ZeroedUnsyncedData},
		{"corrupt", vfs.CorruptUnsyncedData},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			var cuts cutCounter
			for seed := range uint64(seeds) {
				rng := rand.New(rand.NewPCG(seed, uint64(mode.data)))
				segSize := []int64{2 << 10, 16 << 10, 1 << 20}[rng.IntN(3)]
				fs := vfs.NewMem()
				require.NoError(t, fs.MkdirAllSynced("log"))
				l := openMem(t, fs, segSize)
				require.NoError(t, l.BeginEpoch(1))
				var m crashModel
				for round := range 2 {
					m.work(t, rng, l, 10+rng.IntN(40))
					entries := vfs.DropUnsyncedEntries
					if rng.IntN(2) == 0 {
						entries = vfs.KeepEntryPrefix
					}
					crashed := fs.CrashClone(vfs.CrashOptions{Rand: rng, Data: mode.data, Entries: entries})
					if t.Failed() {
						return
					}
					fs = crashed
					l2 := m.check(t, fs, segSize, &cuts)
					if t.Failed() {
						t.Logf("seed %d, round %d", seed, round)
						return
					}
					l = l2
				}
				require.NoError(t, l.Close())
			}
			t.Logf("%d seeds: %d torn tails cut, %d of them followed by intact records",
				seeds, cuts.cuts.Load(), cuts.cutsBeforeIntact.Load())
			if mode.data != vfs.DropUnsyncedData {
				require.NotZero(t, cuts.cuts.Load(), "the crashes left torn tails")
			}
			if mode.data == vfs.CorruptUnsyncedData {
				require.NotZero(t, cuts.cutsBeforeIntact.Load(), "damage followed by intact unsynced records was exercised")
			}
		})
	}
}

// frameOffsets returns the offsets of the record frames of segment path.
func frameOffsets(t *testing.T, fs vfs.FS, path string) []int64 {
	f, err := fs.Open(path)
	require.NoError(t, err)
	defer f.Close()
	st, err := f.Stat()
	require.NoError(t, err)
	rd := record.NewReader(f, path, st.Size(), maxSegmentPayload)
	var offs []int64
	for {
		off := rd.Offset()
		p, err := rd.Next()
		if err != nil {
			require.ErrorIs(t, err, io.EOF)
			return offs
		}
		if off == 0 {
			salt, _, err := checkSegmentHeader(path, p)
			require.NoError(t, err)
			rd.SetSalt(salt)
			continue
		}
		offs = append(offs, off)
	}
}

// damage flips a byte at off in file path, in place and durably.
func damage(t *testing.T, fs vfs.FS, path string, off int64) {
	f, err := fs.Open(path)
	require.NoError(t, err)
	st, err := f.Stat()
	require.NoError(t, err)
	buf := make([]byte, st.Size())
	_, err = f.ReadAt(buf, 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	buf[off] ^= 0x5a
	f, err = fs.Create(path)
	require.NoError(t, err)
	_, err = f.Write(buf)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
}

// TestDamageInSyncedBytesIsCorrupt: damage in the last segment that a later
// intact record proves was synced is corruption naming the file and the
// damaged record's offset, not a torn tail to cut (which would lose
// acknowledged records); the same damage with no later record vouching for
// it is cut as a torn tail.
func TestDamageInSyncedBytesIsCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name string
		// write appends records 1..15 (and syncs some of them).
		write   func(t *testing.T, l *Log)
		corrupt bool
	}{
		{"synced, vouched by synced records", func(t *testing.T, l *Log) {
			appendN(t, l, 10)
			appendN(t, l, 5)
		}, true},
		{"synced, vouched by flushed records", func(t *testing.T, l *Log) {
			appendN(t, l, 10)
			for range 5 {
				_, err := l.Append(batch(t, l.LastSeq()+1))
				require.NoError(t, err)
			}
		}, true},
		{"never synced", func(t *testing.T, l *Log) {
			for range 15 {
				_, err := l.Append(batch(t, l.LastSeq()+1))
				require.NoError(t, err)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			l := openMem(t, fs, 1<<20)
			require.NoError(t, l.BeginEpoch(1))
			tc.write(t, l)
			require.NoError(t, l.Flush())
			path := l.segs[0].path
			offs := frameOffsets(t, fs, path)
			require.Len(t, offs, 15)
			// The process dies (l is abandoned, its records flushed but not
			// all synced), and record 7's bytes are damaged.
			bad := offs[6]
			damage(t, fs, path, bad+record.HeaderSize+syncedFieldSize+3)
			var cuts cutCounter
			l2, err := Open("log", &Options{FS: fs, SegmentSize: 1 << 20, Logger: slog.New(&cuts)})
			if tc.corrupt {
				require.ErrorIs(t, err, logkv.ErrCorrupt)
				require.Contains(t, err.Error(), path)
				require.Contains(t, err.Error(), fmt.Sprintf("at offset %d:", bad))
				require.Contains(t, err.Error(), "were synced")
				return
			}
			require.NoError(t, err)
			defer l2.Close()
			require.Equal(t, uint64(6), l2.LastSeq())
			require.Equal(t, int64(1), cuts.cutsBeforeIntact.Load())
			readRange(t, l2, 1, 6)
			st, err := fs.Stat(path)
			require.NoError(t, err)
			require.Equal(t, bad, st.Size(), "the torn tail is cut")
		})
	}
}

// TestPowerLossDuringGroupCommit crashes a log while writers append and sync
// concurrently (records framed while an fsync is in flight carry the synced
// length from before it) and flush unsynced records to the file:
// the log opens and keeps every record whose Sync returned before the crash,
// in order.
func TestPowerLossDuringGroupCommit(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 15
	}
	var cuts cutCounter
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 99))
		mode := []vfs.DataLoss{vfs.TornUnsyncedData, vfs.ZeroedUnsyncedData, vfs.CorruptUnsyncedData}[seed%3]
		segSize := []int64{4 << 10, 1 << 20}[rng.IntN(2)]
		fs := vfs.NewMem()
		require.NoError(t, fs.MkdirAllSynced("log"))
		l := openMem(t, fs, segSize)
		require.NoError(t, l.BeginEpoch(1))

		var (
			appendMu sync.Mutex // makes each batch match its seq
			synced   atomic.Uint64
			syncs    = make(chan struct{}, 1024)
			stop     = make(chan struct{})
			wg       sync.WaitGroup
		)
		for w := range uint64(4) {
			wrng := rand.New(rand.NewPCG(seed, w))
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					appendMu.Lock()
					seq, err := l.Append(batch(t, l.LastSeq()+1))
					appendMu.Unlock()
					if err != nil {
						return
					}
					if wrng.IntN(2) == 0 {
						// Written to the file, not synced.
						if l.Flush() != nil {
							return
						}
						continue
					}
					if err := l.Sync(seq); err != nil {
						return
					}
					for {
						cur := synced.Load()
						if seq <= cur || synced.CompareAndSwap(cur, seq) {
							break
						}
					}
					select {
					case syncs <- struct{}{}:
					default:
					}
				}
			})
		}
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-syncs:
					if l.Flush() != nil {
						return
					}
				}
			}
		})
		for range 20 + rng.IntN(100) {
			<-syncs
		}
		want := synced.Load() // each of these Syncs returned before the crash
		crashed := fs.CrashClone(vfs.CrashOptions{Rand: rng, Data: mode})
		close(stop)
		wg.Wait()
		require.NoError(t, l.Close())

		l2, err := Open("log", &Options{FS: crashed, SegmentSize: segSize, Logger: slog.New(&cuts)})
		require.NoError(t, err, "seed %d", seed)
		last := l2.LastSeq()
		require.GreaterOrEqual(t, last, want, "seed %d: every synced record survives", seed)
		readRange(t, l2, 1, last)
		require.NoError(t, l2.Close())
	}
	t.Logf("%d seeds: %d torn tails cut, %d of them followed by intact records",
		seeds, cuts.cuts.Load(), cuts.cutsBeforeIntact.Load())
}
