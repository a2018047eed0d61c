package enginetest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

func testPersist(t *testing.T, open OpenFunc, caps Capabilities) {
	t.Run("reopen", func(t *testing.T) {
		h := newHarness(t, open, caps)
		e := h.e
		set(t, e, "a", "1")
		require.NoError(t, e.Set([]byte("b"), []byte("2"), wo(true, 0)))
		set(t, e, "c", "3")
		set(t, e, "a", "1'")                                                // overwrite
		del(t, e, "c")                                                      // delete
		require.NoError(t, e.Delete([]byte("b"), wo(true, 0)))              // synced delete
		require.NoError(t, e.Set([]byte("b"), []byte("2'"), wo(false, 50))) // caller-given seq
		var bt logkv.Batch
		bt.Set([]byte("d"), []byte(""))
		bt.Set([]byte("e"), []byte("5"))
		bt.Delete([]byte("a"))
		bt.Set([]byte("a"), []byte("1''"))
		require.NoError(t, e.Apply(&bt, nil))
		set(t, e, "f", "6") // the last write, not synced
		want := state{"a": "1''", "b": "2'", "d": "", "e": "5", "f": "6"}
		seq := e.LastSeq()
		require.Equal(t, uint64(52), seq)
		h.reopen()
		require.Equal(t, seq, h.e.LastSeq(), "LastSeq after reopen is the last committed")
		requireState(t, h.e, want, "after reopen")
		h.reopen()
		require.Equal(t, seq, h.e.LastSeq(), "LastSeq after a second reopen")
		requireState(t, h.e, want, "after a second reopen with no writes between")
		del(t, h.e, "f")
		set(t, h.e, "g", "7")
		delete(want, "f")
		want["g"] = "7"
		require.Equal(t, seq+2, h.e.LastSeq())
		h.reopen()
		require.Equal(t, seq+2, h.e.LastSeq(), "after a third reopen")
		requireState(t, h.e, want, "after a third reopen")
	})

	t.Run("sync", func(t *testing.T) {
		h := newHarness(t, open, caps)
		require.NoError(t, h.e.Sync(), "Sync of an empty engine")
		set(t, h.e, "a", "1")
		require.NoError(t, h.e.Sync())
		require.NoError(t, h.e.Sync(), "Sync with nothing new")
		set(t, h.e, "b", "2")
		h.reopen()
		requireState(t, h.e, state{"a": "1", "b": "2"})
	})

	t.Run("many-reopens", func(t *testing.T) {
		h := newHarness(t, open, caps)
		model := state{}
		rounds := 8
		if testing.Short() {
			rounds = 4
		}
		for r := range rounds {
			for i := range 30 {
				k := fmt.Sprintf("k%02d", (i*7+r*3)%23)
				switch (i + r) % 5 {
				case 0, 1, 2:
					v := fmt.Sprintf("r%d.%d", r, i)
					require.NoError(t, h.e.Set([]byte(k), []byte(v), wo(i%4 == 0, 0)))
					model[k] = v
				case 3:
					require.NoError(t, h.e.Delete([]byte(k), wo(i%4 == 0, 0)))
					delete(model, k)
				case 4:
					var bt logkv.Batch
					for j := range 4 {
						kk := fmt.Sprintf("k%02d", (i+j*11+r)%23)
						if j%3 == 2 {
							bt.Delete([]byte(kk))
							delete(model, kk)
						} else {
							v := fmt.Sprintf("b%d.%d.%d", r, i, j)
							bt.Set([]byte(kk), []byte(v))
							model[kk] = v
						}
					}
					require.NoError(t, h.e.Apply(&bt, nil))
				}
			}
			seq := h.e.LastSeq()
			h.reopen()
			require.Equal(t, seq, h.e.LastSeq(), "round %d", r)
			requireState(t, h.e, model, fmt.Sprintf("after reopen %d", r))
		}
	})
}

// history is the model's states at each committed sequence number from the
// last durable one on: what a crash may legally recover to.
type history struct {
	seqs   []uint64 // ascending; seqs[0] is the durable point
	states []state
}

func newHistory(seq uint64, s state) *history {
	return &history{seqs: []uint64{seq}, states: []state{maps.Clone(s)}}
}

// commit records the state after a write committed at seq.
func (h *history) commit(seq uint64, s state) {
	h.seqs = append(h.seqs, seq)
	h.states = append(h.states, maps.Clone(s))
}

