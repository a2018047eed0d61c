package bench

import (
	"bytes"
	"context"
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
		s.setState(dbState{n: n, known: true})
		r.Sync = sync
		return r, err
	case "overwrite", "deleterandom":
		keyOf := func(w *worker, _ int) uint64 { return w.rng.Uint64N(uint64(rangeN)) }
		del := b.name == "deleterandom"
		// These may overwrite or delete YCSB records: load them again when
		// a YCSB workload comes next.
		s.ycsb = nil
		r, err := s.writes(ctx, b, cfg.Num, keyOf, del, false)
		// The key set stays known only when overwrite rewrote keys of a
		// known set; after YCSB, keys 0..rangeN-1 are what a driven Store
		// holds again.
		s.setState(dbState{n: rangeN, known: s.state.known && !del && s.state.n != 0})
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
			if !del {
				plans[w.id].withValues(w.vals)
			}
		}
		return nil
	}
	t, err := runWorkers(ctx, b, setup, func(ctx context.Context, w *worker) error {
		h := w.hist(op)
		lo, hi := share(n, cfg.Threads, w.id)
		plan := plans[w.id]
		if plan != nil && cfg.Batch == 1 {
			return s.plannedWrites(ctx, w, h, plan, del, wo, perOp)
		}
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

// plannedWrites runs a worker's writes of one key each from its plan: the
// writes the sampler lets pass untimed in a loop that does nothing else
// (writeRun), then one timed, and the tallies once per run.
func (s *session) plannedWrites(ctx context.Context, w *worker, h *opStat, plan *keyPlan, del bool, wo *logkv.WriteOptions, perOp int) error {
	n := len(plan.nums)
	checked := 0 // the write at which ctx was last checked
	for i := 0; i < n; {
		run := min(w.smp.skip, n-i)
		if err := writeRun(s.db, plan, i, run, del, wo); err != nil {
			return err
		}
		w.smp.skip -= run
		i += run
		h.ops += int64(run)
		h.bytes += int64(run * perOp)
		w.pending += int64(run)
		if i == n {
			break
		}
		var err error
		t0 := w.clock()
		if del {
			err = s.db.Delete(plan.key(i), wo)
		} else {
			err = s.db.Set(plan.key(i), plan.value(i), wo)
		}
		d := w.since(t0)
		if err != nil {
			return err
		}
		w.did1(h, d, perOp)
		i++
		if err := checkEvery(ctx, i, &checked); err != nil {
			return err
		}
	}
	return nil
}

// checkEvery returns ctx's error when 256 operations or more were done
// since the last check (at operation *checked, set to i then), else nil: a
// loop checks its context now and then, not at every operation.
func checkEvery(ctx context.Context, i int, checked *int) error {
	if i-*checked < 256 {
		return nil
	}
	*checked = i
	return ctx.Err()
}

// writeRun writes keys i..i+n-1 of plan, untimed: Set with each key's
// value, or Delete. Not inlined on purpose, as scanRun.
//
//go:noinline
func writeRun(db Store, plan *keyPlan, i, n int, del bool, wo *logkv.WriteOptions) error {
	if del {
		for j := i; j < i+n; j++ {
			if err := db.Delete(plan.key(j), wo); err != nil {
				return err
			}
		}
		return nil
	}
	for j := i; j < i+n; j++ {
		if err := db.Set(plan.key(j), plan.value(j), wo); err != nil {
			return err
		}
	}
	return nil
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
		if plan := plans[w.id]; plan != nil {
			return s.plannedReads(ctx, w, h, plan, it)
		}
		for i := lo; i < hi; i++ {
			if (i-lo)&255 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			k := w.rng.Uint64N(rangeN)
			w.kbuf = appendKey(w.kbuf[:0], k, cfg.KeySize)
			if err := s.readOne(w, h, it, k, w.kbuf); err != nil {
				return err
			}
		}
		return nil
	})
	return b.dbResult(t, op, known), err
}

