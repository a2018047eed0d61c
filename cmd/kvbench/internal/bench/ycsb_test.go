package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// TestYCSBWorkloads runs every workload on every test engine and checks the
// load, the operation counts and their mix, and that every read found its
// record.
func TestYCSBWorkloads(t *testing.T) {
	const ops = 4000
	for _, engine := range testEngines() {
		for _, threads := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/threads=%d", engine, threads), func(t *testing.T) {
				cfg := testConfig(engine)
				cfg.Benchmarks = YCSBWorkloads
				cfg.Ops = ops
				cfg.Threads = threads
				res, out := runCfg(t, cfg)
				require.Equal(t, "ycsb-load", res[0].Benchmark, out)
				require.Equal(t, int64(cfg.Num), res[0].Ops)
				byName := map[string]map[string]Result{}
				for _, r := range res[1:] {
					if byName[r.Benchmark] == nil {
						byName[r.Benchmark] = map[string]Result{}
					}
					byName[r.Benchmark][r.Op] = r
				}
				records := int64(cfg.Num)
				for _, name := range YCSBWorkloads {
					wl := workloads[name]
					rs := byName[name]
					all := rs["all"]
					require.Equal(t, int64(ops), all.Ops, name)
					require.Zero(t, all.Errors, "%s: %+v", name, all)
					require.Zero(t, all.NotFound, name)
					var sum int64
					for op, r := range rs {
						if op == "all" {
							continue
						}
						sum += r.Ops
						require.Positive(t, r.P50, "%s/%s", name, op)
						require.GreaterOrEqual(t, r.Max, r.P999, "%s/%s", name, op)
					}
					require.Equal(t, all.Ops, sum, name)
					for op, p := range map[string]float64{OpRead: wl.read, OpUpdate: wl.update, OpInsert: wl.insert, OpScan: wl.scan, OpRMW: wl.rmw} {
						got := float64(rs[op].Ops) / ops
						require.InDelta(t, p, got, 0.03, "%s/%s", name, op)
					}
					records += rs[OpInsert].Ops
					require.Equal(t, records, all.Records, name)
					wantDist := wl.dist
					require.Equal(t, wantDist, all.Distribution, name)
				}
			})
		}
	}
}

func TestYCSBDurationAndDistributions(t *testing.T) {
	for _, dist := range []string{DistZipfian, DistUniform, DistLatest} {
		cfg := testConfig("benchfake")
		cfg.Benchmarks = []string{"ycsb-d", "ycsb-e"}
		cfg.Distribution = dist
		cfg.Duration = 20_000_000 // 20ms
		cfg.Threads = 2
		res, _ := runCfg(t, cfg)
		for _, r := range res[1:] {
			require.Positive(t, r.Ops, dist)
			require.Zero(t, r.Errors, dist)
			require.Equal(t, dist, r.Distribution)
		}
	}
}

// TestYCSBAfterDBBench: a YCSB load over a db_bench fill leaves the db_bench
// key set unknown, so a later readseq does not report errors; a db_bench
// write makes YCSB load again.
func TestYCSBAfterDBBench(t *testing.T) {
	cfg := testConfig("benchfake")
	cfg.Benchmarks = []string{"fillseq", "ycsb-c", "readseq", "overwrite", "ycsb-c"}
	cfg.Ops = 500
	res, _ := runCfg(t, cfg)
	var names []string
	for _, r := range res {
		require.Zero(t, r.Errors, r.Benchmark)
		if r.Op == "all" || r.Benchmark == "ycsb-load" {
			names = append(names, r.Benchmark)
		}
	}
	require.Equal(t, []string{"fillseq", "ycsb-load", "ycsb-c", "readseq", "overwrite", "ycsb-load", "ycsb-c"}, names)
	for _, r := range res {
		if r.Benchmark == "readseq" {
			require.Equal(t, int64(2*cfg.Num), r.Ops) // both key sets
		}
	}
}

