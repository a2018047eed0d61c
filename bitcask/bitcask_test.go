package bitcask

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/enginetest"
	"github.com/logkv/logkv/vfs"
)

// memOpener opens DBs on in-memory filesystems, one per directory, that
// crash tests replace with their crash clones.
type memOpener struct {
	dirs  vfs.Dirs
	opts  Options
	mu    sync.Mutex
	seeds uint64
}

func (m *memOpener) open(t *testing.T, dir string) logkv.Engine {
	t.Helper()
	return m.openDB(t, dir)
}

func (m *memOpener) openDB(t *testing.T, dir string) *DB {
	t.Helper()
	o := m.opts
	o.FS = m.dirs.FS(dir)
	db, err := Open(dir, &o)
	require.NoError(t, err)
	return db
}

// crash simulates a power loss with torn, corrupted unsynced tails and a
// random prefix of unsynced directory changes, then releases the abandoned
// engine (its Close writes only to the old filesystem).
func (m *memOpener) crash(t *testing.T, e logkv.Engine, dir string) {
	t.Helper()
	m.mu.Lock()
	m.seeds++
	seed := m.seeds
	m.mu.Unlock()
	m.dirs.Crash(dir, vfs.CrashOptions{
		Rand:    rand.New(rand.NewPCG(seed, 1)),
		Data:    vfs.CorruptUnsyncedData,
		Entries: vfs.KeepEntryPrefix,
	})
	_ = e.Close()
}

func TestConformance(t *testing.T) {
	m := &memOpener{}
	enginetest.Run(t, m.open, enginetest.Capabilities{Durable: true, Crash: m.crash})
}

// TestModelSmallFiles runs the randomized model test (with reopens and
// crashes) on tiny data files and an eager merge, so that rotations, hints
// and merges happen all the time under it.
func TestModelSmallFiles(t *testing.T) {
	m := &memOpener{opts: Options{MaxFileSize: 1 << 10, BufferSize: 256, MergeThreshold: 0.3}}
	caps := enginetest.Capabilities{Durable: true, Crash: m.crash}
	runs := 3
	if raceEnabled {
		runs = 1
	}
	for i := range runs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			enginetest.RunModel(t, m.open, caps, enginetest.ModelOptions{})
		})
	}
}

// TestConformanceOS runs the suite on the operating system's filesystem,
// where reads go through memory maps. It is skipped under -short and -race
// (the MemFS runs cover the logic; this one the maps and real fsyncs).
func TestConformanceOS(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("OS filesystem run skipped with -short and -race")
	}
	enginetest.Run(t, func(t *testing.T, dir string) logkv.Engine {
		db, err := Open(dir, nil)
		require.NoError(t, err)
		return db
	}, enginetest.Capabilities{Durable: true})
}