// readOne does one read of readrandom (a Get of key, number k) or of
// seekrandom (it.SeekGE(key), it non-nil), timed if the sampler says so,
// and verifies and counts what it found.
func (s *session) readOne(w *worker, h *opStat, it logkv.Iterator, k uint64, key []byte) error {
	var v []byte
	found, at := false, false
	t0 := w.clock()
	if it != nil {
		if at = it.SeekGE(key); at && sameKey(it.Key(), key) {
			v, found = it.Value(), true
		}
	} else {
		var err error
		v, err = s.db.Get(key)
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, logkv.ErrNotFound):
			return err
		}
	}
	d := w.since(t0)
	// An iterator that met an error returns false from every positioning
	// method (logkv.Iterator's contract), so a seek that landed has none
	// to report: Error is asked after a miss only, a dynamic call a seek
	// less (a fifteenth of noop's seekrandom).
	if it != nil && !at && it.Error() != nil {
		return it.Error()
	}
	moved := s.cfg.KeySize
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
	return nil
}

// plannedReads runs a worker's reads (seeks, it non-nil) from its plan, as
// plannedWrites runs writes: the reads the sampler lets pass untimed in a
// loop that does nothing else (readRun), verifying each as readOne does,
// then one through readOne, timed, and the tallies once per run.
func (s *session) plannedReads(ctx context.Context, w *worker, h *opStat, plan *keyPlan, it logkv.Iterator) error {
	n := len(plan.nums)
	checked := 0 // the read at which ctx was last checked
	for i := 0; i < n; {
		run := min(w.smp.skip, n-i)
		r, err := readRun(s.db, it, w.vals, plan, i, run)
		if err != nil {
			return err
		}
		w.found += r.found
		w.notFound += int64(run) - r.found
		w.bad += r.bad
		w.smp.skip -= run
		i += run
		h.ops += int64(run)
		h.bytes += int64(run*s.cfg.KeySize) + r.bytes
		w.pending += int64(run)
		if i == n {
			break
		}
		if err := s.readOne(w, h, it, plan.nums[i], plan.key(i)); err != nil {
			return err
		}
		i++
		if err := checkEvery(ctx, i, &checked); err != nil {
			return err
		}
	}
	return nil
}

// readTally is what a readRun found: reads that found their key, values
// that were not their key's, value bytes read.
type readTally struct {
	found, bad, bytes int64
}

// readRun reads keys i..i+n-1 of plan, untimed: a Get of each, or, it
// non-nil, a SeekGE that must land on the key, each value compared with
// the one its key number must have, as readOne does. Not inlined on
// purpose, as scanRun.
//
//go:noinline
func readRun(db Store, it logkv.Iterator, vals *valueSource, plan *keyPlan, i, n int) (r readTally, err error) {
	if it != nil {
		for j := i; j < i+n; j++ {
			key := plan.key(j)
			if !it.SeekGE(key) {
				if err := it.Error(); err != nil {
					return r, err
				}
				continue
			}
			if !sameKey(it.Key(), key) {
				continue
			}
			v := it.Value()
			r.found++
			r.bytes += int64(len(v))
			if !vals.check(v, plan.nums[j]) {
				r.bad++
			}
		}
		return r, nil
	}
	for j := i; j < i+n; j++ {
		v, err := db.Get(plan.key(j))
		if err != nil {
			if !errors.Is(err, logkv.ErrNotFound) {
				return r, err
			}
			continue
		}
		r.found++
		r.bytes += int64(len(v))
		if !vals.check(v, plan.nums[j]) {
			r.bad++
		}
	}
	return r, nil
}