func TestWorkloadMix(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const draws = 10_000
	for _, name := range YCSBWorkloads {
		wl := workloads[name]
		count := map[string]int{}
		for range draws {
			count[opNames[wl.choose(r.Float64())]]++
		}
		for op, p := range map[string]float64{OpRead: wl.read, OpUpdate: wl.update, OpInsert: wl.insert, OpScan: wl.scan, OpRMW: wl.rmw} {
			require.InDelta(t, p, float64(count[op])/draws, 0.02, "%s/%s", name, op)
		}
	}
}

func TestZeta(t *testing.T) {
	// Exact below the switch-over, and YCSB's hard-coded zeta(10^10, 0.99)
	// from the Euler-Maclaurin tail.
	require.InDelta(t, 1+math.Pow(2, -0.99)+math.Pow(3, -0.99), zeta(3, 0.99), 1e-12)
	require.InDelta(t, scrambledZetan, zeta(scrambledItems, 0.99), 1e-6)
	require.InDelta(t, zetaRange(0, 300_000, 0.5), zeta(300_000, 0.5), 1e-6)
}

// topShare returns the fraction of draws that went to the most drawn
// fraction frac of the n keys.
func topShare(counts []int, frac float64, draws int) float64 {
	s := slices.Clone(counts)
	slices.SortFunc(s, func(a, b int) int { return b - a })
	top := 0
	for _, c := range s[:int(float64(len(s))*frac)] {
		top += c
	}
	return float64(top) / float64(draws)
}

func TestZipfianIsSkewed(t *testing.T) {
	const n, draws = 10_000, 200_000
	r := rand.New(rand.NewPCG(3, 4))
	z := newZipfian(n, 0.99)
	counts := make([]int, n)
	for range draws {
		counts[z.next(r)]++
	}
	// Theory: the top 1% of items (the 100 most popular) receive
	// zeta(100)/zeta(10000) of the requests, about 52%.
	want := zeta(n/100, 0.99) / zeta(n, 0.99)
	require.InDelta(t, 0.52, want, 0.01)
	got := topShare(counts, 0.01, draws)
	require.InDelta(t, want, got, 0.03)
	// Item 0 is the most popular, with 1/zeta(n) of the draws.
	require.InDelta(t, 1/zeta(n, 0.99), float64(counts[0])/draws, 0.01)

	// Scrambled, as YCSB: the popularity follows a zipfian over 10^10 items,
	// hashed onto the keys, so the 100 hottest items alone give the top 1% of
	// keys zeta(100)/zeta(10^10) (about 19%) and the long tail, spread evenly,
	// adds about 1% of the rest. Far more than 1% either way.
	s := newScrambledZipfian(n, 0.99)
	clear(counts)
	for range draws {
		counts[s.next(r)]++
	}
	head := zeta(n/100, 0.99) / scrambledZetan
	wantS := head + 0.01*(1-head)
	gotS := topShare(counts, 0.01, draws)
	require.InDelta(t, wantS, gotS, 0.03)
	require.Greater(t, gotS, 10*0.01)
}

func TestLatestFavoursRecent(t *testing.T) {
	const draws = 100_000
	r := rand.New(rand.NewPCG(5, 6))
	limit := uint64(10_000)
	l := newChooser(DistLatest, limit, limit, 0.99, 0)
	newest := 0
	for range draws {
		k := l.next(r, limit)
		require.Less(t, k, limit)
		if k >= limit-100 {
			newest++
		}
	}
	// The newest 1% get what the zipfian's top 1% get.
	want := zeta(100, 0.99) / zeta(limit, 0.99)
	require.InDelta(t, want, float64(newest)/draws, 0.03)

	// After inserts, the new records are the favourites.
	limit += 5000
	hits := 0
	for range draws {
		if l.next(r, limit) >= limit-100 {
			hits++
		}
	}
	require.InDelta(t, zeta(100, 0.99)/zeta(limit, 0.99), float64(hits)/draws, 0.03)
}

