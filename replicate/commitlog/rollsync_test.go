package commitlog

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// failOnceGate holds the first fsync of a segment file once armed, until
// released, and then fails it; every later fsync succeeds. It plays Linux,
// which reports a file's write-back error to one fsync only: a second
// fsync of the same file returns 0 though the pages were lost.
type failOnceGate struct {
	armed   atomic.Bool
	held    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *failOnceGate) MaybeError(op vfs.Op) error {
	if op.Kind != vfs.OpSync || !strings.HasSuffix(op.Path, ".log") || !g.armed.Load() || !g.held.CompareAndSwap(false, true) {
		return nil
	}
	g.entered <- struct{}{}
	<-g.release
	return vfs.ErrInjected
}

// A roll that fsyncs the active segment while a group-commit round's fsync
// of the same file is in flight must not move the durable watermark: if the
// round's fsync fails, the roll's succeeded only because the error was
// reported once, to the round. A Sync arriving meanwhile answered nil from
// the watermark the roll set, for records that were not durable.
func TestRollDuringFailingRoundMovesNoWatermark(t *testing.T) {
	g := &failOnceGate{entered: make(chan struct{}), release: make(chan struct{})}
	l := openMem(t, vfs.NewErrorFS(vfs.NewMem(), g), 4<<10)
	t.Cleanup(func() { _ = l.Close() }) // failed: Close reports it
	t.Cleanup(func() {                  // first (cleanups run last in, first out): a failed check must not leave the round held and Close waiting for it
		select {
		case g.release <- struct{}{}:
		default:
		}
	})
	require.NoError(t, l.BeginEpoch(1))
	appendBatches(t, l, 1, 0)
	first := l.LastSeq()
	before := l.DurableSeq()
	require.Less(t, before, first)
	g.armed.Store(true)

	roundErr := make(chan error, 1)
	go func() { roundErr <- l.Sync(first) }()
	<-g.entered // the round's fsync of segment 1 is in flight
	segments := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.segs)
	}
	for segments() == 1 {
		appendBatches(t, l, 1, 0) // until one rolls (its fsync succeeds)
	}
	require.Less(t, l.DurableSeq(), first, "a roll during a round in flight moved the durable watermark before the round's outcome")

	g.release <- struct{}{} // the round's fsync fails
	select {
	case err := <-roundErr:
		require.ErrorIs(t, err, ErrFailed)
	case <-time.After(10 * time.Second):
		t.Fatal("the round never returned")
	}
	require.Error(t, l.Sync(first), "the log failed: no later Sync may succeed")
	require.Less(t, l.DurableSeq(), first)
}
