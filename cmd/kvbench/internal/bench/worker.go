package bench

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// worker is one goroutine of a benchmark. Its histograms and counters are its
// own; they are merged when all workers are done.
type worker struct {
	id    int
	rng   *rand.Rand
	stats map[string]*opStat // by operation name

	// smp chooses the operations to time (see sampler): one in
	// Config.LatencyEvery, at random.
	smp sampler
	// pending counts operations not yet added to done: progress is
	// published every progressEvery operations, not on each.
	pending int64

	// Verification counts: keys found and missing, values that do not belong
	// to their key, keys out of order.
	found, notFound, bad int64

	done *atomic.Int64 // progress: operations done so far
	// base is the worker's time origin: clock readings are durations since
	// it. time.Since of a Time with a monotonic reading reads only the
	// monotonic clock, about half the cost of time.Now (which reads the wall
	// clock too); a sampled operation reads the clock twice.
	base time.Time
	kbuf []byte
	vals *valueSource // the run's values: the value of key number n is vals.value(n)
}

// opStat is one worker's tally of one kind of operation. The driver loops
// hold a pointer to it, so recording an operation looks nothing up.
type opStat struct {
	hist  *hdrhistogram.Histogram
	ops   int64
	bytes int64
}

// hist returns the tally of operation op, creating it. Benchmarks create
// their tallies in their setup, before the timer starts: a histogram is a
// few hundred KiB to allocate and zero, which would otherwise be charged to
// the first operation (tens of microseconds: more than a short benchmark's
// whole driver cost).
func (w *worker) hist(op string) *opStat {
	st, ok := w.stats[op]
	if !ok {
		st = &opStat{hist: newHist()}
		w.stats[op] = st
	}
	return st
}

// progressEvery is how many operations a worker does between publishing its
// count for the progress line: an atomic add per operation would cost as
// much as the fastest engines' steps.
const progressEvery = 64

// alwaysTimed is how many operations each worker times before it samples:
// a short benchmark (fillsync of a few writes, a YCSB workload's rare
// inserts) still gets latencies, and a long one is not skewed by 64.
const alwaysTimed = 64

// clock returns the time to measure an operation from (since the worker's
// base), or -1 when this operation is not sampled (see sampler).
// Its untimed path (a decrement) is inlined into the driver loops; the
// timed one is a call.
func (w *worker) clock() time.Duration {
	if w.smp.skip > 0 {
		w.smp.skip--
		return -1
	}
	return w.clockTimed()
}

//go:noinline
func (w *worker) clockTimed() time.Duration {
	w.smp.draw()
	return time.Since(w.base)
}

// since is the latency of an operation started at t0 from clock, or -1 when
// it was not sampled.
func (w *worker) since(t0 time.Duration) time.Duration {
	if t0 < 0 {
		return -1
	}
	return time.Since(w.base) - t0
}

// did records count operations (one call: one latency d, -1 if not timed)
// that moved n bytes.
func (w *worker) did(st *opStat, d time.Duration, count int, n int) {
	st.ops += int64(count)
	st.bytes += int64(n)
	w.pending += int64(count)
	if d >= 0 || w.pending >= progressEvery {
		w.recordAndPublish(st, d)
	}
}

// did1 is did of one operation, small enough to be inlined into the driver
// loops (cost 77 of the compiler's 80; check with go build -gcflags=-m=2
// after changing it): the call is taken only by a timed operation, which
// also publishes progress when progressEvery operations are pending. So a
// worker publishes at its first timed operation after every progressEvery
// (one in Config.LatencyEvery is timed, so within a few dozen operations
// more, and every operation of the first alwaysTimed); did's second test,
// pending >= progressEvery, took did1 to cost 82, and the call that then
// was not inlined cost every write and read about a nanosecond.
func (w *worker) did1(st *opStat, d time.Duration, n int) {
	st.ops++
	st.bytes += int64(n)
	w.pending++
	if d >= 0 {
		w.recordAndPublish(st, d)
	}
}