func TestUniformIsFlat(t *testing.T) {
	// A chi-squared test over 100 buckets of the records (99 degrees of
	// freedom: the 99.9% critical value is 148.2).
	const n, buckets, draws = 10_000, 100, 100_000
	chi2 := func(c chooser, seed uint64) float64 {
		r := rand.New(rand.NewPCG(seed, 8))
		counts := make([]int, buckets)
		for range draws {
			counts[c.next(r, n)*buckets/n]++
		}
		exp := float64(draws) / buckets
		chi := 0.0
		for _, c := range counts {
			chi += (float64(c) - exp) * (float64(c) - exp) / exp
		}
		return chi
	}
	require.Less(t, chi2(newChooser(DistUniform, n, n, 0.99, 0), 1), 148.2)
	// The test can fail: the skewed choosers fail it.
	require.Greater(t, chi2(newChooser(DistLatest, n, n, 0.99, 0), 2), 148.2)
	require.Greater(t, chi2(plainZipfian{newZipfian(n, 0.99)}, 3), 148.2)
}

// plainZipfian is the unscrambled zipfian as a chooser.
type plainZipfian struct{ z *zipfian }

func (c plainZipfian) next(r *rand.Rand, limit uint64) uint64 { return c.z.next(r) }

// TestZipfianChooserRedraws: records past the limit (not inserted yet) are
// never chosen, and the skew holds among those that are.
func TestZipfianChooserRedraws(t *testing.T) {
	const n, limit, draws = 20_000, 10_000, 100_000
	c := newChooser(DistZipfian, limit, n, 0.99, 0)
	r := rand.New(rand.NewPCG(9, 10))
	counts := make([]int, limit)
	for range draws {
		k := c.next(r, limit)
		require.Less(t, k, uint64(limit))
		counts[k]++
	}
	require.Greater(t, topShare(counts, 0.01, draws), 0.10)
}

func TestAckCounter(t *testing.T) {
	a := newAckCounter(10)
	var wg sync.WaitGroup
	taken := make(chan uint64, 100)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				n := a.take()
				taken <- n
				a.ack(n)
			}
		}()
	}
	wg.Wait()
	close(taken)
	seen := map[uint64]bool{}
	for n := range taken {
		require.False(t, seen[n])
		seen[n] = true
	}
	require.Len(t, seen, 100)
	require.Equal(t, uint64(110), a.limit.Load())

	b := newAckCounter(0)
	x, y := b.take(), b.take()
	b.ack(y)
	require.Equal(t, uint64(0), b.limit.Load()) // 0 not done yet
	b.ack(x)
	require.Equal(t, uint64(2), b.limit.Load())
}

// The zipfian draw computes b^alpha as exp(alpha*ln b); it must draw the items
// math.Pow would, give or take one at a rounding boundary, over YCSB's 10^10
// items.
func TestZipfianMatchesPow(t *testing.T) {
	z := newZipfianZeta(scrambledItems, 0.99, scrambledZetan)
	r1, r2 := rand.New(rand.NewPCG(3, 4)), rand.New(rand.NewPCG(3, 4))
	differ := 0
	for range 200_000 {
		got := z.next(r1)
		u := r2.Float64()
		want := uint64(0)
		switch uz := u * z.zetan; {
		case uz < 1:
		case uz < 1+math.Pow(0.5, z.theta):
			want = 1
		default:
			want = min(uint64(float64(z.items)*math.Pow(z.eta*u-z.eta+1, z.alpha)), z.items-1)
		}
		if got != want {
			differ++
			require.InDelta(t, float64(want), float64(got), 1, "u=%v", u)
		}
	}
	require.Less(t, differ, 20)
}

