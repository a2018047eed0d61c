package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// ErrVerify is returned (wrapped) by Run when reads found missing keys or
// wrong values where the benchmark's state says they must be there.
var ErrVerify = errors.New("kvbench: verification failed")

// Run runs cfg: every benchmark on every engine, Rounds times, printing each
// result on stdout as it completes (text, or JSON Lines with cfg.JSON), then
// a ratio table when there are several engines, then the plot if asked. Progress
// goes to stderr. It returns every result (summaries included). Verification
// failures do not stop the run; they are counted in the results and Run then
// returns an error wrapping ErrVerify.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) ([]Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	root := cfg.Dir
	if root == "" {
		d, err := os.MkdirTemp("", "kvbench-")
		if err != nil {
			return nil, err
		}
		root = d
		if cfg.Keep {
			fmt.Fprintf(stderr, "kvbench: keeping %s\n", root)
		} else {
			defer os.RemoveAll(root)
		}
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	out := &emitter{cfg: &cfg, w: stdout}
	if !cfg.JSON {
		fmt.Fprintf(stdout, "kvbench: engines %s; keys %d bytes, values %d bytes (compressibility %g); num %d; threads %d; batch %d; rounds %d; dir %s\n",
			strings.Join(cfg.Engines, ","), cfg.KeySize, cfg.ValueSize, cfg.Compressibility, cfg.Num, cfg.Threads, cfg.Batch, cfg.Rounds, root)
	}
	prog := newProgress(&cfg, stderr)
	values := newValueSource(cfg.ValueSize, cfg.Compressibility, cfg.Seed)
	for round := range cfg.Rounds {
		order := slices.Clone(cfg.Engines)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, name := range order {
			s := &session{cfg: &cfg, engine: name, round: round, dir: filepath.Join(root, name), values: values, progress: prog, out: out}
			if err := s.run(ctx); err != nil {
				return out.results, fmt.Errorf("kvbench: %s: %w", name, err)
			}
		}
	}
	if len(cfg.Engines) > 1 || cfg.Rounds > 1 {
		if err := out.summary(); err != nil {
			return out.results, err
		}
	}
	if cfg.Plot != "" {
		if err := Plot(cfg.Plot, out.results); err != nil {
			return out.results, err
		}
	}
	var bad int64
	for _, r := range out.results {
		if r.Kind == "result" {
			bad += r.Errors
		}
	}
	if bad > 0 {
		return out.results, fmt.Errorf("%w: %d errors (see the results)", ErrVerify, bad)
	}
	return out.results, nil
}

// emitter prints results as they come and keeps them.
type emitter struct {
	cfg     *Config
	w       io.Writer
	results []Result
}

func (e *emitter) emit(r Result) error {
	e.results = append(e.results, r)
	if e.cfg.JSON {
		return writeJSON(e.w, r)
	}
	return writeText(e.w, r)
}

// summary prints, per benchmark and operation, the median ops/s of each
// engine over the rounds and its ratio to the first engine's.
func (e *emitter) summary() error {
	type key struct{ bench, op string }
	var keys []key
	rates := map[key]map[string][]float64{}
	proto := map[key]Result{}
	for _, r := range e.results {
		if r.Kind != "result" {
			continue
		}
		k := key{r.Benchmark, r.Op}
		if rates[k] == nil {
			rates[k] = map[string][]float64{}
			keys = append(keys, k)
			proto[k] = r
		}
		rates[k][r.Engine] = append(rates[k][r.Engine], r.OpsPerSec)
	}
	first := e.cfg.Engines[0]
	if !e.cfg.JSON {
		fmt.Fprintf(e.w, "\nmedian ops/s over %d round(s), ratio to %s:\n%-24s", e.cfg.Rounds, first, "benchmark")
		for _, name := range e.cfg.Engines {
			fmt.Fprintf(e.w, " %22s", name)
		}
		fmt.Fprintln(e.w)
	}
	for _, k := range keys {
		base := median(rates[k][first])
		if !e.cfg.JSON {
			name := k.bench
			if k.op != "all" {
				name += "/" + k.op
			}
			fmt.Fprintf(e.w, "%-24s", name)
		}
		for _, name := range e.cfg.Engines {
			m := median(rates[k][name])
			ratio := 0.0
			if base > 0 {
				ratio = m / base
			}
			s := proto[k]
			s.Kind, s.Engine, s.Round, s.OpsPerSec, s.Ratio = "summary", name, -1, m, ratio
			s.Ops, s.Bytes, s.Seconds, s.MBPerSec, s.Latency = 0, 0, 0, 0, Latency{}
			s.Found, s.NotFound, s.BadValues, s.Errors = 0, 0, 0, 0
			e.results = append(e.results, s)
			if e.cfg.JSON {
				if err := writeJSON(e.w, s); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(e.w, " %12.0f (%6.2fx)", m, ratio)
			}
		}
		if !e.cfg.JSON {
			fmt.Fprintln(e.w)
		}
	}
	if !e.cfg.JSON && slices.Contains(e.cfg.Engines, NoopEngine) && len(e.cfg.Engines) > 1 {
		e.overhead()
	}
	return nil
}

