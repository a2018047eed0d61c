package lsm

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// crashHistory is a run of single-Set batches, batch i at seq i.
type crashHistory struct {
	keys, values []string // index seq-1
}

func (h *crashHistory) stateAt(seq uint64) map[string]string {
	m := map[string]string{}
	for i := uint64(0); i < seq; i++ {
		m[h.keys[i]] = h.values[i]
	}
	return m
}

// crashPoint is a crash clone taken at a hook, with the newest seq whose
// synced write had returned before it was taken.
type crashPoint struct {
	fs     *vfs.MemFS
	synced uint64
}

// TestCrashAtHooks crashes the DB (takes crash clones of its filesystem) in
// the middle of flushes, compactions and manifest rotations, while a writer
// makes synced and unsynced writes, and checks each clone: it opens, holds
// every synced write, and its state is the history's state at its LastSeq.
func TestCrashAtHooks(t *testing.T) {
	points := map[string]func(h *testHooks, f func()){
		"flush":             func(h *testHooks, f func()) { h.afterFlushTable = f },
		"compaction":        func(h *testHooks, f func()) { h.afterCompactionTables = f },
		"manifest-rotation": func(h *testHooks, f func()) { h.midManifestRotate = f },
	}
	for name, set := range points {
		t.Run(name, func(t *testing.T) {
			for seed := uint64(1); seed <= 2; seed++ {
				runCrashAtHook(t, set, seed)
			}
		})
	}
}

func runCrashAtHook(t *testing.T, setHook func(h *testHooks, f func()), seed uint64) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAllSynced("db"))
	db, err := Open("db", smallOptions(fs))
	require.NoError(t, err)

	var synced atomic.Uint64
	var mu sync.Mutex
	var points []crashPoint
	rng := rand.New(rand.NewPCG(seed, 1))
	hookRng := rand.New(rand.NewPCG(seed, 2))
	setHook(&db.testHooks, func() {
		mu.Lock()
		defer mu.Unlock()
		if len(points) >= 4 {
			return
		}
		s := synced.Load()
		o := vfs.CrashOptions{}
		if len(points)%2 == 1 {
			o = vfs.CrashOptions{Rand: rand.New(rand.NewPCG(hookRng.Uint64(), 0)), Data: vfs.CorruptUnsyncedData, Entries: vfs.KeepEntryPrefix}
		}
		points = append(points, crashPoint{fs: fs.CrashClone(o), synced: s})
	})

	var h crashHistory
	n := 3000
	if testing.Short() {
		n = 1500
	}
	for i := 1; i <= n; i++ {
		k := fmt.Sprintf("k%04d", rng.IntN(500))
		v := fmt.Sprintf("v%d-%0*d", i, rng.IntN(200), 0)
		h.keys = append(h.keys, k)
		h.values = append(h.values, v)
		sync := rng.IntN(8) == 0
		require.NoError(t, db.Set([]byte(k), []byte(v), &logkv.WriteOptions{Sync: sync}))
		if sync {
			synced.Store(uint64(i))
		}
	}
	// The writes may all land before any background work reaches the hook:
	// on a loaded machine the flusher and the compactor lag, and Close stops
	// a compaction before its hook. So force the work until the hook has
	// run: each flushAll adds an L0 table (L0CompactionThreshold is 2, so a
	// compaction follows) and a manifest edit (MaxManifestSize is tiny, so
	// a rotation follows).
	ran := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(points) > 0
	}
	deadline := time.Now().Add(time.Minute)
	for i := n + 1; !ran(); i++ {
		require.True(t, time.Now().Before(deadline), "the hook never ran")
		k, v := fmt.Sprintf("k%04d", i%500), fmt.Sprintf("v%d", i)
		h.keys = append(h.keys, k)
		h.values = append(h.values, v)
		require.NoError(t, db.Set([]byte(k), []byte(v), nil))
		require.NoError(t, db.flushAll())
	}
	require.NoError(t, db.Close())
	mu.Lock()
	defer mu.Unlock()
	for i, p := range points {
		db2, err := Open("db", smallOptions(p.fs))
		require.NoError(t, err, "crash point %d", i)
		seq := db2.LastSeq()
		require.GreaterOrEqual(t, seq, p.synced, "crash point %d lost synced writes", i)
		requireDBState(t, db2, h.stateAt(seq), "crash point %d at seq %d", i, seq)
		require.NoError(t, db2.Close())
		// And again after a clean reopen of the recovered state.
		db3, err := Open("db", smallOptions(p.fs))
		require.NoError(t, err)
		require.Equal(t, seq, db3.LastSeq())
		requireDBState(t, db3, h.stateAt(seq), "crash point %d reopened", i)
		require.NoError(t, db3.Close())
	}
}

func requireDBState(t *testing.T, db *DB, want map[string]string, msgAndArgs ...any) {
	t.Helper()
	it, err := db.NewIter(nil)
	require.NoError(t, err)
	got := map[string]string{}
	for k, v := range logkv.All(it) {
		got[string(k)] = string(v)
	}
	require.NoError(t, it.Close())
	require.Equal(t, want, got, msgAndArgs...)
	for k, v := range want {
		g, err := db.Get([]byte(k))
		require.NoError(t, err, msgAndArgs...)
		require.Equal(t, v, string(g), msgAndArgs...)
	}
}

// TestDisableWALCrash: without a WAL, what a crash keeps is exactly what
// was flushed, and LastSeq says so, so a node can replay its log from
// LastSeq()+1.
func TestDisableWALCrash(t *testing.T) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAllSynced("db"))
	opts := smallOptions(fs)
	opts.DisableWAL = true
	opts.MemtableSize = 1 << 20 // no flush but the one Sync asks for
	db, err := Open("db", opts)
	require.NoError(t, err)
	for i := 1; i <= 100; i++ {
		require.NoError(t, db.Set(fmt.Appendf(nil, "k%03d", i), []byte("v1"), &logkv.WriteOptions{Seq: uint64(10 * i)}))
	}
	require.NoError(t, db.Sync())
	for i := 1; i <= 50; i++ {
		require.NoError(t, db.Set(fmt.Appendf(nil, "k%03d", i), []byte("v2"), nil))
	}
	require.Equal(t, uint64(1050), db.LastSeq())
	crashed := fs.CrashClone(vfs.CrashOptions{})
	db2, err := Open("db", opts.withFS(crashed))
	require.NoError(t, err)
	defer db2.Close()
	require.Equal(t, uint64(1000), db2.LastSeq(), "LastSeq is the newest seq in tables")
	want := map[string]string{}
	for i := 1; i <= 100; i++ {
		want[fmt.Sprintf("k%03d", i)] = "v1"
	}
	requireDBState(t, db2, want)
	db.Close()
}

func (o *Options) withFS(fs vfs.FS) *Options {
	c := *o
	c.FS = fs
	return &c
}
