package bitcask

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv/vfs"
)

// syncGate holds each fsync of a data file, once armed, until the test
// releases it, after sending on entered.
type syncGate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *syncGate) MaybeError(op vfs.Op) error {
	if op.Kind != vfs.OpSync || !strings.HasSuffix(op.Path, dataSuffix) {
		return nil
	}
	if g.armed.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
	return nil
}

// TestSyncCoveredWaiterSkipsTheNextFsync: a syncing writer whose records an
// in-flight fsync covers returns when that fsync does, even if another
// writer starts the next fsync meanwhile: waiters are woken together, not
// handed a mutex one by one behind a later fsync.
func TestSyncCoveredWaiterSkipsTheNextFsync(t *testing.T) {
	g := &syncGate{entered: make(chan struct{}), release: make(chan struct{})}
	mem := newMem(t)
	db := openMem(t, vfs.NewErrorFS(mem, g), Options{})
	t.Cleanup(func() { db.Close() })
	posAfter := func(key string) uint64 {
		require.NoError(t, db.Set([]byte(key), []byte("v"), nil))
		db.wmu.Lock()
		defer db.wmu.Unlock()
		return db.pos
	}
	first := posAfter("a")
	waiting := make(chan struct{}, 2)
	db.group.OnWait = func() { waiting <- struct{}{} }
	g.armed.Store(true)

	done := make(chan string, 3)
	sync := func(name string, pos uint64) {
		go func() {
			require.NoError(t, db.syncTo(pos))
			done <- name
		}()
	}
	sync("a", first)
	<-g.entered // fsync 1, covering a, is in flight
	second := posAfter("c")
	sync("c", second) // needs the next fsync
	sync("b", first)  // covered by fsync 1
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
			t.Fatalf("only %v returned while fsync 2 was held; b's records were durable after fsync 1", got)
		}
	}
	require.Equal(t, map[string]bool{"a": true, "b": true}, got)
	g.armed.Store(false) // Close's fsync goes through
	g.release <- struct{}{}
	require.Equal(t, "c", <-done)
	require.Equal(t, second, db.synced.Load())
	require.Equal(t, uint64(2), db.stats.syncs.Load())
}
