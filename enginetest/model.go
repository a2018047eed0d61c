package enginetest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// SeedEnv and StepsEnv name the environment variables that override
// RunModel's seed and step count, so that a failure reproduces:
//
//	ENGINETEST_SEED=12345 go test -run 'TestEngine/model' ./lsm/
const (
	SeedEnv  = "ENGINETEST_SEED"
	StepsEnv = "ENGINETEST_STEPS"
)

// ModelOptions configure RunModel.
type ModelOptions struct {
	// Seed seeds the random operations. Zero means the value of $ENGINETEST_SEED
	// if set, or else a random seed. The seed is logged.
	Seed uint64
	// Steps is the number of random operations. Zero means the value of
	// $ENGINETEST_STEPS if set, or else 1500 (400 with -short).
	Steps int
}

// RunModel runs random operations against the engine and a simple model of
// it (a map; snapshots and iterators are copies of it), checking the engine
// against the model after every step: LastSeq, a forward and a backward scan,
// and whatever the step read (and a Get of every key every 50 steps).
//
// The operations are Set, Delete and Apply of batches (with keys drawn from a
// small set, so that overwrites and deletes hit existing keys), with random
// Sync and, sometimes, caller-given sequence numbers (valid ones with gaps,
// and rejected ones); now and then every key rewritten with values of a few
// KiB, so that engines flush, rotate, compact and merge; empty and invalid
// batches; Get; iterators with random bounds walked both ways with seeks,
// with writes made while they are open; snapshots created, read (Get and
// iterators) and closed at random; Sync; and for a Durable engine clean
// reopens. When caps.Crash is set there are crash
// steps: after one, the engine must hold the model's state as of some
// committed sequence number S, no older than the last synced write (or
// successful Sync), with LastSeq() == S: a prefix of history, never a mix.
// The run then continues from S, and S counts as durable.
func RunModel(t *testing.T, open OpenFunc, caps Capabilities, o ModelOptions) {
	seed := o.Seed
	if seed == 0 {
		if s := os.Getenv(SeedEnv); s != "" {
			v, err := strconv.ParseUint(s, 10, 64)
			require.NoError(t, err, "$%s", SeedEnv)
			seed = v
		} else {
			seed = rand.Uint64()
		}
	}
	steps := o.Steps
	if steps == 0 {
		steps = 1500
		if testing.Short() {
			steps = 400
		}
		if s := os.Getenv(StepsEnv); s != "" {
			v, err := strconv.Atoi(s)
			require.NoError(t, err, "$%s", StepsEnv)
			steps = v
		}
	}
	t.Logf("model: seed %d, %d steps (reproduce with %s=%d %s=%d)", seed, steps, SeedEnv, seed, StepsEnv, steps)

	r := &modelRun{
		t:     t,
		h:     newHarness(t, open, caps),
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		model: state{},
	}
	if caps.Crash != nil {
		r.hist = newHistory(0, r.model)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("model: failed at step %d of seed %d (reproduce with %s=%d); the last operations, latest last:\n  %s",
				r.step, seed, SeedEnv, seed, strings.Join(r.ops, "\n  "))
		}
	})
	ops := r.weightedOps(caps)
	for r.step = 1; r.step <= steps; r.step++ {
		op := ops[r.rng.IntN(len(ops))]
		op()
		r.check()
	}
	for _, s := range r.snaps {
		require.NoError(t, s.s.Close())
	}
	r.snaps = nil
	if caps.Durable {
		r.reopen()
	}
}

// modelRun is the state of one RunModel.
type modelRun struct {
	t       *testing.T
	h       *harness
	rng     *rand.Rand
	model   state
	lastSeq uint64
	hist    *history // when the engine can crash
	snaps   []modelSnap
	step    int
	ops     []string // the latest operations, for the failure message
}

type modelSnap struct {
	s     logkv.Snapshot
	state state
	seq   uint64
}

func (r *modelRun) weightedOps(caps Capabilities) []func() {
	var ops []func()
	add := func(weight int, op func()) {
		for range weight {
			ops = append(ops, op)
		}
	}
	add(20, r.set)
	add(10, r.delete)
	add(12, r.batch)
	add(1, r.rewriteAll)
	add(1, r.emptyBatch)
	add(2, r.invalidWrite)
	add(8, r.get)
	add(14, r.iterate)
	add(4, r.snapCreate)
	add(8, r.snapRead)
	add(3, r.snapClose)
	add(2, r.sync)
	if caps.Durable {
		add(2, r.reopen)
	}
	if caps.Crash != nil {
		add(4, r.crash)
	}
	return ops
}