// durable drops the states before seq: a crash may no longer go back to them.
func (h *history) durable(seq uint64) {
	i, ok := slices.BinarySearch(h.seqs, seq)
	if !ok {
		panic(fmt.Sprintf("enginetest: durable seq %d not in history %v", seq, h.seqs))
	}
	h.seqs, h.states = h.seqs[i:], h.states[i:]
}

func (h *history) last() (uint64, state) {
	return h.seqs[len(h.seqs)-1], h.states[len(h.states)-1]
}

// requireRecovered checks an engine just reopened after a crash: LastSeq is S,
// one of the committed sequence numbers at or after the durable point, and
// the engine holds exactly the state as of S. It returns S and that state,
// and makes S the new durable point: what was recovered must survive the
// next crash too.
func (h *history) requireRecovered(t *testing.T, e logkv.Engine, msgAndArgs ...any) (uint64, state) {
	t.Helper()
	s := e.LastSeq()
	i, ok := slices.BinarySearch(h.seqs, s)
	if !ok {
		last, _ := h.last()
		if s < h.seqs[0] {
			require.Failf(t, "crash lost durable writes", "LastSeq after the crash is %d, but every write up to %d was synced; %s",
				s, h.seqs[0], fmt.Sprint(msgAndArgs...))
		}
		require.Failf(t, "crash recovered an unknown sequence number", "LastSeq after the crash is %d, not a committed one in %v (last committed %d); %s",
			s, h.seqs, last, fmt.Sprint(msgAndArgs...))
	}
	requireState(t, e, h.states[i], fmt.Sprintf("the state after a crash must be the state at its LastSeq %d (durable %d, last committed %d): %s",
		s, h.seqs[0], h.seqs[len(h.seqs)-1], fmt.Sprint(msgAndArgs...)))
	st := h.states[i]
	h.seqs, h.states = []uint64{s}, []state{st}
	return s, maps.Clone(st)
}

