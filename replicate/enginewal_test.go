package replicate

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// TestLSMWithoutWAL runs a leader on lsm with its WAL off, the commit log
// being its only log: Maintain syncs the engine (a memtable flush) only
// once EngineSyncEvery of log has grown, never trims what the engine has
// not flushed, and after a machine crash the node replays the log into
// the engine and loses no acknowledged write.
func TestLSMWithoutWAL(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newCluster(t, func(cfg *Config) {
				cfg.Checkpoint = false
				cfg.SegmentSize = 4 << 10
				cfg.EngineSyncEvery = 64 << 10
			})
			openLSM := func(cfg *Config) {
				mem := c.fs[cfg.ID]
				cfg.OpenEngine = func(wipe bool) (logkv.Engine, error) {
					require.False(t, wipe)
					require.NoError(t, mem.MkdirAllSynced("engine"))
					return lsm.Open("engine", &lsm.Options{FS: mem, DisableWAL: true, MemtableSize: 64 << 10})
				}
			}
			c.fs["a"] = vfs.NewMem()
			fs := c.fs["a"]
			a := c.start("a", "", openLSM)

			write(t, a, 0, 100, 2)
			require.NoError(t, a.Maintain())
			require.Zero(t, a.checkpointSeq.Load(), "under EngineSyncEvery of log: no engine sync")
			first := a.log.FirstSeq()

			last := write(t, a, 100, 1500, 4)
			require.NoError(t, a.Maintain())
			synced := a.checkpointSeq.Load()
			require.Greater(t, synced, uint64(100), "past EngineSyncEvery the engine is synced")
			require.GreaterOrEqual(t, a.Engine().LastSeq(), synced)
			require.Greater(t, a.log.FirstSeq(), first, "and the log trimmed")
			require.LessOrEqual(t, a.log.FirstSeq(), synced+1, "never past what the engine flushed")

			last = max(last, write(t, a, 1600, 300, 2)) // past the sync: only in the log and memtables
			want := scan(t, a.Engine())
			opts := vfsDrop()
			if seed > 0 {
				opts = vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, 9)), Data: vfs.TornUnsyncedData, Entries: vfs.KeepEntryPrefix}
			}
			crashed := fs.CrashClone(opts)
			c.nodes["a"].Close()
			delete(c.nodes, "a")
			c.fs["a"] = crashed
			a = c.start("a", "", openLSM)
			require.Equal(t, last, a.LastSeq())
			require.Equal(t, want, scan(t, a.Engine()))

			// The replayed records are in the memtable only: maintenance
			// must not trim their log before a sync, and a second crash
			// loses nothing either.
			require.NoError(t, a.Maintain())
			crashed = crashed.CrashClone(opts)
			c.nodes["a"].Close()
			delete(c.nodes, "a")
			c.fs["a"] = crashed
			a = c.start("a", "", openLSM)
			require.Equal(t, last, a.LastSeq())
			require.Equal(t, want, scan(t, a.Engine()))
		})
	}
}
