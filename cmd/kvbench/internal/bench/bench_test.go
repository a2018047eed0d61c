package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// testEngines are the engines every benchmark runs on in tests: the fake and
// the real ones linked in by engines_test.go.
func testEngines() []string {
	return append([]string{"benchfake"}, realEngines...)
}

func testConfig(engine string) Config {
	cfg := DefaultConfig()
	cfg.Engines = []string{engine}
	cfg.Num = 2000
	cfg.Progress = ProgressNever
	cfg.Dir = "" // a temporary directory, removed
	return cfg
}

func runCfg(t *testing.T, cfg Config) ([]Result, string) {
	t.Helper()
	var out bytes.Buffer
	res, err := Run(context.Background(), cfg, &out, io.Discard)
	require.NoError(t, err, out.String())
	return res, out.String()
}

func TestAppendKey(t *testing.T) {
	require.Equal(t, "0000000000000042", string(appendKey(nil, 42, 16)))
	require.Equal(t, "00042", string(appendKey(nil, 42, 5)))
	require.Equal(t, "000000000000000000001234", string(appendKey(nil, 1234, 24)))
	require.Equal(t, "x0", string(appendKey([]byte("x"), 0, 1)))
}

func TestPermutationIsBijection(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 10, 1000, 4097, 65536} {
		p := newPermutation(n, 7)
		seen := make([]bool, n)
		inPlace := 0
		for i := range n {
			x := p.at(i)
			require.Less(t, x, n)
			require.False(t, seen[x], "n=%d: %d twice", n, x)
			seen[x] = true
			if x == i {
				inPlace++
			}
		}
		if n >= 1000 {
			require.Less(t, inPlace, int(n/100), "n=%d: the order is barely shuffled", n)
		}
	}
}

func TestShareCoversAll(t *testing.T) {
	for _, tc := range []struct{ n, threads int }{{10, 3}, {2, 4}, {1000, 7}, {0, 2}} {
		next := 0
		for id := range tc.threads {
			lo, hi := share(tc.n, tc.threads, id)
			require.Equal(t, next, lo)
			require.LessOrEqual(t, hi-lo, tc.n/tc.threads+1)
			next = hi
		}
		require.Equal(t, tc.n, next)
	}
}

func TestValueCompressibility(t *testing.T) {
	src := newValueSource(100, 0.25, 1)
	v := src.value(77)
	require.Len(t, v, 100)
	require.Equal(t, 100, cap(v), "a Store's append must not write into the pool")
	require.Equal(t, v, src.value(77), "a key's value is the same window every time")
	require.True(t, src.check(v, 77))
	require.False(t, src.check(v, 78))
	require.False(t, src.check(v[:99], 77))
	flipped := bytes.Clone(v)
	flipped[50] ^= 1
	require.False(t, src.check(flipped, 77), "every byte is checked, not only a prefix")
	// Other seeds put keys at other windows.
	require.NotEqual(t, src.value(77), newValueSource(100, 0.25, 2).value(77))
	// A quarter of each 100-byte piece is random, the rest repeats it.
	distinct := map[string]bool{}
	for i := 0; i+25 <= len(src.pool[:10000]); i += 25 {
		distinct[string(src.pool[i:i+25])] = true
	}
	require.LessOrEqual(t, len(distinct), 10000/100+1)
}

// Benchmarks too large for key plans draw and format keys in the timed loop;
// that path verifies as the planned one does.
func TestDBBenchmarksUnplanned(t *testing.T) {
	saved := planMaxBytes
	planMaxBytes = 0
	t.Cleanup(func() { planMaxBytes = saved })
	for _, batch := range []int{1, 7} {
		cfg := testConfig("memory")
		cfg.Threads, cfg.Batch = 2, batch
		cfg.Benchmarks = []string{"fillrandom", "overwrite", "readrandom", "seekrandom", "deleterandom", "readseq"}
		res, _ := runCfg(t, cfg)
		for _, r := range res {
			require.Zero(t, r.Errors, "%s batch %d", r.Benchmark, batch)
		}
		require.Equal(t, int64(cfg.Num), res[2].Found+res[2].NotFound)
		require.Equal(t, int64(cfg.Num), res[2].Found, "readrandom after overwrite finds every key")
	}
}