// scanAll reads the whole database with iterators, forwards or backwards,
// each thread its own contiguous key range, Config.ScanPasses times over
// with the same iterator. The timed loop only moves the iterator and reads
// each key's and value's length (db_bench's loop, with the lengths summed
// for MB/s); what it reads is checked afterwards, untimed (verifyScan).
func (s *session) scanAll(ctx context.Context, b *benchRun, reverse bool) (Result, error) {
	cfg := s.cfg
	rangeN := s.state.n
	known := s.state.known
	passes := cfg.scanPasses()
	b.expected = int64(rangeN) * int64(passes)
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
		run, _ := it.(ScanRunner) // nil: scanRun's loop
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
		var seen, moved, published int64
		for range passes {
			var ok bool
			if smp.timed() {
				t0 := time.Since(w.base)
				ok = position(it, reverse)
				record(h.hist, time.Since(w.base)-t0)
			} else {
				ok = position(it, reverse)
			}
			for ok {
				// The steps the sampler lets pass untimed run in a
				// loop of their own that does nothing else, then
				// one step is timed.
				var done int
				var m int64
				done, m, ok = runSteps(it, run, smp.skip, reverse)
				smp.skip -= done
				seen += int64(done)
				moved += m
				if !ok {
					break // the skip left carries into the next pass
				}
				moved += int64(len(it.Key()) + len(it.Value()))
				seen++
				smp.draw()
				t0 := time.Since(w.base)
				ok = step(it, reverse)
				record(h.hist, time.Since(w.base)-t0)
				if seen-published >= 256 {
					w.done.Add(seen - published)
					published = seen
					if ctx.Err() != nil {
						return ctx.Err()
					}
				}
			}
			if err := it.Error(); err != nil {
				return err
			}
		}
		h.ops += seen
		h.bytes += moved
		w.pending += seen - published
		if known {
			// Counts and lengths are checked here, for free: a key
			// missing or in excess, or a key or value of the wrong
			// length anywhere in the timed passes. Which key, and
			// every byte, verifyScan checks.
			w.found += seen
			if n := int64(hi-lo) * int64(passes); seen < n {
				w.notFound += n - seen
			} else if seen > n {
				w.bad += seen - n
			}
			if moved != seen*int64(cfg.KeySize+cfg.ValueSize) {
				w.bad++
			}
		}
		return nil
	})
	if err == nil {
		missing, bad, verr := s.verifyScan(ctx, rangeN, reverse, known)
		if verr != nil {
			return b.dbResult(t, op, known), verr
		}
		if known {
			// The timed passes read the data passes times; this pass
			// reads it once and compares every key and value, so it
			// sees what one timed pass saw and more. The timed
			// passes' counts stand when they are higher (an engine
			// that answers differently twice).
			if missing > t.notFound {
				t.found -= missing - t.notFound
				t.notFound = missing
			}
		}
		t.bad = max(t.bad, bad)
	}
	return b.dbResult(t, op, known), err
}

// scanRun reads the key and value lengths at it's position and moves it,
// n times or until it is exhausted: the untimed steps of a scan, in a loop
// that does nothing else (what db_bench's readseq does on every step), for
// an iterator that is not a ScanRunner (which runs this loop itself). It
// returns the steps made, the key and value bytes read, and whether it is
// still positioned (true when n is 0). Not inlined on purpose: inside
// scanAll's loop, whose variables take the registers, the loop's counters
// would live on the stack.
//
//go:noinline
func scanRun(it logkv.Iterator, n int, reverse bool) (done int, bytes int64, ok bool) {
	ok = true
	if reverse {
		for ; done < n && ok; done++ {
			bytes += int64(len(it.Key()) + len(it.Value()))
			ok = it.Prev()
		}
		return done, bytes, ok
	}
	for ; done < n && ok; done++ {
		bytes += int64(len(it.Key()) + len(it.Value()))
		ok = it.Next()
	}
	return done, bytes, ok
}

// verifyScan reads the database once more after a scan's timer has
// stopped, in the scan's direction, and checks what the timed loop leaves
// to it. While the key set is known (keys 0..n-1) it compares every key and
// every value with what was written and returns the keys missing and the
// keys wrong (a wrong value, or a key out of place or in excess); otherwise
// it checks only that the keys come in order, and returns those that do
// not as wrong. Its time is in no figure: the scans it follows are the
// cheapest benchmarks, so it adds little to a run's wall time.
func (s *session) verifyScan(ctx context.Context, n int, reverse, known bool) (missing, bad int64, err error) {
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
	var want, prev []byte
	var seen int64
	for ok := position(it, reverse); ok; ok = step(it, reverse) {
		seen++
		if seen&4095 == 0 && ctx.Err() != nil {
			return missing, bad, ctx.Err() // also ends an engine that never stops
		}
		if !known {
			if prev != nil && (bytes.Compare(it.Key(), prev) >= 0) == reverse {
				bad++ // out of order
			}
			prev = append(prev[:0], it.Key()...)
			continue
		}
		// The key expected at this step is the seen-th from the start
		// (or from the end): a key missing or in excess puts every
		// later one out of place, and counts them.
		num := uint64(seen - 1)
		if reverse {
			num = uint64(int64(n) - seen)
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
	if known && seen < int64(n) {
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
