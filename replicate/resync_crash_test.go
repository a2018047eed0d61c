package replicate

import (
	"fmt"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// lsmStore keeps lsm engine generations in engine.<gen> of a MemFS.
type lsmStore struct{ fs *vfs.MemFS }

func (s lsmStore) dir(gen uint64) string { return fmt.Sprintf("engine.%d", gen) }

func (s lsmStore) Open(gen uint64, fresh bool) (logkv.Engine, error) {
	if fresh {
		if err := s.Remove(gen); err != nil {
			return nil, err
		}
	}
	if err := s.fs.MkdirAllSynced(s.dir(gen)); err != nil {
		return nil, err
	}
	return lsm.Open(s.dir(gen), &lsm.Options{FS: s.fs, DisableWAL: true, MemtableSize: 64 << 10})
}

func (s lsmStore) Remove(gen uint64) error {
	names, err := s.fs.List(s.dir(gen))
	if err != nil {
		return nil // no such generation
	}
	for _, name := range names {
		if err := s.fs.Remove(s.dir(gen) + "/" + name); err != nil {
			return err
		}
	}
	if err := s.fs.Remove(s.dir(gen)); err != nil {
		return err
	}
	return s.fs.SyncDir(".")
}

// Finding 1 of issue 16: a full resync emptied the engine before the
// snapshot arrived, so a crash (or a leader that went away) mid-resync left
// nothing. Now a crash at any stage of a resync must leave either the old
// data or the complete new data. The follower b lags a leader whose log was
// trimmed past it, so b gets a full resync; at each stage a crash image of
// b's filesystem is taken, and a node opened on each must hold exactly b's
// old state or the leader's snapshot.
func TestResyncCrashPoints(t *testing.T) {
	for _, engine := range []string{"memory", "lsm"} {
		t.Run(engine, func(t *testing.T) {
			withEngine := func(c *cluster, id string) func(*Config) {
				return func(cfg *Config) {
					if engine == "lsm" {
						cfg.Checkpoint, cfg.EngineSyncEvery = false, 0
						cfg.Engines = lsmStore{c.fs[id]}
					}
				}
			}
			c := newCluster(t, func(cfg *Config) { cfg.SegmentSize, cfg.RetentionBytes = 4<<10, 16<<10 })
			c.fs["a"], c.fs["b"] = vfs.NewMem(), vfs.NewMem()
			a := c.start("a", "", withEngine(c, "a"))
			b := c.start("b", "a", withEngine(c, "b"))
			write(t, a, 0, 300, 2)
			requireConverged(t, a, b)
			require.NoError(t, b.Maintain()) // b's engine durable
			old := scan(t, b.Engine())
			c.stop("b")

			// The leader moves on and trims the log b would need.
			write(t, a, 300, 2000, 4)
			require.NoError(t, a.Checkpoint())
			require.NoError(t, a.Maintain())
			require.NoError(t, a.Maintain())
			require.Greater(t, a.Log().FirstSeq(), uint64(301), "the log b needs is trimmed")
			want := scan(t, a.Engine())

			images := map[string]*vfs.MemFS{}
			b = c.start("b", "", withEngine(c, "b")) // opened as leader: no resync yet
			require.Equal(t, old, scan(t, b.Engine()))
			b.testHookResync = func(stage string) {
				images[stage] = c.fs["b"].CrashClone(vfs.CrashOptions{})
			}
			require.NoError(t, b.FollowForce(c.addrOf("a")))
			requireConverged(t, a, b)
			require.Equal(t, want, scan(t, b.Engine()))
			require.Equal(t, uint64(1), b.Status().Resyncs)
			c.stop("b")

			stages := []string{"loaded", "staged", "committed", "reset"}
			for _, stage := range stages {
				img := images[stage]
				require.NotNil(t, img, "stage %s ran", stage)
				c.fs["b"] = img
				n := c.start("b", "", withEngine(c, "b"))
				got := scan(t, n.Engine())
				switch stage {
				case "loaded", "staged":
					require.Equal(t, old, got, "a crash at %s keeps the old data", stage)
				default:
					require.Equal(t, want, got, "a crash at %s keeps the new data", stage)
					require.Equal(t, n.Engine().LastSeq()+1, n.Log().FirstSeq(), "the log restarts after the snapshot")
				}
				c.stop("b")
			}
		})
	}
}
