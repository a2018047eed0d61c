package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/logkv/logkv"
)

// Request distributions of the YCSB workloads (Config.Distribution).
const (
	DistZipfian = "zipfian"
	DistUniform = "uniform"
	DistLatest  = "latest"
)

// YCSB operation types, as reported in Result.Op.
const (
	OpRead   = "read"
	OpUpdate = "update"
	OpInsert = "insert"
	OpScan   = "scan"
	OpRMW    = "rmw"
)

// opKind is a YCSB operation type as the run loop handles it: an index into
// opNames and into each worker's tallies, so choosing and recording an
// operation compares no strings and looks nothing up.
type opKind uint8

const (
	opRead opKind = iota
	opUpdate
	opInsert
	opScan
	opRMW
	numOps
)

// opNames are the operation types' names, by opKind.
var opNames = [numOps]string{OpRead, OpUpdate, OpInsert, OpScan, OpRMW}

// workload is a YCSB core workload: the proportions of each operation type
// and the default request distribution.
type workload struct {
	read, update, insert, scan, rmw float64
	dist                            string
}

// workloads are YCSB's core workloads A to F (workloads/workloada..f).
var workloads = map[string]workload{
	"ycsb-a": {read: 0.5, update: 0.5, dist: DistZipfian},   // update heavy (session store)
	"ycsb-b": {read: 0.95, update: 0.05, dist: DistZipfian}, // read mostly (photo tagging)
	"ycsb-c": {read: 1, dist: DistZipfian},                  // read only (user profile cache)
	"ycsb-d": {read: 0.95, insert: 0.05, dist: DistLatest},  // read latest (status updates)
	"ycsb-e": {scan: 0.95, insert: 0.05, dist: DistZipfian}, // short ranges (threaded conversations)
	"ycsb-f": {read: 0.5, rmw: 0.5, dist: DistZipfian},      // read-modify-write (user database)
}

// choose maps u in [0, 1) to an operation type by the workload's proportions.
func (w workload) choose(u float64) opKind {
	switch {
	case u < w.read:
		return opRead
	case u < w.read+w.update:
		return opUpdate
	case u < w.read+w.update+w.insert:
		return opInsert
	case u < w.read+w.update+w.insert+w.scan:
		return opScan
	}
	return opRMW
}

// ycsbState is the YCSB records in a session's database: record i (0 <= i <
// acked limit) has the key ycsbKeys.at(i), and every value names that key.
type ycsbState struct {
	keys permutation
	ack  *ackCounter
}

// ycsbKeys is the bijection from record numbers to key numbers: YCSB's
// "hashed" insert order (keys scattered over the key space, so inserts do not
// all land at its end) without the collisions of a hash. Key numbers are
// below 10^min(KeySize, 18), so they fit the key width.
func ycsbKeys(cfg *Config) permutation {
	return newPermutation(pow10(min(cfg.KeySize, 18)), cfg.Seed^0x79637362)
}

// runYCSB loads the records if the session has none yet, then runs the
// workload's run phase. It returns the load's result (if it loaded), the run's
// total ("all") and one result per operation type.
func (s *session) runYCSB(ctx context.Context, b *benchRun) ([]Result, error) {
	cfg := s.cfg
	wl := workloads[b.name]
	dist := wl.dist
	if cfg.Distribution != "" {
		dist = cfg.Distribution
	}
	var out []Result
	if s.ycsb == nil {
		keys := ycsbKeys(cfg)
		if uint64(cfg.Num) > keys.n {
			return nil, fmt.Errorf("%w: -key_size %d holds at most %d records", ErrUsage, cfg.KeySize, keys.n)
		}
		load := *b
		load.name = "ycsb-load"
		r, err := s.writes(ctx, &load, cfg.Num, func(_ *worker, i int) uint64 { return keys.at(uint64(i)) }, false, false)
		if err != nil {
			return nil, err
		}
		r.Op = OpInsert
		r.Records = int64(cfg.Num)
		out = append(out, r)
		s.ycsb = &ycsbState{keys: keys, ack: newAckCounter(uint64(cfg.Num))}
		// The db_bench key set is no longer what the database holds.
		s.state = dbState{n: max(s.state.n, cfg.Num), known: false}
	}
	run, err := s.ycsbRun(ctx, b, wl, dist)
	if err != nil {
		return out, err
	}
	return append(out, run...), nil
}