// OverheadRow is kvbench's own cost on one benchmark: the noop engine's
// time per operation (the driver's cost, an upper bound: it includes the
// noop store's own work) and the fastest other engine's, by wall time (the
// median over the rounds) and by process CPU time (the median CPU per
// operation), which a loaded machine disturbs less.
type OverheadRow struct {
	Benchmark string
	// NoopWall and FastestWall are wall nanoseconds per operation;
	// FastestWallEngine is the engine with the least.
	NoopWall, FastestWall float64
	FastestWallEngine     string
	// NoopCPU and FastestCPU are process CPU nanoseconds per operation;
	// FastestCPUEngine is the engine with the least.
	NoopCPU, FastestCPU float64
	FastestCPUEngine    string
}

// WallShare is the noop engine's wall time per operation over the fastest
// engine's, in percent.
func (r OverheadRow) WallShare() float64 { return percent(r.NoopWall, r.FastestWall) }

// CPUShare is the noop engine's CPU time per operation over the fastest
// engine's, in percent: the figure kvbench's target (under 5%) is set on.
func (r OverheadRow) CPUShare() float64 { return percent(r.NoopCPU, r.FastestCPU) }

func percent(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return 100 * a / b
}

// Overhead computes kvbench's own cost per benchmark from the results of a
// run over the noop engine and at least one other (the "all" results), in
// the order the benchmarks first appear. A benchmark without both is left
// out.
func Overhead(results []Result) []OverheadRow {
	type perEngine struct{ wall, cpu map[string][]float64 }
	var order []string
	by := map[string]*perEngine{}
	for _, r := range results {
		if r.Kind != "result" || r.Op != "all" || r.Ops <= 0 || r.Seconds <= 0 {
			continue
		}
		p := by[r.Benchmark]
		if p == nil {
			p = &perEngine{wall: map[string][]float64{}, cpu: map[string][]float64{}}
			by[r.Benchmark] = p
			order = append(order, r.Benchmark)
		}
		p.wall[r.Engine] = append(p.wall[r.Engine], r.Seconds*1e9/float64(r.Ops))
		p.cpu[r.Engine] = append(p.cpu[r.Engine], r.CPUSeconds*1e9/float64(r.Ops))
	}
	var rows []OverheadRow
	for _, name := range order {
		p := by[name]
		row := OverheadRow{Benchmark: name}
		// Engines in name order, so that a tie goes the same way each run.
		engines := slices.Sorted(maps.Keys(p.wall))
		for _, eng := range engines {
			wall, cpu := median(p.wall[eng]), median(p.cpu[eng])
			if eng == NoopEngine {
				row.NoopWall, row.NoopCPU = wall, cpu
				continue
			}
			if row.FastestWallEngine == "" || wall < row.FastestWall {
				row.FastestWall, row.FastestWallEngine = wall, eng
			}
			if row.FastestCPUEngine == "" || cpu < row.FastestCPU {
				row.FastestCPU, row.FastestCPUEngine = cpu, eng
			}
		}
		if row.NoopWall == 0 || row.FastestWallEngine == "" {
			continue
		}
		rows = append(rows, row)
	}
	return rows
}