// TestDBBenchmarks runs every db_bench benchmark on every test engine, with
// several threads and batch sizes, and checks the operation counts and that
// every read was verified.
func TestDBBenchmarks(t *testing.T) {
	for _, engine := range testEngines() {
		for _, tc := range []struct{ threads, batch int }{{1, 1}, {3, 7}} {
			t.Run(fmt.Sprintf("%s/threads=%d/batch=%d", engine, tc.threads, tc.batch), func(t *testing.T) {
				cfg := testConfig(engine)
				cfg.Threads, cfg.Batch = tc.threads, tc.batch
				cfg.Benchmarks = append(DBBenchmarks, "readrandom", "readseq")
				res, out := runCfg(t, cfg)
				require.Len(t, res, len(cfg.Benchmarks), out)
				want := map[string]int64{
					"fillseq": 2000, "fillrandom": 2000, "overwrite": 2000, "readrandom": 2000,
					"readseq": 2000, "readreverse": 2000, "seekrandom": 2000, "deleterandom": 2000,
					"fillsync": 20,
				}
				for i, r := range res {
					require.Equal(t, cfg.Benchmarks[i], r.Benchmark)
					require.Equal(t, engine, r.Engine)
					require.Zero(t, r.Errors, "%s: %+v", r.Benchmark, r)
					require.Positive(t, r.OpsPerSec, r.Benchmark)
					require.Positive(t, r.P50, r.Benchmark)
					require.GreaterOrEqual(t, r.P99, r.P50, r.Benchmark)
					if i < len(DBBenchmarks) {
						require.Equal(t, want[r.Benchmark], r.Ops, r.Benchmark)
					}
					switch r.Benchmark {
					case "readrandom", "seekrandom", "readseq", "readreverse":
						require.Equal(t, r.Ops, r.Found, r.Benchmark)
						require.Zero(t, r.NotFound, r.Benchmark)
					}
				}
				// After fillsync, the reads see its 20 keys, all of them.
				last := res[len(res)-1]
				require.Equal(t, int64(20), last.Ops)
				require.Equal(t, int64(20), last.Found)
				require.Equal(t, int64(2000), res[len(res)-2].Ops) // readrandom: -num ops over 20 keys
				require.True(t, res[8].Sync)
				require.Contains(t, out, "fillrandom")
			})
		}
	}
}

// TestDeleteRandomThenRead: after deleterandom misses are expected (about
// 1/e of the keys survive num random deletes) and are not errors.
func TestDeleteRandomThenRead(t *testing.T) {
	cfg := testConfig("benchfake")
	cfg.Benchmarks = []string{"fillseq", "deleterandom", "readrandom", "readseq"}
	res, _ := runCfg(t, cfg)
	rr := res[2]
	require.Zero(t, rr.Errors)
	require.Equal(t, int64(2000), rr.Found+rr.NotFound)
	frac := float64(rr.Found) / 2000
	require.InDelta(t, 0.368, frac, 0.05)
	require.Zero(t, res[3].Errors)
	require.InDelta(t, 0.368*2000, float64(res[3].Ops), 100)
}

// lossyEngine drops every 10th Set, so verification has something to find.
type lossyEngine struct {
	logkv.Engine
	mu sync.Mutex
	n  int
}

func (l *lossyEngine) Set(key, value []byte, o *logkv.WriteOptions) error {
	l.mu.Lock()
	l.n++
	drop := l.n%10 == 0
	l.mu.Unlock()
	if drop {
		return nil
	}
	return l.Engine.Set(key, value, o)
}

// wrongEngine returns key 0's value for key 1.
type wrongEngine struct{ logkv.Engine }

func (w wrongEngine) Get(key []byte) ([]byte, error) {
	if string(key) == "0000000000000001" {
		key = []byte("0000000000000000")
	}
	return w.Engine.Get(key)
}

func init() {
	open := func(dir string, opts any) (logkv.Engine, error) { return logkv.Open("benchfake", dir, opts) }
	logkv.Register("benchlossy", func(dir string, opts any) (logkv.Engine, error) {
		e, err := open(dir, opts)
		return &lossyEngine{Engine: e}, err
	})
	logkv.Register("benchwrong", func(dir string, opts any) (logkv.Engine, error) {
		e, err := open(dir, opts)
		return wrongEngine{e}, err
	})
	logkv.Register("benchfake2", open)
	// benchpersist keeps each directory's engine across Close and Open, for
	// -use_existing_db.
	var mu sync.Mutex
	kept := map[string]*fakeEngine{}
	logkv.Register("benchpersist", func(dir string, opts any) (logkv.Engine, error) {
		mu.Lock()
		defer mu.Unlock()
		if e, ok := kept[dir]; ok {
			if _, err := os.Stat(dir); err == nil {
				e.mu.Lock()
				e.closed = false
				e.mu.Unlock()
				return e, nil
			}
		}
		e, err := open(dir, opts)
		kept[dir] = e.(*fakeEngine)
		return e, err
	})
}

