package memory

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/enginetest"
	"github.com/stretchr/testify/require"
)

// checkedDB checks the tree's invariants when the test closes the engine.
type checkedDB struct {
	*DB
	t *testing.T
}

func (c checkedDB) Close() error {
	c.DB.mu.RLock()
	if !c.DB.closed.Load() {
		checkDB(c.t, c.DB)
	}
	c.DB.mu.RUnlock()
	return c.DB.Close()
}

// checkDB checks the tree's invariants and that the engine's count of key
// and value bytes is the sum over its keys. db.mu is held (or unneeded).
func checkDB(t *testing.T, db *DB) {
	t.Helper()
	require.NoError(t, db.t.Check())
	var data int64
	for key, v := range db.t.All() {
		require.Equal(t, string(key), string(v.key()), "the tree's key and the allocation's")
		data += int64(v.size())
	}
	require.Equal(t, db.dataBytes, data, "dataBytes")
}

func k(i int) []byte { return fmt.Appendf(nil, "%08d", i) }

func openTest(t *testing.T, dir string) logkv.Engine {
	t.Helper()
	db, err := Open(dir, nil)
	require.NoError(t, err)
	return checkedDB{db, t}
}

func TestConformance(t *testing.T) {
	enginetest.Run(t, openTest, enginetest.Capabilities{})
}

func TestOpenByName(t *testing.T) {
	for _, opts := range []any{nil, &Options{}, (*Options)(nil)} {
		e, err := logkv.Open("memory", "", opts)
		require.NoError(t, err)
		require.IsType(t, &DB{}, e)
		require.NoError(t, e.Close())
	}
	_, err := logkv.Open("memory", "", Options{})
	require.ErrorContains(t, err, "*memory.Options")
}

func TestCloseTwice(t *testing.T) {
	db, err := Open("", nil)
	require.NoError(t, err)
	require.NoError(t, db.Set([]byte("k"), []byte("v"), nil))
	require.NoError(t, db.Close())
	require.ErrorIs(t, db.Close(), logkv.ErrClosed)
	require.Equal(t, uint64(1), db.LastSeq(), "LastSeq answers after Close")
	require.Equal(t, int64(1), db.Metrics().Keys, "Metrics answer after Close")
}

// TestEngineSnapshotsStayExact drives the engine with random batches while
// snapshots and iterators are taken and closed at random, and checks each
// against a copy of the model made when it was taken, thousands of writes
// later. Iterators made from a snapshot outlive its Close.
func TestEngineSnapshotsStayExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	db, err := Open("", nil)
	require.NoError(t, err)
	defer db.Close()
	model := map[string]string{}
	type view struct {
		s     logkv.Snapshot
		it    logkv.Iterator
		model map[string]string
		seq   uint64
	}
	var views []*view
	check := func(v *view) {
		it := v.it
		if it == nil {
			var err error
			it, err = v.s.NewIter(nil)
			require.NoError(t, err)
			defer it.Close()
			require.Equal(t, v.seq, v.s.Seq())
			for range 20 {
				key := string(k(rng.IntN(1200)))
				got, err := v.s.Get([]byte(key))
				if want, ok := v.model[key]; ok {
					require.NoError(t, err)
					require.Equal(t, want, string(got))
				} else {
					require.ErrorIs(t, err, logkv.ErrNotFound)
				}
			}
		}
		got := map[string]string{}
		var prev []byte
		for key, val := range logkv.All(it) {
			require.Positive(t, bytes.Compare(key, prev))
			prev = append(prev[:0], key...)
			got[string(key)] = string(val)
		}
		require.NoError(t, it.Error())
		require.Equal(t, v.model, got)
	}
	steps := 3000
	if testing.Short() {
		steps = 1000
	}
	for step := range steps {
		var b logkv.Batch
		for range 1 + rng.IntN(8) {
			key := k(rng.IntN(1200))
			if rng.IntN(3) == 0 {
				b.Delete(key)
				delete(model, string(key))
			} else {
				v := fmt.Sprintf("v%d", step)
				b.Set(key, []byte(v))
				model[string(key)] = v
			}
		}
		require.NoError(t, db.Apply(&b, nil))
		switch r := rng.IntN(100); {
		case r < 3:
			s, err := db.NewSnapshot()
			require.NoError(t, err)
			views = append(views, &view{s: s, model: maps.Clone(model), seq: db.LastSeq()})
		case r < 5:
			it, err := db.NewIter(nil)
			require.NoError(t, err)
			views = append(views, &view{it: it, model: maps.Clone(model)})
		case r < 7 && len(views) > 0:
			i := rng.IntN(len(views))
			v := views[i]
			check(v)
			if v.s != nil && rng.IntN(2) == 0 {
				// Trade the snapshot for an iterator of it, which
				// must keep the same view after the snapshot closes.
				v.it, err = v.s.NewIter(nil)
				require.NoError(t, err)
				require.NoError(t, v.s.Close())
				v.s = nil
				check(v)
				continue
			}
			if v.s != nil {
				require.NoError(t, v.s.Close())
			} else {
				require.NoError(t, v.it.Close())
			}
			views = slices.Delete(views, i, i+1)
		}
	}
	for _, v := range views {
		check(v)
		if v.s != nil {
			require.NoError(t, v.s.Close())
		} else {
			require.NoError(t, v.it.Close())
		}
	}
	require.Empty(t, db.live, "every reader released")
	require.Zero(t, db.t.Shared())
	checkDB(t, db)
}

