package bitcask

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv/vfs"
)

// A rotation that fsyncs the active file while a round's fsync of it is in
// flight must not move the synced watermark: if the round's fsync fails,
// the rotation's succeeded only because the error was reported once, to the
// round, and a syncing writer would have been answered from it.
func TestRotateDuringFailingRoundMovesNoWatermark(t *testing.T) {
	g := vfs.NewSyncGate(dataSuffix)
	db := openMem(t, vfs.NewErrorFS(newMem(t), g), Options{MaxFileSize: minFileSize})
	t.Cleanup(func() { _ = db.Close() }) // failed: Close reports it
	t.Cleanup(func() {                   // first: a failed check must not leave the round held and Close waiting
		g.TryRelease()
	})
	require.NoError(t, db.Set([]byte("a"), []byte("v"), nil))
	db.wmu.Lock()
	first := db.pos
	db.wmu.Unlock()
	require.Less(t, db.synced.Load(), first)
	g.Arm()

	roundErr := make(chan error, 1)
	go func() { roundErr <- db.syncTo(first) }()
	<-g.Entered() // the round's fsync of the active file is in flight
	rotations := db.stats.rotations.Load()
	for i := 0; db.stats.rotations.Load() == rotations; i++ {
		require.NoError(t, db.Set(fmt.Appendf(nil, "k%d", i), make([]byte, 200), nil))
	}
	require.Less(t, db.synced.Load(), first, "a rotation during a round in flight moved the synced watermark before the round's outcome")

	g.Release() // the round's fsync fails
	select {
	case err := <-roundErr:
		require.Error(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the round never returned")
	}
	require.Less(t, db.synced.Load(), first)
}
