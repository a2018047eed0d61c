package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/logkv/logkv"
)

// runDB runs one db_bench-style benchmark; see the package doc for how each
// one uses and leaves the database's state.
func (s *session) runDB(ctx context.Context, b *benchRun) (Result, error) {
	cfg := s.cfg
	rangeN := s.state.n
	if rangeN == 0 {
		rangeN = cfg.Num
	}
	switch b.name {
	case "fillseq", "fillrandom", "fillsync":
		if err := s.fresh(); err != nil {
			return Result{}, err
		}
		n, sync := cfg.Num, false
		if b.name == "fillsync" {
			n, sync = cfg.syncNum(), true
		}
		keyOf := func(_ *worker, i int) uint64 { return uint64(i) }
		if b.name != "fillseq" {
			perm := newPermutation(uint64(n), cfg.Seed)
			keyOf = func(_ *worker, i int) uint64 { return perm.at(uint64(i)) }
		}
		r, err := s.writes(ctx, b, n, keyOf, false, sync)
		s.state = dbState{n: n, known: true}
		r.Sync = sync
		return r, err
	case "overwrite", "deleterandom":
		keyOf := func(w *worker, _ int) uint64 { return w.rng.Uint64N(uint64(rangeN)) }
		del := b.name == "deleterandom"
		// These may overwrite or delete YCSB records: load them again when
		// a YCSB workload comes next.
		s.ycsb = nil
		r, err := s.writes(ctx, b, cfg.Num, keyOf, del, false)
		if del || s.state.n == 0 {
			s.state = dbState{n: rangeN, known: false}
		}
		return r, err
	case "readrandom":
		if err := s.needData(b.name); err != nil {
			return Result{}, err
		}
		return s.readRandom(ctx, b, cfg.reads(), false)
	case "seekrandom":
		if err := s.needData(b.name); err != nil {
			return Result{}, err
		}
		return s.readRandom(ctx, b, cfg.reads(), true)
	case "readseq", "readreverse":
		if err := s.needData(b.name); err != nil {
			return Result{}, err
		}
		return s.scanAll(ctx, b, b.name == "readreverse")
	}
	return Result{}, fmt.Errorf("%w: unknown benchmark %q", ErrUsage, b.name)
}

func (s *session) needData(name string) error {
	if s.state.known && s.state.n == 0 {
		return fmt.Errorf("%w: %s needs data: put a fill before it (e.g. -benchmarks fillseq,%s) or use -dir with -use_existing_db", ErrUsage, name, name)
	}
	return nil
}

// writes runs n writes (sets, or deletes if del) shared by the threads in
// contiguous parts, in groups of cfg.Batch; keyOf gives the key number of
// write i.
func (s *session) writes(ctx context.Context, b *benchRun, n int, keyOf func(w *worker, i int) uint64, del, sync bool) (Result, error) {
	cfg := s.cfg
	wo := &logkv.WriteOptions{Sync: sync}
	b.expected = int64(n)
	op := "write"
	if del {
		op = "delete"
	}
	perOp := cfg.KeySize
	if !del {
		perOp += cfg.ValueSize
	}
	plans := make([]*keyPlan, cfg.Threads)
	setup := func(w *worker) error {
		w.hist(op)
		if planFits(n, cfg.KeySize) {
			lo, hi := share(n, cfg.Threads, w.id)
			plans[w.id] = newKeyPlan(hi-lo, cfg.KeySize, func(j int) uint64 { return keyOf(w, lo+j) })
		}
		return nil
	}
	t, err := runWorkers(ctx, b, setup, func(ctx context.Context, w *worker) error {
		h := w.hist(op)
		lo, hi := share(n, cfg.Threads, w.id)
		plan := plans[w.id]
		// keyAt is write i's key number and key: from the plan, or drawn
		// and formatted now when the plan would not fit in memory.
		keyAt := func(i int) (uint64, []byte) {
			if plan != nil {
				return plan.nums[i-lo], plan.key(i - lo)
			}
			k := keyOf(w, i)
			w.kbuf = appendKey(w.kbuf[:0], k, cfg.KeySize)
			return k, w.kbuf
		}
		var batch logkv.Batch
		for i := lo; i < hi; {
			if (i-lo)&255 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if cfg.Batch == 1 {
				k, key := keyAt(i)
				var err error
				var d time.Duration
				if del {
					t0 := w.clock()
					err = s.db.Delete(key, wo)
					d = w.since(t0)
				} else {
					v := w.vals.value(k)
					t0 := w.clock()
					err = s.db.Set(key, v, wo)
					d = w.since(t0)
				}
				if err != nil {
					return err
				}
				w.did1(h, d, perOp)
				i++
				continue
			}
			batch.Reset()
			end := min(i+cfg.Batch, hi)
			for j := i; j < end; j++ {
				k, key := keyAt(j)
				if del {
					batch.Delete(key)
				} else {
					batch.Set(key, w.vals.value(k))
				}
			}
			t0 := w.clock()
			err := s.db.Apply(&batch, wo)
			d := w.since(t0)
			if err != nil {
				return err
			}
			w.did(h, d, end-i, perOp*(end-i))
			i = end
		}
		return nil
	})
	return b.dbResult(t, op, false), err
}

