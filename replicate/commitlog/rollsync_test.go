package commitlog

import (
	"testing"
	"time"

	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// A roll that fsyncs the active segment while a group-commit round's fsync
// of the same file is in flight must not move the durable watermark: if the
// round's fsync fails, the roll's succeeded only because the error was
// reported once, to the round. A Sync arriving meanwhile answered nil from
// the watermark the roll set, for records that were not durable.
func TestRollDuringFailingRoundMovesNoWatermark(t *testing.T) {
	g := vfs.NewSyncGate(".log")
	l := openMem(t, vfs.NewErrorFS(vfs.NewMem(), g), 4<<10)
	t.Cleanup(func() { _ = l.Close() }) // failed: Close reports it
	t.Cleanup(func() {                  // first (cleanups run last in, first out): a failed check must not leave the round held and Close waiting for it
		g.TryRelease()
	})
	require.NoError(t, l.BeginEpoch(1))
	appendBatches(t, l, 1, 0)
	first := l.LastSeq()
	before := l.DurableSeq()
	require.Less(t, before, first)
	g.Arm()

	roundErr := make(chan error, 1)
	go func() { roundErr <- l.Sync(first) }()
	<-g.Entered() // the round's fsync of segment 1 is in flight
	segments := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.segs)
	}
	for segments() == 1 {
		appendBatches(t, l, 1, 0) // until one rolls (its fsync succeeds)
	}
	require.Less(t, l.DurableSeq(), first, "a roll during a round in flight moved the durable watermark before the round's outcome")

	g.Release() // the round's fsync fails
	select {
	case err := <-roundErr:
		require.ErrorIs(t, err, ErrFailed)
	case <-time.After(10 * time.Second):
		t.Fatal("the round never returned")
	}
	require.Error(t, l.Sync(first), "the log failed: no later Sync may succeed")
	require.Less(t, l.DurableSeq(), first)
}
