package node

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// engineSync: a caller returns only after a sync that began after it
// arrived, concurrent callers share syncs, and a failed sync fails every
// later call.
func TestEngineSyncGroupsAndSticks(t *testing.T) {
	var g engineSync
	var writes, covered atomic.Int64 // writes made; writes the last sync began after
	var fail atomic.Bool
	boom := errors.New("EIO")
	var syncs atomic.Int64
	g.init(func() error {
		syncs.Add(1)
		w := writes.Load()
		if fail.Load() {
			return boom
		}
		covered.Store(w)
		return nil
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				w := writes.Add(1)
				if err := g.sync(); err != nil {
					t.Error(err)
					return
				}
				if c := covered.Load(); c < w {
					t.Errorf("sync returned covering %d writes, before write %d", c, w)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d syncs for 1600 calls", syncs.Load())
	require.LessOrEqual(t, syncs.Load(), int64(1600))
	require.NoError(t, g.failed())

	fail.Store(true)
	require.ErrorIs(t, g.sync(), boom)
	fail.Store(false)
	require.ErrorIs(t, g.sync(), boom, "a sync after a failed one proves nothing")
	require.ErrorIs(t, g.failed(), boom)
}
