package commitlog

import (
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// fileSize returns the size of path on fs.
func fileSize(t *testing.T, fs vfs.FS, path string) int64 {
	st, err := fs.Stat(path)
	require.NoError(t, err)
	return st.Size()
}

// TestFailedWriteIsUndoneAndRetried: a write that fails on a full disk
// (writing part of its buffer first) leaves the segment as it was before
// it, keeps the records buffered, refuses new records while the disk stays
// full, and writes them once space is back, without a reopen. A record
// refused meanwhile never appears.
func TestFailedWriteIsUndoneAndRetried(t *testing.T) {
	for seed := range uint64(8) {
		mem := vfs.NewMem()
		full := vfs.NewDiskFull()
		efs := vfs.NewErrorFS(mem, full)
		efs.SetShortWrites(rand.New(rand.NewPCG(seed, 1)))
		l := openMem(t, efs, 1<<20)
		require.NoError(t, l.BeginEpoch(1))
		appendN(t, l, 5) // synced
		appendBatches(t, l, 3, 0)
		seg := l.segs[0].path
		before := fileSize(t, mem, seg)

		full.Fill()
		err := l.Sync(8)
		require.ErrorIs(t, err, ErrWriteFailed)
		require.ErrorIs(t, err, syscall.ENOSPC)
		require.ErrorIs(t, l.Err(), ErrWriteFailed)
		require.Equal(t, before, fileSize(t, mem, seg), "seed %d: the partial write is cut off", seed)
		require.Equal(t, uint64(5), l.DurableSeq())
		require.Equal(t, uint64(8), l.LastSeq(), "the failed records stay buffered")
		_, err = l.Append(batch(t, 1000))
		require.ErrorIs(t, err, syscall.ENOSPC, "no new record while the buffered ones cannot be written")
		require.Equal(t, uint64(8), l.LastSeq(), "the refused record took no seq")
		require.ErrorIs(t, l.FlushTo(8), ErrWriteFailed)
		require.ErrorIs(t, l.Sync(8), ErrWriteFailed, "retrying on a full disk fails again")
		require.Equal(t, before, fileSize(t, mem, seg))
		require.Positive(t, full.Failed())

		full.Free()
		require.NoError(t, l.Sync(8), "the node carries on once space is back")
		require.NoError(t, l.Err())
		appendN(t, l, 2)
		require.Equal(t, uint64(10), l.LastSeq())
		readRange(t, l, 1, 10)
		require.NoError(t, l.Close())

		l = openMem(t, mem, 1<<20)
		require.Equal(t, uint64(10), l.LastSeq())
		readRange(t, l, 1, 10) // seqs 9 and 10 are batch(9), batch(10), not the refused batch(1000)
		require.NoError(t, l.Close())
	}
}

// TestFailedAppendFlushTakesBackTheRecord: an Append whose own record
// filled the buffer, and whose write then failed, returns the error and is
// taken back: its seq is free, and the record never reaches the file, while
// the records buffered before it are written by the retry.
func TestFailedAppendFlushTakesBackTheRecord(t *testing.T) {
	mem := vfs.NewMem()
	full := vfs.NewDiskFull()
	l := openMem(t, vfs.NewErrorFS(mem, full), 64<<20)
	require.NoError(t, l.BeginEpoch(1))
	appendBatches(t, l, 2, 0) // buffered, not written

	full.Fill()
	big := make([]byte, flushSize) // one record past the flush threshold
	for i := range big {
		big[i] = byte(i)
	}
	_, err := l.Append(big)
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.Equal(t, uint64(2), l.LastSeq())

	full.Free()
	seq, err := l.Append(batch(t, 3))
	require.NoError(t, err)
	require.Equal(t, uint64(3), seq, "the failed record's seq is taken by the next")
	require.NoError(t, l.Sync(3))
	require.NoError(t, l.Close())
	l = openMem(t, mem, 64<<20)
	defer l.Close()
	require.Equal(t, uint64(3), l.LastSeq())
	readRange(t, l, 1, 3)
}

// TestFailedRollLeavesNoSegment: when the disk is full as a segment is
// sealed, the new segment is removed (a stray one would claim records the
// old segment then takes), the append fails, and the next append after
// space is back rolls.
func TestFailedRollLeavesNoSegment(t *testing.T) {
	mem := vfs.NewMem()
	full := vfs.NewDiskFull()
	l := openMem(t, vfs.NewErrorFS(mem, full), 512)
	require.NoError(t, l.BeginEpoch(1))
	for len(l.segs) == 1 {
		appendN(t, l, 1)
	}
	// Fill the new active segment to just past its size, then fill the disk.
	for l.segs[len(l.segs)-1].size < 512 {
		appendN(t, l, 1)
	}
	segs := len(l.segs)
	last := l.LastSeq()

	full.Fill()
	_, err := l.Append(batch(t, last+1))
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.ErrorIs(t, l.Err(), ErrWriteFailed)
	require.Equal(t, last, l.LastSeq())
	names, err := mem.List("log")
	require.NoError(t, err)
	require.Len(t, names, segs+1, "the segments and EPOCHS only: %v", names)

	// Records appended to the old segment while the roll fails are fine.
	full.Free()
	appendN(t, l, 3)
	require.NoError(t, l.Err())
	require.Len(t, l.segs, segs+1)
	require.NoError(t, l.Close())
	l = openMem(t, mem, 512)
	defer l.Close()
	readRange(t, l, 1, last+3)
}

// TestFailedFsyncIsSticky: a failed fsync fails the log for good, even once
// the disk works again: the kernel may have dropped the pages it failed to
// write (fsyncgate), so no later fsync can vouch for them. Only a reopen,
// which reads what the disk holds, recovers.
func TestFailedFsyncIsSticky(t *testing.T) {
	mem := vfs.NewMem()
	tog := vfs.NewToggle(vfs.OpSync)
	l := openMem(t, vfs.NewErrorFS(mem, tog), 1<<20)
	require.NoError(t, l.BeginEpoch(1))
	appendN(t, l, 3)
	appendBatches(t, l, 2, 0)

	tog.On()
	require.ErrorIs(t, l.Sync(5), ErrFailed)
	tog.Off()
	require.ErrorIs(t, l.Sync(5), ErrFailed, "sticky")
	require.ErrorIs(t, l.Err(), ErrFailed)
	_, err := l.Append(batch(t, 6))
	require.ErrorIs(t, err, ErrFailed)
	require.NoError(t, l.FlushTo(3), "records written before the failure stay written")
	require.Equal(t, uint64(3), l.DurableSeq())
	l.Close()

	l = openMem(t, mem, 1<<20)
	defer l.Close()
	require.GreaterOrEqual(t, l.LastSeq(), uint64(3))
	readRange(t, l, 1, l.LastSeq())
}

// TestFailedWriteUncuttableIsSticky: a failed write whose partial bytes
// cannot be cut off leaves a segment whose end is unknown: the log fails
// for good.
func TestFailedWriteUncuttableIsSticky(t *testing.T) {
	mem := vfs.NewMem()
	full := vfs.NewDiskFull()
	noTrunc := vfs.NewToggle(vfs.OpTruncate)
	efs := vfs.NewErrorFS(mem, vfs.Any(full, noTrunc))
	efs.SetShortWrites(rand.New(rand.NewPCG(1, 2)))
	l := openMem(t, efs, 1<<20)
	require.NoError(t, l.BeginEpoch(1))
	appendN(t, l, 2)
	for range 50 {
		appendBatches(t, l, 1, 0) // a large enough buffer that the prefix is not empty
	}
	full.Fill()
	noTrunc.On()
	err := l.Sync(l.LastSeq())
	require.ErrorIs(t, err, ErrFailed)
	full.Free()
	noTrunc.Off()
	require.ErrorIs(t, l.Sync(l.LastSeq()), ErrFailed)
	l.Close()
	l = openMem(t, mem, 1<<20)
	defer l.Close()
	readRange(t, l, 1, 2)
}

// TestPowerLossAfterFailedWrite: a power loss after a failed and retried
// write keeps every synced record (what the cut removed was never synced).
func TestPowerLossAfterFailedWrite(t *testing.T) {
	for seed := range uint64(16) {
		mem := vfs.NewMem()
		require.NoError(t, mem.MkdirAllSynced("log"))
		full := vfs.NewDiskFull()
		efs := vfs.NewErrorFS(mem, full)
		rng := rand.New(rand.NewPCG(seed, 3))
		efs.SetShortWrites(rng)
		l := openMem(t, efs, 2<<10)
		require.NoError(t, l.BeginEpoch(1))
		synced := uint64(0)
		for i := range 40 {
			if i%5 == 2 {
				full.Fill()
			}
			if i%5 == 4 {
				full.Free()
			}
			if _, err := l.Append(batch(t, l.LastSeq()+1)); err != nil {
				require.ErrorIs(t, err, syscall.ENOSPC)
				continue
			}
			if err := l.Sync(l.LastSeq()); err == nil {
				synced = l.LastSeq()
			} else {
				require.ErrorIs(t, err, ErrWriteFailed)
			}
		}
		crashed := mem.CrashClone(vfs.CrashOptions{Rand: rng, Data: vfs.CorruptUnsyncedData, Entries: vfs.KeepEntryPrefix})
		l2 := openMem(t, crashed, 2<<10)
		require.GreaterOrEqual(t, l2.LastSeq(), synced, "seed %d", seed)
		readRange(t, l2, 1, l2.LastSeq())
		require.NoError(t, l2.Close())
	}
}