// overhead prints Overhead's table.
func (e *emitter) overhead() {
	fmt.Fprintf(e.w, "\nkvbench overhead: the noop engine's time per operation (the driver's own cost, an upper bound) against the fastest engine's, by wall and by process CPU time:\n%-18s %10s %10s %-12s %7s   %10s %10s %-12s %7s\n",
		"benchmark", "noop ns", "fastest ns", "engine", "share", "noop cpu", "fastest", "engine", "share")
	for _, r := range Overhead(e.results) {
		fmt.Fprintf(e.w, "%-18s %10.0f %10.0f %-12s %6.1f%%   %10.0f %10.0f %-12s %6.1f%%\n", r.Benchmark,
			r.NoopWall, r.FastestWall, r.FastestWallEngine, r.WallShare(),
			r.NoopCPU, r.FastestCPU, r.FastestCPUEngine, r.CPUShare())
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// dbState is what the benchmarks so far left in the database.
type dbState struct {
	// n: keys 0..n-1 are (or, if !known, may be) the keys written.
	n int
	// known: exactly keys 0..n-1 are present, each with its value
	// (valueSource.value of its number); reads verify against it.
	known bool
}

// session is one engine's database through one round of benchmarks.
type session struct {
	cfg      *Config
	engine   string
	round    int
	dir      string
	db       Store
	state    dbState
	values   *valueSource
	progress *progress
	out      *emitter
	ycsb     *ycsbState
}

func (s *session) run(ctx context.Context) (err error) {
	if s.cfg.UseExisting {
		if s.db, err = s.open(); err != nil {
			return err
		}
		s.setState(dbState{n: s.cfg.Num, known: true})
	} else if err := s.fresh(); err != nil {
		return err
	}
	defer func() {
		if cerr := s.db.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	for i, name := range s.cfg.Benchmarks {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := &benchRun{cfg: s.cfg, s: s, name: name, index: i, values: s.values, progress: s.progress}
		var results []Result
		if slices.Contains(YCSBWorkloads, name) {
			results, err = s.runYCSB(ctx, b)
		} else if isReplication(name) {
			if isStoreOnly(s.engine) {
				return fmt.Errorf("%w: %s measures logkv's replication and needs a logkv engine (lsm, bitcask, memory), not %s", ErrUsage, name, s.engine)
			}
			results, err = s.runReplication(ctx, b)
		} else {
			var r Result
			r, err = s.runDB(ctx, b)
			results = []Result{r}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, r := range results {
			if err := s.out.emit(r); err != nil {
				return err
			}
		}
	}
	if !s.cfg.JSON && !slices.ContainsFunc(s.cfg.Benchmarks, isReplication) {
		// What the engine holds at the end: space and memory use next to
		// the figures above.
		fmt.Fprintln(s.out.w, formatMetrics(s.engine, metricsOf(s.db, s.dir)))
	}
	return nil
}

// fresh replaces the database with an empty one: close, remove the engine's
// directory (only that one, under the run's root), reopen.
func (s *session) fresh() error {
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			return err
		}
		s.db = nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	db, err := s.open()
	if err != nil {
		return err
	}
	s.db, s.ycsb = db, nil
	s.setState(dbState{known: true})
	return nil
}

// open opens the session's Store and hands it the run's values if it answers
// reads from them (the noop store; see driven).
func (s *session) open() (Store, error) {
	db, err := OpenStore(s.engine, s.dir)
	if err != nil {
		return nil, err
	}
	if d, ok := db.(driven); ok {
		d.useValues(s.values)
	}
	return db, nil
}

// setState records what the benchmarks so far left in the database, and
// tells a Store that answers from what the driver says (the noop store; see
// driven) to hold those keys.
func (s *session) setState(st dbState) {
	s.state = st
	s.hold(uint64(st.n))
}

// hold tells a driven Store to answer for key numbers 0..limit-1.
func (s *session) hold(limit uint64) {
	if d, ok := s.db.(driven); ok {
		d.hold(limit, s.cfg.KeySize)
	}
}

// benchRun is one benchmark of a session.
type benchRun struct {
	cfg      *Config
	s        *session
	name     string
	index    int
	values   *valueSource
	progress *progress
	expected int64         // operations, for progress
	duration time.Duration // or a time bound
}

func (b *benchRun) label() string { return b.s.engine + " " + b.name }

// sampleEvery is one in how many operations the benchmark times: the
// replication benchmarks time every write (their latencies are the figure).
func (b *benchRun) sampleEvery() int {
	if isReplication(b.name) {
		return 1
	}
	return b.cfg.LatencyEvery
}

// scanStepSampling is how much more sparsely readseq and readreverse time
// their steps than other benchmarks their operations.
const scanStepSampling = 16

// scanSampleEvery is one in how many steps readseq and readreverse time:
// scanStepSampling times Config.LatencyEvery (256 by default), or every step
// with -latency_every 1. A step of the fastest engines costs 30 to 40 ns of
// CPU when scans are long enough to time (bbolt's, Config.ScanPasses), and
// a timed step about 80 more (two clock reads, the histogram's record, the
// next gap's draw), so one step in 64 timed was 1.2 ns a step, a third of
// kvbench's whole budget of 5% (issue #21); one in 256 is 0.3 ns. The
// sample is still random (see sampler), so its percentiles estimate the
// steps' distribution; it is only smaller: num/256 latencies per pass (3900
// at the default -num), plenty for p99, thin for p99.9 unless the scan is
// repeated (-scan_passes) or -latency_every lowered.
func (b *benchRun) scanSampleEvery() int {
	if b.cfg.LatencyEvery == 1 {
		return 1
	}
	return scanStepSampling * b.cfg.LatencyEvery
}

// result builds a Result from a tally.
func (b *benchRun) result(t tally, op string, ops int64, bytes int64, lat Latency) Result {
	secs := t.elapsed.Seconds()
	r := Result{
		Kind: "result", Engine: b.s.engine, Benchmark: b.name, Op: op, Round: b.s.round,
		Ops: ops, Bytes: bytes, Seconds: secs, Latency: lat,
		Params: Params{
			Num: b.cfg.Num, KeySize: b.cfg.KeySize, ValueSize: b.cfg.ValueSize, Threads: b.cfg.Threads,
			Batch: b.cfg.Batch, Seed: b.cfg.Seed, Compress: b.cfg.Compressibility,
		},
	}
	if op == "all" {
		r.CPUSeconds = t.cpu.Seconds()
	}
	if secs > 0 {
		r.OpsPerSec = float64(ops) / secs
		r.MBPerSec = float64(bytes) / secs / 1e6
	}
	return r
}