// A planned draw past the records of the start is used if it has been
// inserted by the time its operation runs and redrawn if not, as a live draw
// would be; draws below the start come from the plan's keys.
func TestYCSBPlanTargets(t *testing.T) {
	keys := newPermutation(1_000_000, 9)
	st := &ycsbState{keys: keys, ack: newAckCounter(100), width: 16}
	w := &worker{rng: rand.New(rand.NewPCG(1, 2))}
	p := &ycsbPlan{ops: []opKind{opRead, opInsert, opUpdate, opScan}, recs: []uint64{5, 0, 150, 150}, start: 100}
	p.keys = newKeyPlan(4, 16, func(i int) uint64 { return keys.at(p.recs[i] % 100) })
	redrawn := 0
	choose := func() uint64 { redrawn++; return 7 }

	op, k, key := p.target(w, 0, st, choose)
	require.Equal(t, opRead, op)
	require.Equal(t, keys.at(5), k)
	require.Equal(t, fmt.Sprintf("%016d", k), string(key))
	op, _, key = p.target(w, 1, st, choose)
	require.Equal(t, opInsert, op)
	require.Nil(t, key)

	// Record 150 is not inserted yet: redrawn.
	_, k, key = p.target(w, 2, st, choose)
	require.Equal(t, 1, redrawn)
	require.Equal(t, keys.at(7), k)
	require.Equal(t, fmt.Sprintf("%016d", k), string(key))

	// Once it is, the planned draw stands.
	for rec := uint64(100); rec <= 150; rec++ {
		st.ack.ack(rec)
	}
	_, k, key = p.target(w, 3, st, choose)
	require.Equal(t, 1, redrawn)
	require.Equal(t, keys.at(150), k)
	require.Equal(t, fmt.Sprintf("%016d", k), string(key))
}

// A latest plan draws, for one thread, exactly what the live loop would:
// the same operation types and records from the same random stream, each
// record relative to the records acknowledged by then (the start plus the
// thread's own inserts). When the acknowledged count is not the one the plan
// assumed, target draws live.
func TestLatestPlanMatchesLiveDraws(t *testing.T) {
	const start, n = 1000, 5000
	wl := workloads["ycsb-d"]
	keys := newPermutation(1_000_000, 9)
	newLatest := func() *latest {
		return newChooser(DistLatest, start, start, 0.99, 0).(*latest)
	}
	w := &worker{rng: rand.New(rand.NewPCG(3, 4))}
	p := newLatestPlan(w, wl, newLatest(), keys, start, n, 16)

	live := newLatest()
	r := rand.New(rand.NewPCG(3, 4))
	st := &ycsbState{keys: keys, ack: newAckCounter(start), width: 16}
	choose := func() uint64 { t.Fatal("a draw was made live"); return 0 }
	inserts := 0
	for i := range n {
		op := wl.choose(r.Float64())
		require.Equal(t, op, p.ops[i], "op %d", i)
		if op == opInsert {
			st.ack.ack(st.ack.take())
			inserts++
			continue
		}
		rec := live.next(r, st.ack.limit.Load())
		gotOp, k, key := p.target(w, i, st, choose)
		require.Equal(t, op, gotOp)
		require.Equal(t, keys.at(rec), k, "op %d", i)
		require.Equal(t, fmt.Sprintf("%016d", k), string(key))
	}
	require.Greater(t, inserts, 100)

	// Another thread's insert moves the acknowledged count: drawn live.
	st.ack.ack(st.ack.take())
	i := slices.IndexFunc(p.ops, func(op opKind) bool { return op != opInsert })
	drawn := 0
	_, k, _ := p.target(w, i, st, func() uint64 { drawn++; return 42 })
	require.Equal(t, 1, drawn)
	require.Equal(t, keys.at(42), k)
}

// TestYCSBStretchTallies runs every workload timing every operation (each
// through ycsbNext) and one in 16 (most of them in ycsbStretch's untimed
// loop): with one thread both do the same operations on the same records
// in the same order, so every tally must agree, operation type by type.
func TestYCSBStretchTallies(t *testing.T) {
	for _, engine := range []string{NoopEngine, "memory"} {
		t.Run(engine, func(t *testing.T) {
			tallies := map[int]map[string]Result{}
			for _, every := range []int{1, 16} {
				cfg := testConfig(engine)
				cfg.Benchmarks = YCSBWorkloads
				cfg.Ops = 3000
				cfg.LatencyEvery = every
				res, _ := runCfg(t, cfg)
				tallies[every] = map[string]Result{}
				for _, r := range res {
					tallies[every][r.Benchmark+"/"+r.Op] = r
				}
			}
			require.Len(t, tallies[16], len(tallies[1]))
			kv := int64(16 + 100)
			for name, a := range tallies[1] {
				b := tallies[16][name]
				require.Equal(t, a.Ops, b.Ops, name)
				require.Equal(t, a.Bytes, b.Bytes, name)
				require.Equal(t, a.Found, b.Found, name)
				require.Zero(t, b.Errors, name)
				switch a.Op {
				case OpRead, OpUpdate, OpInsert:
					require.Equal(t, a.Ops*kv, b.Bytes, name)
				case OpRMW:
					require.Equal(t, 2*a.Ops*kv, b.Bytes, name)
				}
			}
		})
	}
}