// modelKeys are the keys the model writes: few, so that writes collide, and
// shaped so that byte-wise order matters (prefixes, 0x00 and 0xff bytes).
var modelKeys = []string{
	"\x00", "\x00\x01", "a", "a\x00", "aa", "aab", "ab", "b", "b\xff", "ba",
	"c", "c0", "c00", "c01", "c1", "d", "da\x00z", "e", "ee", "f",
	"g\xff\xff", "h", "k", "key", "keys", "z", "\xff", "\xff\x00", "\xff\xff",
}

// modelProbes are bounds and seek keys: the model's keys and keys between
// and around them.
var modelProbes = append(append([]string{}, modelKeys...),
	"", "\x00\x00", "a\x01", "ac", "b\x00", "bz", "c000", "c\xff", "dz", "j", "zz", "\xff\x01", "\xff\xff\xff")

func (r *modelRun) key() string   { return modelKeys[r.rng.IntN(len(modelKeys))] }
func (r *modelRun) probe() string { return modelProbes[r.rng.IntN(len(modelProbes))] }

func (r *modelRun) value() string {
	switch n := r.rng.IntN(100); {
	case n < 10:
		return ""
	case n < 11:
		return strings.Repeat(strconv.Itoa(r.step), 1+r.rng.IntN(4096))
	default:
		return r.smallValue()
	}
}

// smallValue returns 1 to 16 random bytes.
func (r *modelRun) smallValue() string {
	b := make([]byte, 1+r.rng.IntN(16))
	for i := range b {
		b[i] = "\x00\xffabcdefgh0123"[r.rng.IntN(14)]
	}
	return string(b)
}

func (r *modelRun) logf(format string, args ...any) {
	r.ops = append(r.ops, fmt.Sprintf("%d: ", r.step)+fmt.Sprintf(format, args...))
	if len(r.ops) > 60 {
		r.ops = r.ops[len(r.ops)-40:]
	}
}

// writeOptions returns random options: Sync one time in five, a caller-given
// Seq (with a gap, sometimes) one in eight.
func (r *modelRun) writeOptions() *logkv.WriteOptions {
	o := &logkv.WriteOptions{Sync: r.rng.IntN(5) == 0}
	if r.rng.IntN(8) == 0 {
		o.Seq = r.lastSeq + 1 + uint64(r.rng.IntN(3))
	}
	return o
}

// committed updates the model after a write the engine accepted.
func (r *modelRun) committed(o *logkv.WriteOptions, apply func(state)) {
	r.t.Helper()
	want := r.lastSeq + 1
	if o.Seq != 0 {
		want = o.Seq
	}
	require.Equal(r.t, want, r.h.e.LastSeq(), "LastSeq after a write with %+v", *o)
	apply(r.model)
	r.lastSeq = want
	if r.hist != nil {
		r.hist.commit(want, r.model)
		if o.Sync {
			r.hist.durable(want)
		}
	}
}

func (r *modelRun) set() {
	k, v, o := r.key(), r.value(), r.writeOptions()
	r.logf("Set(%q, %d bytes %.16q) %+v", k, len(v), v, *o)
	require.NoError(r.t, r.h.e.Set([]byte(k), []byte(v), o), "Set(%q)", k)
	r.committed(o, func(s state) { s[k] = v })
}

func (r *modelRun) delete() {
	k, o := r.key(), r.writeOptions()
	r.logf("Delete(%q) %+v", k, *o)
	require.NoError(r.t, r.h.e.Delete([]byte(k), o), "Delete(%q)", k)
	r.committed(o, func(s state) { delete(s, k) })
}

