package commitlog

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// syncGate holds each fsync of a segment file, once armed, until the test
// releases it, after sending on entered.
type syncGate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *syncGate) MaybeError(op vfs.Op) error {
	if op.Kind != vfs.OpSync || !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	if g.armed.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
	return nil
}

// A Sync whose record an in-flight fsync covers returns when that fsync
// does, even if another caller starts the next fsync meanwhile: waiters are
// woken together, not handed a mutex one by one behind a later fsync.
func TestSyncCoveredWaiterSkipsTheNextFsync(t *testing.T) {
	g := &syncGate{entered: make(chan struct{}), release: make(chan struct{})}
	l := openMem(t, vfs.NewErrorFS(vfs.NewMem(), g), 1<<20)
	t.Cleanup(func() { l.Close() })
	require.NoError(t, l.BeginEpoch(1))
	appendBatches(t, l, 1, 0)
	first := l.LastSeq()
	waiting := make(chan struct{}, 2)
	l.group.OnWait = func() { waiting <- struct{}{} }
	g.armed.Store(true)

	done := make(chan string, 3)
	sync := func(name string, seq uint64) {
		go func() {
			require.NoError(t, l.Sync(seq))
			done <- name
		}()
	}
	sync("a", first)
	<-g.entered // fsync 1, covering first, is in flight
	appendBatches(t, l, 1, 0)
	sync("c", l.LastSeq()) // needs the next fsync
	sync("b", first)       // covered by fsync 1
	<-waiting
	<-waiting               // both wait for fsync 1
	g.release <- struct{}{} // fsync 1 returns
	<-g.entered             // c's fsync 2 is in flight, and held
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case name := <-done:
			got[name] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("only %v returned while fsync 2 was held; b's record was durable after fsync 1", got)
		}
	}
	require.Equal(t, map[string]bool{"a": true, "b": true}, got)
	g.armed.Store(false) // Close's fsync goes through
	g.release <- struct{}{}
	require.Equal(t, "c", <-done)
	require.Equal(t, l.LastSeq(), l.DurableSeq())
}