func testCrash(t *testing.T, open OpenFunc, caps Capabilities) {
	t.Run("empty", func(t *testing.T) {
		h := newHarness(t, open, caps)
		h.crash()
		require.Equal(t, uint64(0), h.e.LastSeq())
		requireState(t, h.e, state{})
		set(t, h.e, "a", "1")
		require.Equal(t, uint64(1), h.e.LastSeq())
	})

	// A synced write (or Sync) after k unsynced ones, for several k, so that
	// an engine that flushes on its own every few writes cannot pass by luck.
	t.Run("synced-writes-survive", func(t *testing.T) {
		h := newHarness(t, open, caps)
		want := state{}
		for k := range 5 {
			for i := range k {
				set(t, h.e, fmt.Sprintf("k%02d", i), fmt.Sprintf("unsynced %d.%d", k, i))
			}
			key, v := fmt.Sprintf("k%02d", k%3), fmt.Sprintf("synced %d", k)
			if k%2 == 1 {
				require.NoError(t, h.e.Delete([]byte(key), wo(true, 0)))
			} else {
				require.NoError(t, h.e.Set([]byte(key), []byte(v), wo(true, 0)))
			}
			for i := range k {
				want[fmt.Sprintf("k%02d", i)] = fmt.Sprintf("unsynced %d.%d", k, i)
			}
			if k%2 == 1 {
				delete(want, key)
			} else {
				want[key] = v
			}
			seq := h.e.LastSeq()
			h.crash()
			require.Equal(t, seq, h.e.LastSeq(), "LastSeq after a crash right after a synced write (round %d)", k)
			requireState(t, h.e, want, fmt.Sprintf("after a crash right after a synced write (round %d)", k))
		}
		var bt logkv.Batch
		bt.Set([]byte("batch-1"), []byte("x"))
		bt.Set([]byte("batch-2"), []byte("y"))
		require.NoError(t, h.e.Apply(&bt, wo(true, 100)))
		want["batch-1"], want["batch-2"] = "x", "y"
		h.crash()
		require.Equal(t, uint64(100), h.e.LastSeq(), "LastSeq after a crash after a synced batch with a given Seq")
		requireState(t, h.e, want, "after a crash after a synced batch with a given Seq")
	})

	t.Run("sync-call", func(t *testing.T) {
		h := newHarness(t, open, caps)
		want := state{}
		for k := range 5 {
			for i := range k + 1 {
				key, v := fmt.Sprintf("k%02d", i), fmt.Sprintf("%d.%d", k, i)
				set(t, h.e, key, v)
				want[key] = v
			}
			if k == 3 {
				del(t, h.e, "k01")
				delete(want, "k01")
			}
			require.NoError(t, h.e.Sync())
			seq := h.e.LastSeq()
			h.crash()
			require.Equal(t, seq, h.e.LastSeq(), "LastSeq after Sync and a crash (round %d)", k)
			requireState(t, h.e, want, fmt.Sprintf("after Sync and a crash (round %d)", k))
		}
	})

	t.Run("prefix", func(t *testing.T) {
		h := newHarness(t, open, caps)
		model := state{}
		hist := newHistory(0, model)
		for round := range 3 {
			for i := range 40 {
				sync := i%9 == 0
				if i%5 == 4 {
					var bt logkv.Batch
					for j := range 6 {
						k := fmt.Sprintf("k%02d", (i+j*3)%17)
						v := fmt.Sprintf("b%d.%d.%d", round, i, j)
						bt.Set([]byte(k), []byte(v))
						model[k] = v
					}
					require.NoError(t, h.e.Apply(&bt, wo(sync, 0)))
				} else {
					k := fmt.Sprintf("k%02d", (i*7)%17)
					v := fmt.Sprintf("s%d.%d", round, i)
					require.NoError(t, h.e.Set([]byte(k), []byte(v), wo(sync, 0)))
					model[k] = v
				}
				seq := h.e.LastSeq()
				hist.commit(seq, model)
				if sync {
					hist.durable(seq)
				}
			}
			_, model = hist.requireRecovered(t, h.crashAndReturn(), fmt.Sprintf("crash %d", round))
		}
	})
	t.Run("large-batch", func(t *testing.T) {
		// A batch larger than any buffer or log block an engine is likely to
		// have, unsynced: after a crash it is there whole or not at all.
		h := newHarness(t, open, caps)
		set(t, h.e, "base", "x")
		require.NoError(t, h.e.Sync())
		model := state{"base": "x"}
		hist := newHistory(h.e.LastSeq(), model)
		for round, sync := range []bool{false, true, false} {
			bt, upd := largeBatch(round)
			require.NoError(t, h.e.Apply(bt, wo(sync, 0)))
			maps.Copy(model, upd)
			hist.commit(h.e.LastSeq(), model)
			if sync {
				hist.durable(h.e.LastSeq())
			}
			_, model = hist.requireRecovered(t, h.crashAndReturn(), fmt.Sprintf("a crash after a %d-byte batch (synced %v)", bt.Size(), sync))
		}
	})

	t.Run("twice", func(t *testing.T) {
		// What one crash recovered survives the next, with no writes between.
		h := newHarness(t, open, caps)
		model := state{}
		hist := newHistory(0, model)
		for i := range 30 {
			k, v := fmt.Sprintf("k%02d", i%11), fmt.Sprint(i)
			require.NoError(t, h.e.Set([]byte(k), []byte(v), wo(i%10 == 0, 0)))
			model[k] = v
			hist.commit(h.e.LastSeq(), model)
			if i%10 == 0 {
				hist.durable(h.e.LastSeq())
			}
		}
		s1, st := hist.requireRecovered(t, h.crashAndReturn(), "the first crash")
		h.crash()
		require.Equal(t, s1, h.e.LastSeq(), "LastSeq after a second crash with no writes between")
		requireState(t, h.e, st, "after a second crash with no writes between")
	})

	t.Run("after-clean-close", func(t *testing.T) {
		// Close makes every write durable: a crash after reopening loses none.
		h := newHarness(t, open, caps)
		want := state{}
		for i := range 25 {
			k, v := fmt.Sprintf("k%02d", i%9), fmt.Sprint(i)
			set(t, h.e, k, v)
			want[k] = v
		}
		del(t, h.e, "k03")
		delete(want, "k03")
		seq := h.e.LastSeq()
		h.reopen()
		h.crash()
		require.Equal(t, seq, h.e.LastSeq(), "LastSeq after Close, reopen and a crash")
		requireState(t, h.e, want, "after Close, reopen and a crash")
	})
}

// largeBatch returns a batch of about 600 KiB over 3000 operations, some on
// the same keys, and the changes it makes.
func largeBatch(round int) (*logkv.Batch, state) {
	bt := new(logkv.Batch)
	upd := state{}
	val := strings.Repeat(fmt.Sprintf("round %d ", round), 25)
	for i := range 3000 {
		k := fmt.Sprintf("large/%04d", (i*7)%2000)
		v := fmt.Sprintf("%s%d", val, i)
		bt.Set([]byte(k), []byte(v))
		upd[k] = v
	}
	return bt, upd
}

// crashAndReturn crashes and reopens the engine and returns it.
func (h *harness) crashAndReturn() logkv.Engine {
	h.t.Helper()
	h.crash()
	return h.e
}