// recordAndPublish records latency d (if >= 0) and publishes progress when
// progressEvery operations are pending.
//
//go:noinline
func (w *worker) recordAndPublish(st *opStat, d time.Duration) {
	if d >= 0 {
		record(st.hist, d)
	}
	if w.pending >= progressEvery {
		w.done.Add(w.pending)
		w.pending = 0
	}
}

// share returns worker id's contiguous part [lo, hi) of n items split among
// threads; the first n%threads workers take one more.
func share(n, threads, id int) (lo, hi int) {
	q, r := n/threads, n%threads
	lo = id*q + min(id, r)
	hi = lo + q
	if id < r {
		hi++
	}
	return lo, hi
}

// tally is the merged outcome of one benchmark's workers.
type tally struct {
	elapsed              time.Duration
	cpu                  time.Duration // process CPU time over elapsed
	hists                map[string]*hdrhistogram.Histogram
	ops                  map[string]int64
	opBytes              map[string]int64
	order                []string // operation names in first-seen order
	bytes                int64
	found, notFound, bad int64
}

// runWorkers runs fn on threads goroutines, each after its setup, and times
// them from the moment all are set up to the moment the last returns. The
// first error of any worker is returned after all have stopped; ctx is
// cancelled for the others when one fails.
func runWorkers(ctx context.Context, b *benchRun, setup func(w *worker) error, fn func(ctx context.Context, w *worker) error) (tally, error) {
	threads := b.cfg.Threads
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := make([]*worker, threads)
	counters := make([]paddedCounter, threads)
	for i := range workers {
		workers[i] = &worker{
			id:    i,
			rng:   rand.New(rand.NewPCG(b.cfg.Seed, uint64(b.index)<<32|uint64(i))),
			stats: map[string]*opStat{},
			smp:   newSampler(b.sampleEvery(), splitmix(b.cfg.Seed^uint64(b.index)<<32^uint64(i))),
			done:  &counters[i].n,
			vals:  b.values,
			base:  time.Now(),
		}
	}
	var (
		ready, finished sync.WaitGroup
		start           = make(chan struct{})
		errMu           sync.Mutex
		firstErr        error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	ready.Add(threads)
	finished.Add(threads)
	for _, w := range workers {
		go func() {
			defer finished.Done()
			var err error
			if setup != nil {
				err = setup(w)
			}
			ready.Done()
			<-start
			if err == nil {
				err = fn(ctx, w)
			}
			w.done.Add(w.pending)
			if err != nil {
				fail(err)
			}
		}()
	}
	ready.Wait()
	// Collect the garbage earlier benchmarks and engines left, so that its
	// collection is not charged to this one's time and CPU.
	runtime.GC()
	stop := b.progress.start(b.label(), b.expected, b.duration, counters)
	cpu0, t0 := ProcessCPU(), time.Now()
	close(start)
	finished.Wait()
	elapsed := time.Since(t0)
	cpu := ProcessCPU() - cpu0
	stop()

	t := tally{elapsed: elapsed, cpu: cpu, hists: map[string]*hdrhistogram.Histogram{}, ops: map[string]int64{}, opBytes: map[string]int64{}}
	for _, w := range workers {
		for _, op := range sortedOps(w.stats) {
			if w.stats[op].ops == 0 {
				continue // made in setup for an operation this worker never drew
			}
			h, ok := t.hists[op]
			if !ok {
				h = newHist()
				t.hists[op] = h
				t.order = append(t.order, op)
			}
			h.Merge(w.stats[op].hist)
			t.ops[op] += w.stats[op].ops
			t.opBytes[op] += w.stats[op].bytes
			t.bytes += w.stats[op].bytes
		}
		t.found += w.found
		t.notFound += w.notFound
		t.bad += w.bad
	}
	return t, firstErr
}

// paddedCounter keeps each worker's progress counter on its own cache line.
type paddedCounter struct {
	n atomic.Int64
	_ [56]byte
}