// TestUseExisting: a -dir run keeps its database; a later run with
// -use_existing_db reads it without a fill and verifies every key.
func TestUseExisting(t *testing.T) {
	cfg := testConfig("benchpersist")
	cfg.Dir = t.TempDir()
	cfg.Benchmarks = []string{"fillrandom"}
	runCfg(t, cfg)
	_, err := os.Stat(filepath.Join(cfg.Dir, "benchpersist"))
	require.NoError(t, err, "-dir is kept")

	cfg.UseExisting = true
	cfg.Benchmarks = []string{"readrandom", "readseq"}
	res, _ := runCfg(t, cfg)
	for _, r := range res {
		require.Equal(t, int64(cfg.Num), r.Found, r.Benchmark)
		require.Zero(t, r.Errors, r.Benchmark)
	}
}

func TestVerifyCatchesLostWrites(t *testing.T) {
	cfg := testConfig("benchlossy")
	cfg.Benchmarks = []string{"fillrandom", "readrandom", "readseq", "seekrandom"}
	var out bytes.Buffer
	res, err := Run(context.Background(), cfg, &out, io.Discard)
	require.ErrorIs(t, err, ErrVerify)
	require.Len(t, res, 4)
	for _, r := range res[1:] {
		require.Positive(t, r.NotFound, r.Benchmark)
		require.Positive(t, r.Errors, r.Benchmark)
	}
	require.InDelta(t, 200, float64(res[2].NotFound), 1) // readseq: exactly the 200 dropped
	require.Contains(t, out.String(), "ERRORS")
}

func TestVerifyCatchesWrongValue(t *testing.T) {
	cfg := testConfig("benchwrong")
	cfg.Num = 2
	cfg.Reads = 200
	cfg.Benchmarks = []string{"fillseq", "readrandom"}
	res, err := Run(context.Background(), cfg, io.Discard, io.Discard)
	require.ErrorIs(t, err, ErrVerify)
	require.Positive(t, res[1].BadValues)
	require.Equal(t, res[1].BadValues, res[1].Errors)
}

func TestReadWithoutFillIsUsageError(t *testing.T) {
	cfg := testConfig("benchfake")
	cfg.Benchmarks = []string{"readrandom"}
	_, err := Run(context.Background(), cfg, io.Discard, io.Discard)
	require.ErrorIs(t, err, ErrUsage)
}

func TestBadConfig(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"bench":    func(c *Config) { c.Benchmarks = []string{"fillfast"} },
		"num":      func(c *Config) { c.Num = 0 },
		"threads":  func(c *Config) { c.Threads = 0 },
		"keysize":  func(c *Config) { c.KeySize = 3 }, // 2000 keys need 4 digits
		"compress": func(c *Config) { c.Compressibility = 0 },
		"dist":     func(c *Config) { c.Distribution = "pareto" },
		"plot":     func(c *Config) { c.Plot = "x.pdf" },
		"existing": func(c *Config) { c.UseExisting = true },
	} {
		cfg := testConfig("benchfake")
		mod(&cfg)
		_, err := Run(context.Background(), cfg, io.Discard, io.Discard)
		require.ErrorIs(t, err, ErrUsage, name)
	}
	cfg := testConfig("nosuchengine")
	_, err := Run(context.Background(), cfg, io.Discard, io.Discard)
	require.Error(t, err)
	require.Contains(t, err.Error(), "unknown engine")
}

func TestFlags(t *testing.T) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("kvbench", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-engine", "lsm, memory", "-benchmarks", "fillseq,readrandom", "-num", "5", "-threads", "4", "-json", "-duration", "3s"}))
	require.Equal(t, []string{"lsm", "memory"}, cfg.Engines)
	require.Equal(t, []string{"fillseq", "readrandom"}, cfg.Benchmarks)
	require.Equal(t, 5, cfg.Num)
	require.Equal(t, 4, cfg.Threads)
	require.True(t, cfg.JSON)
	require.Equal(t, 3*time.Second, cfg.Duration)
	require.Equal(t, DBBenchmarks, DefaultConfig().Benchmarks)
}