func detail(m logkv.Metrics, name string) float64 {
	for _, d := range m.Detail {
		if d.Name == name {
			return d.Value
		}
	}
	panic("no metric " + name)
}

// TestWritesInPlaceWithoutSnapshots checks the promise that a write copies
// nodes only while an open snapshot shares them.
func TestWritesInPlaceWithoutSnapshots(t *testing.T) {
	db, err := Open("", nil)
	require.NoError(t, err)
	defer db.Close()
	for i := range 20000 {
		require.NoError(t, db.Set(k(i), []byte("v"), nil))
	}
	copies := func() float64 { return detail(db.Metrics(), "memory_node_copies_total") }
	require.Zero(t, copies())

	s, err := db.NewSnapshot()
	require.NoError(t, err)
	for i := range 20000 {
		require.NoError(t, db.Set(k(i), []byte("w"), nil))
	}
	withSnap := copies()
	require.Positive(t, withSnap)
	// Each node is copied once, then the copy is the writer's.
	require.LessOrEqual(t, withSnap, float64(db.t.Stats().Leaves+db.t.Stats().Inners))
	v, err := s.Get(k(5))
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
	require.NoError(t, s.Close())

	s, err = db.NewSnapshot()
	require.NoError(t, err)
	require.NoError(t, s.Close())
	for i := range 20000 {
		require.NoError(t, db.Set(k(i), []byte("x"), nil))
	}
	require.Equal(t, withSnap, copies(), "copies after the snapshot closed")
}

// TestMemoryReclaimed checks that deleted and overwritten data is freed
// once no snapshot needs it, and kept while one does: the arena's allocated
// and retired bytes, and that the arena's freed blocks are reused.
func TestMemoryReclaimed(t *testing.T) {
	const n, vsize = 2000, 8 << 10 // 16 MiB of values
	db, err := Open("", nil)
	require.NoError(t, err)
	defer db.Close()
	value := make([]byte, vsize)
	allocated := func() float64 { return arenaBytes(db, "allocated") }
	for i := range n {
		require.NoError(t, db.Set(k(i), value, nil))
	}
	require.Greater(t, allocated(), float64(n*vsize), "the data is in the arena")
	mapped := db.Metrics().MemBytes

	s, err := db.NewSnapshot()
	require.NoError(t, err)
	for i := range n {
		if i%2 == 0 {
			require.NoError(t, db.Delete(k(i), nil))
		} else {
			require.NoError(t, db.Set(k(i), []byte("small"), nil))
		}
	}
	require.Greater(t, arenaBytes(db, "retired"), float64(n*vsize), "the snapshot keeps the old data")
	got, err := s.Get(k(1))
	require.NoError(t, err)
	require.Equal(t, value, got)

	require.NoError(t, s.Close())
	require.Zero(t, arenaBytes(db, "retired"), "old data freed after the snapshot closed")
	require.Less(t, allocated(), float64(n*vsize/8))
	require.Equal(t, int64(n/2), db.Metrics().Keys)

	// Freed blocks are reused: writing the data again maps little more.
	for i := range n {
		require.NoError(t, db.Set(k(i), value, nil))
	}
	require.Less(t, db.Metrics().MemBytes, mapped+mapped/8, "mapped bytes after rewriting the data")
}

func arenaBytes(db *DB, state string) float64 {
	for _, m := range db.Metrics().Detail {
		if m.Name == "memory_arena_bytes" && m.Labels["state"] == state {
			return m.Value
		}
	}
	return -1
}

