package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/memory"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// TestDifferential runs the same random operations on lsm (with tiny
// memtables and tables, so flushes, compactions, trivial moves and manifest
// rotations happen all the time) and on the memory engine, comparing reads
// after each step, and across clean reopens.
func TestDifferential(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runDifferential(t, seed, false) })
	}
	t.Run("disable-wal", func(t *testing.T) { runDifferential(t, 4, true) })
}

func runDifferential(t *testing.T, seed uint64, disableWAL bool) {
	rng := rand.New(rand.NewPCG(seed, 7))
	fs := vfs.NewMem()
	opts := smallOptions(fs)
	opts.DisableWAL = disableWAL
	open := func() *DB {
		db, err := Open("db", opts)
		require.NoError(t, err)
		return db
	}
	db := open()
	defer func() { db.Close() }()
	model, err := memory.Open("", nil)
	require.NoError(t, err)
	defer model.Close()

	steps := 2000
	if testing.Short() {
		steps = 800
	}
	key := func() []byte { return fmt.Appendf(nil, "key%05d", rng.IntN(2000)) }
	value := func() []byte {
		v := make([]byte, rng.IntN(300))
		for i := range v {
			v[i] = byte('a' + rng.IntN(26))
		}
		return v
	}
	var flushes, compactions float64
	count := func() {
		for _, x := range db.Metrics().Detail {
			switch x.Name {
			case "lsm_flushes_total":
				flushes += x.Value
			case "lsm_compactions_total":
				compactions += x.Value
			}
		}
	}
	type snap struct{ a, b logkv.Snapshot }
	var snaps []snap
	for step := 0; step < steps; step++ {
		switch r := rng.IntN(100); {
		case r < 50:
			k, v := key(), value()
			require.NoError(t, db.Set(k, v, nil))
			require.NoError(t, model.Set(k, v, nil))
		case r < 60:
			k := key()
			require.NoError(t, db.Delete(k, nil))
			require.NoError(t, model.Delete(k, nil))
		case r < 70:
			var b logkv.Batch
			for n := rng.IntN(20); n >= 0; n-- {
				if rng.IntN(4) == 0 {
					b.Delete(key())
				} else {
					b.Set(key(), value())
				}
			}
			require.NoError(t, db.Apply(&b, nil))
			require.NoError(t, model.Apply(&b, nil))
		case r < 80:
			k := key()
			requireSameGet(t, db, model, k)
		case r < 83:
			requireSameIter(t, rng, db, model)
		case r < 91:
			if len(snaps) < 4 {
				a, err := db.NewSnapshot()
				require.NoError(t, err)
				b, err := model.NewSnapshot()
				require.NoError(t, err)
				snaps = append(snaps, snap{a, b})
			}
		case r < 95:
			if len(snaps) > 0 {
				i := rng.IntN(len(snaps))
				s := snaps[i]
				requireSameGet(t, s.a, s.b, key())
				requireSameIter(t, rng, s.a, s.b)
				if rng.IntN(2) == 0 {
					require.NoError(t, s.a.Close())
					require.NoError(t, s.b.Close())
					snaps = append(snaps[:i], snaps[i+1:]...)
				}
			}
		case r < 96:
			for _, s := range snaps {
				s.a.Close()
				s.b.Close()
			}
			snaps = nil
			require.NoError(t, db.Close())
			count() // the final metrics, including Close's flush under DisableWAL
			db = open()
			require.Equal(t, model.LastSeq(), db.LastSeq(), "step %d: LastSeq after reopen", step)
		default:
			requireSameIter(t, rng, db, model)
		}
	}
	requireSameIter(t, rng, db, model)
	count()
	t.Logf("flushes %v compactions %v", flushes, compactions)
	require.Positive(t, flushes, "the test must exercise flushes")
	require.Positive(t, compactions, "the test must exercise compactions")
	for _, s := range snaps {
		s.a.Close()
		s.b.Close()
	}
}

func requireSameGet(t *testing.T, a, b logkv.Reader, k []byte) {
	t.Helper()
	va, erra := a.Get(k)
	vb, errb := b.Get(k)
	if errors.Is(errb, logkv.ErrNotFound) {
		require.ErrorIs(t, erra, logkv.ErrNotFound, "Get(%s)", k)
		return
	}
	require.NoError(t, errb)
	require.NoError(t, erra, "Get(%s)", k)
	require.True(t, bytes.Equal(va, vb), "Get(%s): %q want %q", k, va, vb)
}

// requireSameIter walks both readers' iterators with the same random bounds
// and moves, including direction changes, and compares every position.
func requireSameIter(t *testing.T, rng *rand.Rand, a, b logkv.Reader) {
	t.Helper()
	var o *logkv.IterOptions
	if rng.IntN(2) == 0 {
		o = &logkv.IterOptions{}
		if rng.IntN(2) == 0 {
			o.LowerBound = fmt.Appendf(nil, "key%05d", rng.IntN(2000))
		}
		if rng.IntN(2) == 0 {
			o.UpperBound = fmt.Appendf(nil, "key%05d", rng.IntN(2000))
		}
	}
	ia, err := a.NewIter(o)
	require.NoError(t, err)
	defer ia.Close()
	ib, err := b.NewIter(o)
	require.NoError(t, err)
	defer ib.Close()
	var trace []string
	for i := 0; i < 60; i++ {
		var oka, okb bool
		var what string
		switch r := rng.IntN(10); {
		case r == 0:
			what = "First"
			oka, okb = ia.First(), ib.First()
		case r == 1:
			what = "Last"
			oka, okb = ia.Last(), ib.Last()
		case r == 2:
			k := fmt.Appendf(nil, "key%05d", rng.IntN(2000))
			what = "SeekGE " + string(k)
			oka, okb = ia.SeekGE(k), ib.SeekGE(k)
		case r == 3:
			k := fmt.Appendf(nil, "key%05d", rng.IntN(2000))
			what = "SeekLT " + string(k)
			oka, okb = ia.SeekLT(k), ib.SeekLT(k)
		case r < 7:
			what = "Next"
			oka, okb = ia.Next(), ib.Next()
		default:
			what = "Prev"
			oka, okb = ia.Prev(), ib.Prev()
		}
		trace = append(trace, what)
		require.NoError(t, ia.Error())
		require.Equal(t, okb, oka, "after %v (bounds %+v)", trace, o)
		if oka {
			require.Equal(t, string(ib.Key()), string(ia.Key()), "after %v", trace)
			require.Equal(t, string(ib.Value()), string(ia.Value()), "after %v", trace)
		}
	}
	// A full scan each way.
	var ka, kb []string
	for ok := ia.First(); ok; ok = ia.Next() {
		ka = append(ka, string(ia.Key())+"="+string(ia.Value()))
	}
	for ok := ib.First(); ok; ok = ib.Next() {
		kb = append(kb, string(ib.Key())+"="+string(ib.Value()))
	}
	require.Equal(t, kb, ka, "forward scan")
	ka, kb = ka[:0], kb[:0]
	for ok := ia.Last(); ok; ok = ia.Prev() {
		ka = append(ka, string(ia.Key()))
	}
	for ok := ib.Last(); ok; ok = ib.Prev() {
		kb = append(kb, string(ib.Key()))
	}
	require.Equal(t, kb, ka, "backward scan")
	require.NoError(t, ia.Error())
}
