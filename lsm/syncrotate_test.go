package lsm

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// TestSyncAfterFailedRotationClose is the rotation race of DB.Sync made
// deterministic. DB.Sync picks up the WAL segment under the commit lock and
// syncs it after releasing the lock, so a rotation may close that segment in
// between. Close writes and fsyncs what is buffered; when that fsync fails,
// the writes buffered before it are not durable, and Sync must say so. Before
// 5d5b54f Sync answered nil whenever it found its segment closed, taking the
// close for a successful sync of everything.
//
// A failed close leaves the DB holding the closed segment (the rotation
// fails before it creates the next), so a Sync after it takes the very path
// a Sync that picked the segment up before the rotation takes: syncTo on a
// closed segment whose close failed. No hook is needed.
func TestSyncAfterFailedRotationClose(t *testing.T) {
	for _, kind := range []vfs.OpKind{vfs.OpSync, vfs.OpWrite} {
		t.Run(kind.String(), func(t *testing.T) {
			walFault := vfs.NewToggle(kind)
			mem := vfs.NewMem()
			fs := vfs.NewErrorFS(mem, vfs.Filter(func(op vfs.Op) bool {
				return strings.HasSuffix(op.Path, ".log")
			}, walFault))
			require.NoError(t, mem.MkdirAllSynced("db"))
			opts := smallOptions(fs)
			db, err := Open("db", opts)
			require.NoError(t, err)
			defer func() { _ = db.Close() }()

			// Unsynced writes that stay in the segment's buffer (far below
			// walFlushSize) and fit the memtable.
			val := make([]byte, 100)
			for i := range 20 {
				require.NoError(t, db.Set(fmt.Appendf(nil, "k%03d", i), val, nil))
			}
			w := db.wal
			require.Less(t, w.synced.Load(), w.appended, "the writes must be unsynced for the test to mean anything")

			// A write too large for the memtable's room rotates it: the
			// rotation closes the segment, whose write or fsync fails.
			walFault.On()
			err = db.Set([]byte("big"), make([]byte, opts.MemtableSize), nil)
			require.ErrorIs(t, err, vfs.ErrInjected, "the rotation's close must fail the write")
			require.Same(t, w, db.wal, "a failed rotation keeps the old segment")
			w.mu.Lock()
			closed := w.closed
			w.mu.Unlock()
			require.True(t, closed, "the rotation must have closed the segment")
			walFault.Off()

			// The 20 writes were never made durable: Sync must not say they
			// were, whatever the filesystem does now.
			err = db.Sync()
			require.Error(t, err, "Sync acknowledged writes the failed close did not make durable")
			require.True(t, errors.Is(err, vfs.ErrInjected), "Sync's error should be the close's failure, got %v", err)
			require.NotErrorIs(t, err, logkv.ErrClosed)
		})
	}
}
