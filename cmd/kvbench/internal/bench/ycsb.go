package bench

import (
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

// shares returns the workload's proportion of each operation type.
func (w workload) shares() [numOps]float64 {
	return [numOps]float64{opRead: w.read, opUpdate: w.update, opInsert: w.insert, opScan: w.scan, opRMW: w.rmw}
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
	keys  permutation
	ack   *ackCounter
	width int // key size
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
		s.ycsb = &ycsbState{keys: keys, ack: newAckCounter(uint64(cfg.Num)), width: cfg.KeySize}
		// The db_bench key set is no longer what the database holds.
		s.state = dbState{n: max(s.state.n, cfg.Num), known: false}
		// A driven Store answers for every record of the key space.
		s.hold(keys.n)
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
	plans := make([]*ycsbPlan, cfg.Threads)
	setup := func(w *worker) error {
		for op, p := range wl.shares() {
			if p > 0 {
				w.hist(opNames[op])
			}
		}
		c := newChooser(dist, startRecords, zipfItems, cfg.ZipfConstant, zetaLatest)
		choosers[w.id] = c
		lo, hi := share(ops, cfg.Threads, w.id)
		switch c := c.(type) {
		case zipfianChooser:
			if !timed && planFits(ops, cfg.KeySize+9) {
				plans[w.id] = newYCSBPlan(w, wl, c, st.keys, startRecords, hi-lo, cfg.KeySize)
			}
		case *latest:
			if !timed && planFits(ops, cfg.KeySize+17) {
				// A chooser of its own: the plan grows its zipfian to
				// the records the plan expects, and the live chooser
				// must grow only with the records that exist.
				lc := newChooser(dist, startRecords, zipfItems, cfg.ZipfConstant, zetaLatest).(*latest)
				plans[w.id] = newLatestPlan(w, wl, lc, st.keys, startRecords, hi-lo, cfg.KeySize)
			}
		}
		return nil
	}
	t, err := runWorkers(ctx, b, setup, func(ctx context.Context, w *worker) error {
		c := choosers[w.id]
		choose := func() uint64 { return c.next(w.rng, st.ack.limit.Load()) }
		// The tallies by operation type, made on first use so that a type
		// the workload never draws has none.
		var stats [numOps]*opStat
		lo, hi := share(ops, cfg.Threads, w.id)
		if plan := plans[w.id]; plan != nil {
			if err := s.ycsbPlanned(ctx, w, wl, plan, &stats, choose); err != nil {
				return err
			}
			// A plan may stop short (see newLatestPlan): the rest live.
			lo += len(plan.ops)
		}
		end := time.Now().Add(cfg.Duration)
		for i := lo; timed || i < hi; i++ {
			if i&255 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if err := s.ycsbNext(w, wl, nil, 0, &stats, choose); err != nil {
				return err
			}
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

// ycsbPlanned runs a worker's planned operations, as plannedWrites runs
// writes: the operations the sampler lets pass untimed run in a loop that
// does nothing else (ycsbStretch) as long as each is direct (see
// ycsbPlan.direct), then one through ycsbNext, timed or not (an operation
// ycsbStretch left to it, untimed, when it stopped early), and the tallies are
// added once per run.
func (s *session) ycsbPlanned(ctx context.Context, w *worker, wl workload, plan *ycsbPlan, stats *[numOps]*opStat, choose func() uint64) error {
	n := len(plan.ops)
	var counts [numOps]opCount
	defer func() {
		for op, c := range counts {
			if c.ops > 0 {
				st := w.stat(stats, opKind(op))
				st.ops += c.ops
				st.bytes += c.bytes
			}
		}
	}()
	checked := 0 // the operation at which ctx was last checked
	for j := 0; j < n; {
		done, err := s.ycsbStretch(w, plan, j, min(w.smp.skip, n-j), &counts)
		w.smp.skip -= done
		w.pending += int64(done)
		j += done
		if err != nil {
			return err
		}
		if j == n {
			break
		}
		if err := s.ycsbNext(w, wl, plan, j, stats, choose); err != nil {
			return err
		}
		j++
		if err := checkEvery(ctx, j, &checked); err != nil {
			return err
		}
	}
	return nil
}

// opCount is a tally of operations of one type done in ycsbStretch: how
// many, and the bytes they moved.
type opCount struct{ ops, bytes int64 }

// ycsbStretch runs operations j..j+n-1 of plan, untimed, as ycsbOp does
// them, as long as each is direct (see ycsbPlan.direct): a read (Get,
// verified as ycsbRead verifies), an update (Set), a read-modify-write or
// a scan (ycsbScan) of its planned key, or an insert of the record the plan
// expects it to take (plannedInsert), counted by type in counts. It stops
// at the first that is not (a draw that must be made again, an insert
// whose record another thread may take) and returns how many it did. Not
// inlined on purpose, as scanRun.
//
//go:noinline
func (s *session) ycsbStretch(w *worker, plan *ycsbPlan, j, n int, counts *[numOps]opCount) (int, error) {
	db, ack := s.db, s.ycsb.ack
	kv := s.cfg.KeySize + s.cfg.ValueSize
	for i := j; i < j+n; i++ {
		if !plan.direct(i, ack) {
			return i - j, nil
		}
		op, k, key := plan.ops[i], plan.keys.nums[i], plan.keys.key(i)
		moved := kv
		var err error
		switch op {
		case opRead, opRMW:
			var v []byte
			v, err = db.Get(key)
			if err == nil && w.vals.check(v, k) {
				w.found++ // checkRead's first case, without its call
			} else if err = w.checkRead(v, err, k); err != nil {
				break
			}
			if op == opRMW {
				err = db.Set(key, w.vals.value(k), nil)
				moved = 2 * kv
			}
		case opUpdate:
			err = db.Set(key, w.vals.value(k), nil)
		case opScan:
			moved, err = s.ycsbScan(w, k, key, 1+w.rng.IntN(s.cfg.MaxScanLength))
		case opInsert:
			err = s.plannedInsert(w, plan, i)
		}
		if err != nil {
			return i - j, fmt.Errorf("%s: %w", opNames[op], err)
		}
		counts[op].ops++
		counts[op].bytes += int64(moved)
	}
	return n, nil
}

// ycsbNext does operation j of plan (plan nil: an operation drawn now),
// timed if the sampler says so, and records it in stats.
func (s *session) ycsbNext(w *worker, wl workload, plan *ycsbPlan, j int, stats *[numOps]*opStat, choose func() uint64) error {
	var op opKind
	var k uint64
	var key []byte
	var d time.Duration
	var n int
	var err error
	switch {
	case plan != nil && plan.direct(j, s.ycsb.ack):
		op, k, key = plan.ops[j], plan.keys.nums[j], plan.keys.key(j)
		d, n, err = s.ycsbOp(w, op, k, key)
	case plan != nil:
		op, k, key = plan.target(w, j, s.ycsb, choose)
		d, n, err = s.ycsbOp(w, op, k, key)
	default:
		op = wl.choose(w.rng.Float64())
		if op != opInsert {
			k, key = w.ycsbKey(s.ycsb, choose())
		}
		d, n, err = s.ycsbOp(w, op, k, key)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", opNames[op], err)
	}
	w.did1(w.stat(stats, op), d, n)
	return nil
}

// plannedInsert does insert i of plan, untimed, as ycsbOp does an insert:
// it takes the next record number, writes that record and acknowledges it.
// The record is the one the plan expects (its key planned, and its value's
// key number) unless another thread took records since direct said so,
// when its key is formatted now, as ycsbOp's.
func (s *session) plannedInsert(w *worker, plan *ycsbPlan, i int) error {
	st := s.ycsb
	rec := st.ack.take()
	if rec >= st.keys.n {
		return fmt.Errorf("%w: -key_size %d holds no more than %d records", ErrUsage, s.cfg.KeySize, st.keys.n)
	}
	k, key := plan.keys.nums[i], plan.keys.key(i)
	if rec != plan.limits[i] {
		k, key = w.ycsbKey(st, rec)
	}
	err := s.db.Set(key, w.vals.value(k), nil)
	if err == nil {
		st.ack.ack(rec)
	}
	return err
}

// stat returns the worker's tally of operation type op from stats, made on
// first use.
func (w *worker) stat(stats *[numOps]*opStat, op opKind) *opStat {
	st := stats[op]
	if st == nil {
		st = w.hist(opNames[op])
		stats[op] = st
	}
	return st
}

// ycsbOp does one operation on key (key number k; both unset for an insert,
// which takes the next record) and returns its latency and the bytes it moved.
// Reads verify: every record chosen is below the acknowledged limit, so it
// must be there, with a value naming its key.
func (s *session) ycsbOp(w *worker, op opKind, k uint64, key []byte) (time.Duration, int, error) {
	cfg := s.cfg
	st := s.ycsb
	kv := cfg.KeySize + cfg.ValueSize
	switch op {
	case opRead:
		d, err := s.ycsbRead(w, k, key)
		return d, kv, err
	case opUpdate:
		v := w.vals.value(k)
		t0 := w.clock()
		err := s.db.Set(key, v, nil)
		return w.since(t0), kv, err
	case opInsert:
		rec := st.ack.take()
		if rec >= st.keys.n {
			return 0, 0, fmt.Errorf("%w: -key_size %d holds no more than %d records", ErrUsage, cfg.KeySize, st.keys.n)
		}
		k, key := w.ycsbKey(st, rec)
		v := w.vals.value(k)
		t0 := w.clock()
		err := s.db.Set(key, v, nil)
		d := w.since(t0)
		if err == nil {
			st.ack.ack(rec)
		}
		return d, kv, err
	case opRMW:
		t0 := w.clock()
		v, err := s.db.Get(key)
		if err == nil && w.vals.check(v, k) {
			w.found++ // checkRead's first case, without its call
		} else if err := w.checkRead(v, err, k); err != nil {
			return 0, 0, err
		}
		nv := w.vals.value(k)
		err = s.db.Set(key, nv, nil)
		return w.since(t0), 2 * kv, err
	case opScan:
		length := 1 + w.rng.IntN(cfg.MaxScanLength)
		t0 := w.clock()
		n, err := s.ycsbScan(w, k, key, length)
		return w.since(t0), n, err
	}
	return 0, 0, fmt.Errorf("unknown operation %d", op)
}

// ycsbScan reads length records from key (key number k) on, verifying the
// first, and returns the bytes it read.
func (s *session) ycsbScan(w *worker, k uint64, key []byte, length int) (int, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return 0, err
	}
	n := 0
	ok := it.SeekGE(key)
	if ok && sameKey(it.Key(), key) {
		w.found++
		if !w.vals.check(it.Value(), k) {
			w.bad++
		}
	} else {
		w.notFound++
	}
	if ok {
		n = readRecords(it, length)
	}
	return n, it.Close()
}

// ycsbRead reads key (key number k) and verifies what it read: every record
// chosen is below the acknowledged limit, so it must be there, with a value
// naming its key. It returns the read's latency (-1 if not timed).
func (s *session) ycsbRead(w *worker, k uint64, key []byte) (time.Duration, error) {
	t0 := w.clock()
	v, err := s.db.Get(key)
	d := w.since(t0)
	if err == nil && w.vals.check(v, k) {
		w.found++ // checkRead's first case, without its call
		return d, nil
	}
	return d, w.checkRead(v, err, k)
}

// checkRead counts a read of key number k that returned v and err: found
// with its value, found with another (bad), or missing. Any other error is
// the engine's, returned.
func (w *worker) checkRead(v []byte, err error, k uint64) error {
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

// readRecords reads length records (at least one) from it, positioned at the
// first, or up to its end, calling Key and Value of each as a YCSB client
// reads the record, and returns the bytes read: through the iterator's
// ScanRunner when it has one (the steps between the first record and the
// last), since the interface's three calls a step are kvbench's cost and
// not the engine's. It is not inlined on purpose: inside ycsbOp, whose many
// variables take the registers, the loop kept its counters on the stack
// and loaded and stored them at every step.
//
//go:noinline
func readRecords(it logkv.Iterator, length int) int {
	if run, ok := it.(ScanRunner); ok {
		_, n, ok := run.ScanRun(length-1, false)
		if ok {
			n += int64(len(it.Key()) + len(it.Value()))
		}
		return int(n)
	}
	n := 0
	for {
		n += len(it.Key()) + len(it.Value())
		if length--; length <= 0 || !it.Next() {
			return n
		}
	}
}

// ycsbKey returns the key number and key of record rec, formatted into the
// worker's key buffer.
func (w *worker) ycsbKey(st *ycsbState, rec uint64) (uint64, []byte) {
	k := st.keys.at(rec)
	w.kbuf = appendKey(w.kbuf[:0], k, st.width)
	return k, w.kbuf
}

// ycsbPlan is one worker's run phase drawn before the timer starts, for the
// zipfian distribution (every core workload's but D's): each operation's
// type and, for those that target a record, the scrambled zipfian's draw and
// the key it names. The draw does not depend on how many records exist (the
// chooser redraws those not inserted yet), so drawing ahead changes only
// when the work is done: a draw at or past the records of the start is
// checked against the acknowledged limit when its operation runs, and
// redrawn then if it is not inserted yet, exactly as a live draw would be.
type ycsbPlan struct {
	ops   []opKind
	recs  []uint64
	keys  *keyPlan // the key of recs[i] when recs[i] < start (latest: always)
	start uint64   // records acknowledged when the run began
	// limits, for the latest distribution only: the acknowledged records
	// operation i's draw assumed (see newLatestPlan).
	limits []uint64
}

// newLatestPlan draws a worker's run phase ahead for the latest distribution
// (workload D). A latest draw is relative to the newest record, so it depends
// on how many records are acknowledged when the operation runs; the plan
// assumes that count is the start plus this worker's own inserts before the
// operation, which is exact with one thread (an insert is acknowledged before
// the next operation starts), and draws each record with the chooser grown to
// that count, as a live draw would be. When the operation runs and the
// acknowledged count is another (other threads inserted, or an insert
// failed), target draws live instead. So with one thread every draw is made
// ahead, and with more the distribution is still exactly YCSB's, only drawn
// in the loop.
//
// The plan stops before the first operation whose count reaches the key
// space (keys.n): an insert there has no record left to take (its key would
// be keys.at(keys.n)), and the operations after it would be drawn among
// records that cannot exist. The worker does the rest live, where such an
// insert fails with ErrUsage. So the plan may hold fewer than n operations.
func newLatestPlan(w *worker, wl workload, c *latest, keys permutation, start uint64, n, width int) *ycsbPlan {
	p := &ycsbPlan{ops: make([]opKind, n), recs: make([]uint64, n), limits: make([]uint64, n), start: start}
	limit := start
	for i := range n {
		if limit >= keys.n {
			p.ops, p.recs, p.limits = p.ops[:i], p.recs[:i], p.limits[:i]
			n = i
			break
		}
		p.ops[i] = wl.choose(w.rng.Float64())
		p.limits[i] = limit
		if p.ops[i] == opInsert {
			limit++
			continue
		}
		p.recs[i] = c.next(w.rng, limit)
	}
	p.keys = newKeyPlan(n, width, func(i int) uint64 {
		if p.ops[i] == opInsert {
			// The record an insert takes when no other thread
			// inserted: the one after those acknowledged.
			return keys.at(p.limits[i])
		}
		return keys.at(p.recs[i])
	})
	return p
}

func newYCSBPlan(w *worker, wl workload, c zipfianChooser, keys permutation, start uint64, n, width int) *ycsbPlan {
	p := &ycsbPlan{ops: make([]opKind, n), recs: make([]uint64, n), start: start}
	for i := range n {
		p.ops[i] = wl.choose(w.rng.Float64())
		if p.ops[i] != opInsert {
			p.recs[i] = c.s.next(w.rng)
		}
	}
	p.keys = newKeyPlan(n, width, func(i int) uint64 {
		if p.ops[i] == opInsert || p.recs[i] >= start {
			return 0 // not used: formatted when the operation runs
		}
		return keys.at(p.recs[i])
	})
	return p
}

// direct reports whether operation i's planned key stands as planned: an
// operation other than an insert on a record of the start (zipfian), or
// drawn for as many records as are acknowledged now (latest: every one of
// D's reads with one thread); or an insert of a latest plan when the next
// record to take is the one the plan expects (every one of D's inserts
// with one thread). Its key is then the plan's, as target would return it
// (an insert's is still checked against the record it takes: see
// plannedInsert).
func (p *ycsbPlan) direct(i int, ack *ackCounter) bool {
	switch {
	case p.ops[i] == opInsert:
		return p.limits != nil && p.limits[i] == ack.next.Load()
	case p.limits == nil:
		return p.recs[i] < p.start
	}
	return p.limits[i] == ack.limit.Load()
}

// target returns operation i's type and, unless it is an insert, the key
// number and key it targets.
func (p *ycsbPlan) target(w *worker, i int, st *ycsbState, choose func() uint64) (opKind, uint64, []byte) {
	op := p.ops[i]
	switch rec := p.recs[i]; {
	case op == opInsert:
		return op, 0, nil
	case p.limits != nil:
		if st.ack.limit.Load() == p.limits[i] {
			return op, p.keys.nums[i], p.keys.key(i)
		}
		k, key := w.ycsbKey(st, choose())
		return op, k, key
	case rec < p.start:
		return op, p.keys.nums[i], p.keys.key(i)
	case rec < st.ack.limit.Load():
		k, key := w.ycsbKey(st, rec)
		return op, k, key
	default:
		k, key := w.ycsbKey(st, choose())
		return op, k, key
	}
}