// TestConcurrentReadersAndWriters runs writers applying batches that keep
// an invariant (every key of a group holds the same value) against readers
// that check it through Get, iterators and snapshots. Run with -race.
func TestConcurrentReadersAndWriters(t *testing.T) {
	db, err := Open("", nil)
	require.NoError(t, err)
	defer db.Close()
	const groups, size = 50, 8
	key := func(g, j int) []byte { return fmt.Appendf(nil, "g%03d/%d", g, j) }
	rounds := 2000
	if testing.Short() {
		rounds = 500
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 8)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var b logkv.Batch
			for r := range rounds {
				b.Reset()
				g := rng.IntN(groups)
				v := fmt.Appendf(nil, "w%d-%d", w, r)
				for j := range size {
					if r%10 == 9 {
						b.Delete(key(g, j))
					} else {
						b.Set(key(g, j), v)
					}
				}
				if err := db.Apply(&b, nil); err != nil {
					report(err)
					return
				}
			}
		})
	}
	// checkGroups checks that every group is all present with one value,
	// or all absent, in what r shows.
	checkGroups := func(r logkv.Reader) error {
		it, err := r.NewIter(nil)
		if err != nil {
			return err
		}
		defer it.Close()
		vals := map[string][]string{}
		for k, v := range logkv.All(it) {
			g := string(k[:4])
			vals[g] = append(vals[g], string(v))
		}
		for g, vs := range vals {
			if len(vs) != size {
				return fmt.Errorf("group %s has %d keys", g, len(vs))
			}
			for _, v := range vs {
				if v != vs[0] {
					return fmt.Errorf("group %s mixes %q and %q", g, vs[0], v)
				}
			}
		}
		return it.Error()
	}
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 2))
			for {
				select {
				case <-done:
					return
				default:
				}
				switch rng.IntN(3) {
				case 0:
					if err := checkGroups(db); err != nil {
						report(err)
						return
					}
				case 1:
					s, err := db.NewSnapshot()
					if err != nil {
						report(err)
						return
					}
					err = checkGroups(s)
					s.Close()
					if err != nil {
						report(err)
						return
					}
				default:
					g := rng.IntN(groups)
					first, err1 := db.Get(key(g, 0))
					if err1 != nil && !errors.Is(err1, logkv.ErrNotFound) {
						report(err1)
						return
					}
					_ = first
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, uint64(2*rounds), db.LastSeq())
	checkDB(t, db)
}

func TestCloseInvalidatesReaders(t *testing.T) {
	db, err := Open("", nil)
	require.NoError(t, err)
	for i := range 100 {
		require.NoError(t, db.Set(k(i), []byte("v"), nil))
	}
	it, err := db.NewIter(nil)
	require.NoError(t, err)
	require.True(t, it.First())
	s, err := db.NewSnapshot()
	require.NoError(t, err)
	require.NoError(t, db.Close())

	require.False(t, it.Next())
	require.False(t, it.Valid())
	require.ErrorIs(t, it.Error(), logkv.ErrClosed)
	require.False(t, it.First())
	require.ErrorIs(t, it.Close(), logkv.ErrClosed)
	_, err = s.Get(k(1))
	require.ErrorIs(t, err, logkv.ErrClosed)
	_, err = s.NewIter(nil)
	require.ErrorIs(t, err, logkv.ErrClosed)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err = db.NewSnapshot()
	require.ErrorIs(t, err, logkv.ErrClosed)
	_, err = db.NewIter(nil)
	require.ErrorIs(t, err, logkv.ErrClosed)
}

// TestLeakedReadersReleased checks that a snapshot or iterator dropped
// without Close stops pinning its version, and the data retired after it,
// once the garbage collector finds it: the runtime cleanup releases it.
func TestLeakedReadersReleased(t *testing.T) {
	db, err := Open("", nil)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Set([]byte("k"), []byte("v"), nil))
	func() {
		_, err := db.NewSnapshot()
		require.NoError(t, err)
		it, err := db.NewIter(nil)
		require.NoError(t, err)
		require.True(t, it.First())
	}()
	readers := func() float64 { return detail(db.Metrics(), "memory_open_readers") }
	require.Equal(t, 2.0, readers())
	require.NoError(t, db.Set([]byte("k"), []byte("w"), nil))
	require.Positive(t, arenaBytes(db, "retired"), "the old record is kept for the readers")
	// Cleanups run on their own goroutine after a GC; wait for them with
	// a bounded number of GCs rather than a sleep.
	for i := 0; i < 1000 && readers() > 0; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	require.Zero(t, readers())
	require.Zero(t, db.t.Shared())
	require.Zero(t, arenaBytes(db, "retired"), "the old record is freed")
}