// dbResult turns a db_bench benchmark's tally into its one Result.
func (b *benchRun) dbResult(t tally, op string, verify bool) Result {
	h := t.hists[op]
	lat := Latency{}
	if h != nil {
		lat = summarize(h)
	}
	r := b.result(t, "all", t.ops[op], t.bytes, lat)
	r.Found, r.NotFound, r.BadValues = t.found, t.notFound, t.bad
	r.Errors = t.bad
	if verify {
		r.Errors += t.notFound
	}
	return r
}

// readRandom runs n Gets (or SeekGEs, if seek) of uniformly random keys
// within the state's range.
func (s *session) readRandom(ctx context.Context, b *benchRun, n int, seek bool) (Result, error) {
	cfg := s.cfg
	rangeN := uint64(s.state.n)
	known := s.state.known
	b.expected = int64(n)
	op := "read"
	if seek {
		op = "seek"
	}
	its := make([]logkv.Iterator, cfg.Threads)
	plans := make([]*keyPlan, cfg.Threads)
	setup := func(w *worker) error {
		w.hist(op)
		if planFits(n, cfg.KeySize) {
			lo, hi := share(n, cfg.Threads, w.id)
			plans[w.id] = newKeyPlan(hi-lo, cfg.KeySize, func(int) uint64 { return w.rng.Uint64N(rangeN) })
		}
		if !seek {
			return nil
		}
		it, err := s.db.NewIter(nil)
		its[w.id] = it
		return err
	}
	t, err := runWorkers(ctx, b, setup, func(ctx context.Context, w *worker) (err error) {
		h := w.hist(op)
		it := its[w.id]
		if it != nil {
			defer func() {
				if cerr := it.Close(); err == nil {
					err = cerr
				}
			}()
		}
		lo, hi := share(n, cfg.Threads, w.id)
		plan := plans[w.id]
		for i := lo; i < hi; i++ {
			if (i-lo)&255 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			var k uint64
			var key []byte
			if plan != nil {
				k, key = plan.nums[i-lo], plan.key(i-lo)
			} else {
				k = w.rng.Uint64N(rangeN)
				w.kbuf = appendKey(w.kbuf[:0], k, cfg.KeySize)
				key = w.kbuf
			}
			var v []byte
			found := false
			t0 := w.clock()
			if seek {
				if it.SeekGE(key) && bytes.Equal(it.Key(), key) {
					v, found = it.Value(), true
				}
			} else {
				var gerr error
				v, gerr = s.db.Get(key)
				switch {
				case gerr == nil:
					found = true
				case !errors.Is(gerr, logkv.ErrNotFound):
					return gerr
				}
			}
			d := w.since(t0)
			if seek && it.Error() != nil {
				return it.Error()
			}
			moved := cfg.KeySize
			if found {
				w.found++
				moved += len(v)
				if !w.vals.check(v, k) {
					w.bad++
				}
			} else {
				w.notFound++
			}
			w.did1(h, d, moved)
		}
		return nil
	})
	return b.dbResult(t, op, known), err
}