// ycsbRun is the run phase: cfg.Ops operations (or cfg.Duration of them)
// shared by the threads, each drawing its operation type and record.
func (s *session) ycsbRun(ctx context.Context, b *benchRun, wl workload, dist string) ([]Result, error) {
	cfg := s.cfg
	st := s.ycsb
	ops := cfg.Ops
	if ops == 0 {
		ops = cfg.Num
	}
	timed := cfg.Duration > 0
	if timed {
		b.duration = cfg.Duration
	} else {
		b.expected = int64(ops)
	}
	startRecords := st.ack.limit.Load()
	// As YCSB: the zipfian key chooser spans the records plus twice the
	// inserts expected, and draws past the acknowledged ones are redrawn.
	zipfItems := startRecords + uint64(float64(ops)*wl.insert*2)
	var zetaLatest float64
	if dist == DistLatest {
		zetaLatest = zeta(startRecords, cfg.ZipfConstant) // once, not per worker
	}
	choosers := make([]chooser, cfg.Threads)
	setup := func(w *worker) error {
		choosers[w.id] = newChooser(dist, startRecords, zipfItems, cfg.ZipfConstant, zetaLatest)
		return nil
	}
	t, err := runWorkers(ctx, b, setup, func(ctx context.Context, w *worker) error {
		c := choosers[w.id]
		choose := func() uint64 { return c.next(w.rng, st.ack.limit.Load()) }
		lo, hi := share(ops, cfg.Threads, w.id)
		end := time.Now().Add(cfg.Duration)
		// The tallies by operation type, made on first use so that a type
		// the workload never draws has none.
		var stats [numOps]*opStat
		for i := lo; timed || i < hi; i++ {
			if i&255 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			op := wl.choose(w.rng.Float64())
			d, n, err := s.ycsbOp(w, op, choose)
			if err != nil {
				return fmt.Errorf("%s: %w", opNames[op], err)
			}
			st := stats[op]
			if st == nil {
				st = w.hist(opNames[op])
				stats[op] = st
			}
			w.did(st, d, 1, n)
			if timed && i&15 == 0 && time.Now().After(end) {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	all := newHist()
	var total int64
	for _, op := range t.order {
		all.Merge(t.hists[op])
		total += t.ops[op]
	}
	params := func(r Result) Result {
		r.Distribution = dist
		r.Records = int64(st.ack.limit.Load())
		return r
	}
	r := params(b.result(t, "all", total, t.bytes, summarize(all)))
	r.Found, r.NotFound, r.BadValues = t.found, t.notFound, t.bad
	r.Errors = t.notFound + t.bad
	out := []Result{r}
	for _, op := range sortedOps(t.hists) {
		out = append(out, params(b.result(t, op, t.ops[op], t.opBytes[op], summarize(t.hists[op]))))
	}
	return out, nil
}

// ycsbOp does one operation and returns its latency and the bytes it moved.
// Reads verify: every record chosen is below the acknowledged limit, so it
// must be there, with a value naming its key.
func (s *session) ycsbOp(w *worker, op opKind, choose func() uint64) (time.Duration, int, error) {
	cfg := s.cfg
	st := s.ycsb
	key := func(rec uint64) uint64 {
		k := st.keys.at(rec)
		w.kbuf = appendKey(w.kbuf[:0], k, cfg.KeySize)
		return k
	}
	check := func(v []byte, err error, k uint64) error {
		switch {
		case err == nil:
			w.found++
			if !w.vals.check(v, k) {
				w.bad++
			}
		case errors.Is(err, logkv.ErrNotFound):
			w.notFound++
		default:
			return err
		}
		return nil
	}
	kv := cfg.KeySize + cfg.ValueSize
	switch op {
	case opRead:
		k := key(choose())
		t0 := w.clock()
		v, err := s.db.Get(w.kbuf)
		d := since(t0)
		return d, kv, check(v, err, k)
	case opUpdate:
		k := key(choose())
		v := w.vals.value(k)
		t0 := w.clock()
		err := s.db.Set(w.kbuf, v, nil)
		return since(t0), kv, err
	case opInsert:
		rec := st.ack.take()
		if rec >= st.keys.n {
			return 0, 0, fmt.Errorf("%w: -key_size %d holds no more than %d records", ErrUsage, cfg.KeySize, st.keys.n)
		}
		k := key(rec)
		v := w.vals.value(k)
		t0 := w.clock()
		err := s.db.Set(w.kbuf, v, nil)
		d := since(t0)
		if err == nil {
			st.ack.ack(rec)
		}
		return d, kv, err
	case opRMW:
		k := key(choose())
		t0 := w.clock()
		v, err := s.db.Get(w.kbuf)
		if err := check(v, err, k); err != nil {
			return 0, 0, err
		}
		nv := w.vals.value(k)
		err = s.db.Set(w.kbuf, nv, nil)
		return since(t0), 2 * kv, err
	case opScan:
		k := key(choose())
		length := 1 + w.rng.IntN(cfg.MaxScanLength)
		n := 0
		t0 := w.clock()
		it, err := s.db.NewIter(nil)
		if err != nil {
			return 0, 0, err
		}
		ok := it.SeekGE(w.kbuf)
		if ok && bytes.Equal(it.Key(), w.kbuf) {
			w.found++
			if !w.vals.check(it.Value(), k) {
				w.bad++
			}
		} else {
			w.notFound++
		}
		for i := 0; ok && i < length; i++ {
			n += len(it.Key()) + len(it.Value())
			if i+1 < length {
				ok = it.Next()
			}
		}
		err = it.Close()
		return since(t0), n, err
	}
	return 0, 0, fmt.Errorf("unknown operation %d", op)
}