func (r *modelRun) batch() {
	var b logkv.Batch
	type op struct{ k, v string } // v == "\x00del" for a delete
	var bops []op
	var desc []string
	for range 1 + r.rng.IntN(8) {
		k := r.key()
		if r.rng.IntN(3) == 0 {
			b.Delete([]byte(k))
			bops = append(bops, op{k, "\x00del"})
			desc = append(desc, fmt.Sprintf("del %q", k))
		} else {
			v := r.value()
			b.Set([]byte(k), []byte(v))
			bops = append(bops, op{k, v})
			desc = append(desc, fmt.Sprintf("set %q=%.16q", k, v))
		}
	}
	o := r.writeOptions()
	r.logf("Apply([%s]) %+v", strings.Join(desc, ", "), *o)
	require.NoError(r.t, r.h.e.Apply(&b, o), "Apply")
	r.committed(o, func(s state) {
		for _, op := range bops {
			if op.v == "\x00del" {
				delete(s, op.k)
			} else {
				s[op.k] = op.v
			}
		}
	})
}

// rewriteAll overwrites every key with a value of a few hundred bytes to a
// few KiB, in one batch or one Set each: enough data over a run to make
// engines flush, rotate files, compact and merge under the model.
func (r *modelRun) rewriteAll() {
	one := r.rng.IntN(2) == 0
	r.logf("rewrite every key (in one batch: %v)", one)
	var b logkv.Batch
	upd := state{}
	for _, k := range modelKeys {
		v := strings.Repeat(r.smallValue()+"|", 16+r.rng.IntN(240))
		if one {
			b.Set([]byte(k), []byte(v))
			upd[k] = v
			continue
		}
		o := &logkv.WriteOptions{}
		require.NoError(r.t, r.h.e.Set([]byte(k), []byte(v), o), "Set(%q)", k)
		r.committed(o, func(s state) { s[k] = v })
	}
	if one {
		o := &logkv.WriteOptions{}
		require.NoError(r.t, r.h.e.Apply(&b, o), "Apply")
		r.committed(o, func(s state) { maps.Copy(s, upd) })
	}
}

func (r *modelRun) emptyBatch() {
	o := r.writeOptions()
	r.logf("Apply(empty) %+v", *o)
	require.NoError(r.t, r.h.e.Apply(&logkv.Batch{}, o), "Apply of an empty batch")
	require.Equal(r.t, r.lastSeq, r.h.e.LastSeq(), "an empty batch consumed a sequence number")
	// A synced empty batch commits nothing, so the model claims no durability
	// for earlier writes from it.
}

// invalidWrite makes a write the engine must reject whole.
func (r *modelRun) invalidWrite() {
	var err error
	var want error
	o := r.writeOptions()
	if r.lastSeq > 0 && r.rng.IntN(2) == 0 {
		o.Seq = r.lastSeq - uint64(r.rng.IntN(int(min(r.lastSeq, 3))))
		want = logkv.ErrSeqNotIncreasing
		var b logkv.Batch
		b.Set([]byte(r.key()), []byte("never"))
		b.Delete([]byte(r.key()))
		r.logf("Apply with a stale Seq %+v", *o)
		err = r.h.e.Apply(&b, o)
	} else {
		o.Seq = 0
		want = logkv.ErrEmptyKey
		var b logkv.Batch
		b.Set([]byte(r.key()), []byte("never"))
		b.Delete(nil)
		r.logf("Apply with an empty key %+v", *o)
		err = r.h.e.Apply(&b, o)
	}
	require.ErrorIs(r.t, err, want)
	require.Equal(r.t, r.lastSeq, r.h.e.LastSeq(), "a rejected write consumed a sequence number")
}

func (r *modelRun) get() {
	k := r.key()
	r.logf("Get(%q)", k)
	r.requireGet(r.h.e, r.model, k, "engine")
}

func (r *modelRun) requireGet(rd logkv.Reader, s state, k, what string) {
	r.t.Helper()
	if v, ok := s[k]; ok {
		requireGet(r.t, rd, k, v, what)
	} else {
		requireAbsent(r.t, rd, k, what)
	}
}

func (r *modelRun) bounds() *logkv.IterOptions {
	switch r.rng.IntN(6) {
	case 0:
		return nil
	case 1:
		return &logkv.IterOptions{}
	}
	o := &logkv.IterOptions{}
	if r.rng.IntN(3) > 0 {
		o.LowerBound = []byte(r.probe())
	}
	if r.rng.IntN(3) > 0 {
		o.UpperBound = []byte(r.probe())
	}
	return o
}

