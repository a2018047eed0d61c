package bench

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// worker is one goroutine of a benchmark. Its histograms and counters are its
// own; they are merged when all workers are done.
type worker struct {
	id      int
	rng     *rand.Rand
	hists   map[string]*hdrhistogram.Histogram // by operation name
	ops     map[string]int64
	opBytes map[string]int64
	bytes   int64

	// Verification counts: keys found and missing, values that do not belong
	// to their key, keys out of order.
	found, notFound, bad int64

	done *atomic.Int64 // progress: operations done so far
	kbuf []byte
	vals *valueCursor
}

// hist returns the histogram of operation op, creating it.
func (w *worker) hist(op string) *hdrhistogram.Histogram {
	h, ok := w.hists[op]
	if !ok {
		h = newHist()
		w.hists[op] = h
	}
	return h
}

// did records one operation of kind op that took d and moved n bytes.
func (w *worker) did(h *hdrhistogram.Histogram, op string, d time.Duration, count int, n int) {
	record(h, d)
	w.ops[op] += int64(count)
	w.opBytes[op] += int64(n)
	w.bytes += int64(n)
	w.done.Add(int64(count))
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
			id:      i,
			rng:     rand.New(rand.NewPCG(b.cfg.Seed, uint64(b.index)<<32|uint64(i))),
			hists:   map[string]*hdrhistogram.Histogram{},
			ops:     map[string]int64{},
			opBytes: map[string]int64{},
			done:    &counters[i].n,
			vals:    b.values.cursor(i + b.index*threads),
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
			if err != nil {
				fail(err)
			}
		}()
	}
	ready.Wait()
	stop := b.progress.start(b.label(), b.expected, b.duration, counters)
	t0 := time.Now()
	close(start)
	finished.Wait()
	elapsed := time.Since(t0)
	stop()

	t := tally{elapsed: elapsed, hists: map[string]*hdrhistogram.Histogram{}, ops: map[string]int64{}, opBytes: map[string]int64{}}
	for _, w := range workers {
		for _, op := range sortedOps(w.hists) {
			h, ok := t.hists[op]
			if !ok {
				h = newHist()
				t.hists[op] = h
				t.order = append(t.order, op)
			}
			h.Merge(w.hists[op])
			t.ops[op] += w.ops[op]
			t.opBytes[op] += w.opBytes[op]
		}
		t.bytes += w.bytes
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