// TestJSONLines checks that -json stdout is JSON Lines only, with the
// documented fields, even with progress forced on.
func TestJSONLines(t *testing.T) {
	cfg := testConfig("benchfake")
	cfg.JSON = true
	cfg.Progress = ProgressAlways
	cfg.ProgressEvery = time.Millisecond
	cfg.Benchmarks = []string{"fillrandom", "readrandom"}
	var stderr bytes.Buffer
	_, out := func() ([]Result, string) {
		var o bytes.Buffer
		res, err := Run(context.Background(), cfg, &o, &stderr)
		require.NoError(t, err)
		return res, o.String()
	}()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	for i, line := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		for _, f := range []string{"kind", "engine", "benchmark", "op", "ops", "seconds", "ops_per_sec", "mb_per_sec",
			"p50_us", "p95_us", "p99_us", "p999_us", "max_us", "errors", "num", "key_size", "value_size", "threads", "batch", "seed"} {
			require.Contains(t, m, f, line)
		}
		require.Equal(t, cfg.Benchmarks[i], m["benchmark"])
		require.Equal(t, "benchfake", m["engine"])
		require.EqualValues(t, 2000, m["ops"])
		require.EqualValues(t, 16, m["key_size"])
	}
	require.NotContains(t, out, "kvbench:")
}

// syncWriter signals when it is first written to.
type syncWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
	once  sync.Once
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.once.Do(func() { close(w.wrote) })
	return w.buf.Write(p)
}

func TestProgressLines(t *testing.T) {
	w := &syncWriter{wrote: make(chan struct{})}
	cfg := DefaultConfig()
	cfg.Progress = ProgressAlways
	cfg.ProgressEvery = time.Millisecond
	p := newProgress(&cfg, w)
	require.True(t, p.enabled)
	require.False(t, p.terminal)
	counters := make([]paddedCounter, 2)
	counters[0].n.Store(30)
	counters[1].n.Store(20)
	stop := p.start("fake fillseq", 100, 0, counters)
	<-w.wrote
	stop()
	w.mu.Lock()
	line, err := bufio.NewReader(bytes.NewReader(w.buf.Bytes())).ReadString('\n')
	w.mu.Unlock()
	require.NoError(t, err)
	require.Contains(t, line, "fake fillseq: 50/100 ops (50%)")

	// auto on a non-terminal and never print nothing.
	for _, mode := range []string{ProgressAuto, ProgressNever} {
		cfg.Progress = mode
		var buf bytes.Buffer
		p := newProgress(&cfg, &buf)
		require.False(t, p.enabled, mode)
	}
}

// TestEngineOrderAlternates: with two engines and two rounds the order is
// AB then BA, and a summary with ratios follows.
func TestEngineOrderAlternates(t *testing.T) {
	cfg := testConfig("benchfake")
	cfg.Engines = []string{"benchfake", "benchfake2"}
	cfg.Rounds = 2
	cfg.Benchmarks = []string{"fillseq"}
	res, out := runCfg(t, cfg)
	var order []string
	var summary []Result
	for _, r := range res {
		if r.Kind == "result" {
			order = append(order, r.Engine)
		} else {
			summary = append(summary, r)
		}
	}
	require.Equal(t, []string{"benchfake", "benchfake2", "benchfake2", "benchfake"}, order)
	require.Len(t, summary, 2)
	require.Equal(t, 1.0, summary[0].Ratio)
	require.Positive(t, summary[1].Ratio)
	require.Contains(t, out, "ratio to benchfake")
}

// TestTempDirRemoved: without -dir the run's temporary directory is removed
// at the end, unless -keep.
func TestTempDirRemoved(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	for _, keep := range []bool{false, true} {
		cfg := testConfig("benchfake")
		cfg.Keep = keep
		cfg.Benchmarks = []string{"fillseq"}
		_, out := runCfg(t, cfg)
		i := strings.Index(out, "; dir ")
		require.Positive(t, i, out)
		dir := strings.TrimSpace(strings.SplitN(out[i+len("; dir "):], "\n", 2)[0])
		require.True(t, strings.HasPrefix(dir, os.Getenv("TMPDIR")), dir)
		_, err := os.Stat(dir)
		if keep {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, os.ErrNotExist)
		}
	}
}