// scanAll reads the whole database with iterators, forwards or backwards,
// each thread its own contiguous key range, checking order and, while the
// key set is known, that every key is there with its value.
func (s *session) scanAll(ctx context.Context, b *benchRun, reverse bool) (Result, error) {
	cfg := s.cfg
	rangeN := s.state.n
	known := s.state.known
	b.expected = int64(rangeN)
	op := "scan"
	its := make([]logkv.Iterator, cfg.Threads)
	setup := func(w *worker) error {
		w.hist(op)
		lo, hi := share(rangeN, cfg.Threads, w.id)
		o := &logkv.IterOptions{}
		if w.id > 0 {
			o.LowerBound = appendKey(nil, uint64(lo), cfg.KeySize)
		}
		if w.id < cfg.Threads-1 {
			o.UpperBound = appendKey(nil, uint64(hi), cfg.KeySize)
		}
		it, err := s.db.NewIter(o)
		its[w.id] = it
		return err
	}
	t, err := runWorkers(ctx, b, setup, func(ctx context.Context, w *worker) (err error) {
		h := w.hist(op)
		it := its[w.id]
		defer func() {
			if cerr := it.Close(); err == nil {
				err = cerr
			}
		}()
		lo, hi := share(rangeN, cfg.Threads, w.id)
		// A step is the cheapest operation kvbench times (tens of
		// nanoseconds on the fastest engines, as much as two clock
		// reads), so steps are sampled more sparsely than other
		// operations: see scanSampleEvery.
		smp := newSampler(b.scanSampleEvery(), w.smp.x^0x5ca4)
		// The step's tallies stay in locals until the scan ends: the
		// loop is the driver's cost on every step.
		var prev []byte
		var seen, moved int64
		var ok bool
		if smp.timed() {
			t0 := time.Since(w.base)
			ok = position(it, reverse)
			record(h.hist, time.Since(w.base)-t0)
		} else {
			ok = position(it, reverse)
		}
		want := uint64(lo)
		if reverse {
			want = uint64(hi - 1)
		}
		if known {
			w.kbuf = appendKey(w.kbuf[:0], want, cfg.KeySize)
		}
		// Everything the loop reads on every step is a local: the
		// values, the expected key and the error count.
		vals, size, kbuf := w.vals, w.vals.size, w.kbuf
		var bad int64
		for ok {
			key, v := it.Key(), it.Value()
			if known {
				// What a step checks in the timed loop is what costs
				// a nanosecond or two: the key is the one expected
				// (which checks order, gaps and the key's format),
				// the value has its length, and one value in
				// scanCheckEvery, chosen by key number, is compared
				// whole. verifyScan compares every value after the
				// timer stops. The expected key steps by one in place
				// (a carry or borrow of a digit or two) rather than
				// being formatted anew, formatting being the fallback
				// at the edges.
				if !sameKey(key, kbuf) || len(v) != size || (vals.checked(want) && !vals.check(v, want)) {
					bad++
				}
				if reverse {
					want--
				} else {
					want++
				}
				if !stepKey(kbuf, !reverse) {
					kbuf = appendKey(kbuf[:0], want, cfg.KeySize)
				}
			} else {
				if prev != nil && (bytes.Compare(key, prev) >= 0) == reverse {
					bad++ // out of order
				}
				prev = append(prev[:0], key...)
			}
			seen++
			moved += int64(len(key) + len(v))
			if seen&255 == 0 {
				w.done.Add(256)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			// An untimed step calls Next or Prev itself rather
			// than through step, which is not inlined here: the
			// direction's branch is predicted, and a method value
			// would add a wrapper's call.
			if smp.timed() {
				t0 := time.Since(w.base)
				ok = step(it, reverse)
				record(h.hist, time.Since(w.base)-t0)
			} else if reverse {
				ok = it.Prev()
			} else {
				ok = it.Next()
			}
		}
		w.kbuf = kbuf
		w.bad += bad
		h.ops += seen
		h.bytes += moved
		w.pending += seen & 255
		if err := it.Error(); err != nil {
			return err
		}
		if known {
			w.found += seen
			if n := int64(hi - lo); seen < n {
				w.notFound += n - seen
			} else if seen > n {
				w.bad += seen - n
			}
		}
		return nil
	})
	if err == nil && known {
		missing, bad, verr := s.verifyScan(ctx, rangeN, reverse)
		if verr != nil {
			return b.dbResult(t, op, known), verr
		}
		// Both passes read the same data, and this one compares every
		// value, so it sees what the timed one saw and more; the timed
		// one's counts stand when they are higher (an engine that
		// answers differently twice).
		if missing > t.notFound {
			t.found -= missing - t.notFound
			t.notFound = missing
		}
		t.bad = max(t.bad, bad)
	}
	return b.dbResult(t, op, known), err
}

// verifyScan reads the whole key set 0..n-1 once more after a scan's timer
// has stopped, in the scan's direction, and compares every key and every
// value with what was written: the check the timed loop leaves to one value
// in scanCheckEvery. It returns the keys missing and the keys wrong (a wrong
// value, or a key out of place or in excess). Its time is in no figure: the
// scans it follows are the cheapest benchmarks, so it adds little to a
// run's wall time.
func (s *session) verifyScan(ctx context.Context, n int, reverse bool) (missing, bad int64, err error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := it.Close(); err == nil {
			err = cerr
		}
	}()
	width := s.cfg.KeySize
	var want []byte
	var seen int64
	for ok := position(it, reverse); ok; ok = step(it, reverse) {
		// The key expected at this step is the seen-th from the start
		// (or from the end): as in the timed loop, a key missing or in
		// excess puts every later one out of place, and counts them.
		num := uint64(seen)
		if reverse {
			num = uint64(int64(n) - 1 - seen)
		}
		seen++
		if seen&4095 == 0 && ctx.Err() != nil {
			return missing, bad, ctx.Err() // also ends an engine that never stops
		}
		if seen > int64(n) {
			bad++ // more keys than were written
			continue
		}
		want = appendKey(want[:0], num, width)
		if !bytes.Equal(it.Key(), want) || !s.values.check(it.Value(), num) {
			bad++
		}
	}
	if err := it.Error(); err != nil {
		return missing, bad, err
	}
	if seen < int64(n) {
		missing = int64(n) - seen
	}
	return missing, bad, nil
}

// position puts a scan's iterator on its first key: the first, or the last
// for a reverse scan.
func position(it logkv.Iterator, reverse bool) bool {
	if reverse {
		return it.Last()
	}
	return it.First()
}

// step moves a scan's iterator to its next key.
func step(it logkv.Iterator, reverse bool) bool {
	if reverse {
		return it.Prev()
	}
	return it.Next()
}

// sameKey is bytes.Equal with the default 16-byte keys compared inline, as
// two words: a scan compares every key it reads with the one expected, and
// the call bytes.Equal makes is a tenth of the fastest engines' step.
func sameKey(a, b []byte) bool {
	if len(a) == 16 && len(b) == 16 {
		return binary.LittleEndian.Uint64(a) == binary.LittleEndian.Uint64(b) &&
			binary.LittleEndian.Uint64(a[8:]) == binary.LittleEndian.Uint64(b[8:])
	}
	return bytes.Equal(a, b)
}