// TestYCSBVerificationCatchesWrongValue runs each workload that reads on
// a store whose Gets return another key's value: every read, timed or
// not, must count a bad value.
func TestYCSBVerificationCatchesWrongValue(t *testing.T) {
	registerWrongStore.Do(func() {
		RegisterStore("benchstorewrong", func(string) (Store, error) { return wrongStore{&noopStore{}}, nil })
	})
	for _, name := range []string{"ycsb-a", "ycsb-b", "ycsb-c", "ycsb-d", "ycsb-f"} {
		cfg := testConfig("benchstorewrong")
		cfg.Benchmarks = []string{name}
		cfg.Ops = 3000
		res, err := Run(context.Background(), cfg, io.Discard, io.Discard)
		require.ErrorIs(t, err, ErrVerify, name)
		all := res[1]
		require.Equal(t, "all", all.Op, name)
		require.Positive(t, all.Found, name)
		require.Equal(t, all.Found, all.BadValues, name)
		require.Equal(t, all.BadValues, all.Errors, name)
	}
}

// plannedInsert writes the record it takes, under that record's key and
// with its value, and acknowledges it: the record the plan expected when
// no other thread inserted since, and another, its key made then, when one
// did (the plan's key would then be another record's).
func TestPlannedInsert(t *testing.T) {
	const start, n = 1000, 400
	cfg := testConfig("memory")
	db, err := OpenStore("memory", t.TempDir())
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	keys := newPermutation(1_000_000, 9)
	st := &ycsbState{keys: keys, ack: newAckCounter(start), width: cfg.KeySize}
	vals := newValueSource(cfg.ValueSize, 1, 5)
	s := &session{cfg: &cfg, db: db, ycsb: st, values: vals}
	w := &worker{rng: rand.New(rand.NewPCG(3, 4)), vals: vals}
	p := newLatestPlan(w, workloads["ycsb-d"], newChooser(DistLatest, start, start, 0.99, 0).(*latest), keys, start, n, cfg.KeySize)
	var ins []int
	for i, op := range p.ops {
		if op == opInsert {
			ins = append(ins, i)
		}
	}
	require.Greater(t, len(ins), 4)
	read := func(rec uint64) {
		t.Helper()
		k := keys.at(rec)
		v, err := db.Get(appendKey(nil, k, cfg.KeySize))
		require.NoError(t, err, "record %d", rec)
		require.True(t, vals.check(v, k), "record %d's value", rec)
	}
	// The plan's first inserts, as one thread makes them.
	for _, i := range ins[:2] {
		require.True(t, p.direct(i, st.ack))
		require.NoError(t, s.plannedInsert(w, p, i))
		read(p.limits[i])
		require.Equal(t, p.limits[i]+1, st.ack.limit.Load())
	}
	// Another thread takes the next record (and has not acknowledged it):
	// the plan's next insert is not direct, and if made anyway it writes
	// the record it took, not the planned one.
	other := st.ack.take()
	i := ins[2]
	require.Equal(t, other, p.limits[i])
	require.False(t, p.direct(i, st.ack))
	require.NoError(t, s.plannedInsert(w, p, i))
	read(other + 1)
	_, err = db.Get(appendKey(nil, keys.at(other), cfg.KeySize))
	require.ErrorIs(t, err, logkv.ErrNotFound, "the planned record is the other thread's to write")
	require.Equal(t, other, st.ack.limit.Load(), "acknowledged up to the other thread's record")
	st.ack.ack(other)
	require.Equal(t, other+2, st.ack.limit.Load())
}

// within runs f in a goroutine and fails the test if it has not returned
// after d: the hangs these tests look for do not watch a context.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still running after %v", what, d)
	}
}