// walk makes random moves with c, and, if write is set, sometimes writes to
// the engine between moves (the iterator must not see them).
func (r *modelRun) walk(c *iterChecker, write bool) {
	r.t.Helper()
	for range 5 + r.rng.IntN(25) {
		var op iterOp
		switch n := r.rng.IntN(20); {
		case n < 2:
			op = first
		case n < 4:
			op = last
		case n < 6:
			op = seekGE(r.probe())
		case n < 8:
			op = seekLT(r.probe())
		case n < 14:
			op = next
		default:
			op = prev
		}
		c.step(op)
		if write && r.rng.IntN(10) == 0 {
			switch r.rng.IntN(3) {
			case 0:
				r.set()
			case 1:
				r.delete()
			default:
				r.batch()
			}
		}
	}
}

func (r *modelRun) iterate() {
	o := r.bounds()
	r.logf("NewIter(%s) and a walk", boundsString(o))
	c := newIterChecker(r.t, r.h.e, r.model, o, fmt.Sprintf("engine iterator at step %d", r.step))
	r.walk(c, true)
	c.close()
}

func (r *modelRun) snapCreate() {
	if len(r.snaps) >= 4 {
		r.snapClose()
		return
	}
	r.logf("NewSnapshot at seq %d", r.lastSeq)
	s, err := r.h.e.NewSnapshot()
	require.NoError(r.t, err, "NewSnapshot")
	require.Equal(r.t, r.lastSeq, s.Seq(), "a new snapshot's Seq")
	r.snaps = append(r.snaps, modelSnap{s: s, state: maps.Clone(r.model), seq: r.lastSeq})
}

func (r *modelRun) snapRead() {
	if len(r.snaps) == 0 {
		r.snapCreate()
		return
	}
	i := r.rng.IntN(len(r.snaps))
	sn := r.snaps[i]
	require.Equal(r.t, sn.seq, sn.s.Seq(), "snapshot Seq")
	what := fmt.Sprintf("snapshot %d at seq %d", i, sn.seq)
	if r.rng.IntN(2) == 0 {
		k := r.key()
		r.logf("%s: Get(%q)", what, k)
		r.requireGet(sn.s, sn.state, k, what)
		return
	}
	o := r.bounds()
	r.logf("%s: NewIter(%s) and a walk", what, boundsString(o))
	c := newIterChecker(r.t, sn.s, sn.state, o, what)
	r.walk(c, true)
	c.close()
}

func (r *modelRun) snapClose() {
	if len(r.snaps) == 0 {
		return
	}
	i := r.rng.IntN(len(r.snaps))
	r.logf("close snapshot %d at seq %d", i, r.snaps[i].seq)
	require.NoError(r.t, r.snaps[i].s.Close(), "snapshot Close")
	r.snaps = append(r.snaps[:i], r.snaps[i+1:]...)
}

func (r *modelRun) sync() {
	r.logf("Sync at seq %d", r.lastSeq)
	require.NoError(r.t, r.h.e.Sync(), "Sync")
	if r.hist != nil {
		r.hist.durable(r.lastSeq)
	}
}

func (r *modelRun) reopen() {
	r.logf("Close and reopen at seq %d", r.lastSeq)
	for _, s := range r.snaps {
		require.NoError(r.t, s.s.Close(), "snapshot Close before reopen")
	}
	r.snaps = nil
	r.h.reopen()
	require.Equal(r.t, r.lastSeq, r.h.e.LastSeq(), "LastSeq after reopen")
	requireState(r.t, r.h.e, r.model, "after reopen")
	if r.hist != nil {
		r.hist = newHistory(r.lastSeq, r.model)
	}
}

func (r *modelRun) crash() {
	r.logf("crash at seq %d (durable %d)", r.lastSeq, r.hist.seqs[0])
	// The engine's snapshots die with it; the suite never touches them again.
	r.snaps = nil
	r.h.crash()
	r.lastSeq, r.model = r.hist.requireRecovered(r.t, r.h.e, fmt.Sprintf("crash at step %d", r.step))
	r.logf("  recovered seq %d", r.lastSeq)
}

// check compares the engine with the model after every step.
func (r *modelRun) check() {
	r.t.Helper()
	require.Equal(r.t, r.lastSeq, r.h.e.LastSeq(), "LastSeq after step %d", r.step)
	requireScan(r.t, r.h.e, r.model, fmt.Sprintf("after step %d", r.step))
	if r.step%50 == 0 {
		for _, k := range modelKeys {
			r.requireGet(r.h.e, r.model, k, fmt.Sprintf("after step %d", r.step))
		}
	}
}