// YCSB D whose inserts outgrow -key_size fails with ErrUsage, promptly, for
// every seed: a latest plan stops before its count reaches the key space
// (seed 5's once walked forever in permutation.at, past the key space).
func TestYCSBDPastKeySize(t *testing.T) {
	for _, c := range []struct {
		seed    uint64
		threads int
	}{{1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}, {6, 1}, {7, 1}, {5, 2}, {5, 3}} {
		cfg := testConfig(NoopEngine)
		cfg.Benchmarks = []string{"ycsb-d"}
		cfg.KeySize = 4
		cfg.Num = 9000
		cfg.Ops = 100_000
		cfg.Seed = c.seed
		cfg.Threads = c.threads
		what := fmt.Sprintf("seed %d, %d threads", c.seed, c.threads)
		var err error
		within(t, time.Minute, what, func() { _, err = Run(context.Background(), cfg, io.Discard, io.Discard) })
		require.ErrorIs(t, err, ErrUsage, what)
		require.ErrorContains(t, err, "-key_size 4 holds no more than 10000 records", what)
	}
}

// A latest plan stops before the first operation drawn for as many records
// as the key space holds, and what it planned is what a plan with room
// plans; the run does the rest live. Run with the most operations that
// insert no record past the key space: every operation is done and counted
// (those past the plan's end too), and the run ends with the key space
// full.
func TestLatestPlanStopsAtKeySpace(t *testing.T) {
	const start, n, space = 1000, 5000, 1100
	wl := workloads["ycsb-d"]
	plan := func(keys permutation) *ycsbPlan {
		w := &worker{rng: rand.New(rand.NewPCG(3, 4))}
		var p *ycsbPlan
		within(t, time.Minute, "newLatestPlan", func() {
			p = newLatestPlan(w, wl, newChooser(DistLatest, start, start, 0.99, 0).(*latest), keys, start, n, 16)
		})
		return p
	}
	p := plan(newPermutation(space, 9))
	roomy := plan(newPermutation(1_000_000, 9))
	m := len(p.ops)
	require.Less(t, m, n)
	require.Len(t, p.recs, m)
	require.Len(t, p.limits, m)
	require.Len(t, p.keys.nums, m)
	require.Equal(t, roomy.ops[:m], p.ops)
	require.Equal(t, roomy.recs[:m], p.recs)
	require.Equal(t, roomy.limits[:m], p.limits)
	require.Equal(t, uint64(space), roomy.limits[m], "stopped at the first operation at the key space")
	for i := range m {
		require.Less(t, p.limits[i], uint64(space))
	}

	// The whole run: the largest -ops that succeeds (the inserts in a
	// prefix of the operations do not depend on how many follow).
	cfg := testConfig(NoopEngine)
	cfg.Benchmarks = []string{"ycsb-d"}
	cfg.KeySize = 4
	cfg.Num = 9000
	run := func(ops int) ([]Result, error) {
		cfg.Ops = ops
		var res []Result
		var err error
		within(t, time.Minute, fmt.Sprintf("-ops %d", ops), func() { res, err = Run(context.Background(), cfg, io.Discard, io.Discard) })
		return res, err
	}
	lo, hi := 1000, 100_000 // lo succeeds, hi does not
	_, err := run(hi)
	require.ErrorIs(t, err, ErrUsage)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if _, err := run(mid); err == nil {
			lo = mid
		} else {
			require.ErrorIs(t, err, ErrUsage)
			hi = mid
		}
	}
	res, err := run(lo)
	require.NoError(t, err)
	all := res[1]
	require.Equal(t, "all", all.Op)
	require.Equal(t, int64(lo), all.Ops)
	require.Equal(t, int64(10_000), all.Records)
	require.Zero(t, all.Errors)
	var reads, inserts int64
	for _, r := range res[2:] {
		switch r.Op {
		case OpRead:
			reads = r.Ops
		case OpInsert:
			inserts = r.Ops
		}
	}
	require.Equal(t, int64(1000), inserts)
	require.Equal(t, all.Ops, reads+inserts)
}
