package bench

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// ErrUsage is wrapped by every error about a bad Config or flag.
var ErrUsage = errors.New("kvbench: bad usage")

// DBBenchmarks are the db_bench-style benchmarks, in their default order.
var DBBenchmarks = []string{
	"fillseq", "fillrandom", "overwrite", "readrandom", "readseq",
	"readreverse", "seekrandom", "deleterandom", "fillsync",
}

// YCSBWorkloads are the YCSB core workloads.
var YCSBWorkloads = []string{"ycsb-a", "ycsb-b", "ycsb-c", "ycsb-d", "ycsb-e", "ycsb-f"}

// Progress modes for Config.Progress.
const (
	ProgressAuto   = "auto"   // print progress when stderr is a terminal
	ProgressAlways = "always" // print progress lines even when it is not
	ProgressNever  = "never"
)

// Config is one kvbench run. The zero value is not valid: start from
// DefaultConfig.
type Config struct {
	// Engines are the registered engine names to measure. With more than one,
	// each round runs them in alternating order and a ratio table follows.
	Engines []string
	// Benchmarks run in order on each engine (see DBBenchmarks, YCSBWorkloads).
	Benchmarks []string
	// Num is the number of keys of a fill, the number of operations of the
	// other db_bench benchmarks, and the YCSB record count.
	Num int
	// Reads, if > 0, is the number of operations of the read benchmarks
	// (readrandom, seekrandom) instead of Num.
	Reads int
	// SyncNum is the number of writes of fillsync; 0 means Num/100 (at least 1).
	SyncNum int
	// KeySize is the key length: keys are zero-padded decimal numbers this wide.
	KeySize int
	// ValueSize is the value length in bytes.
	ValueSize int
	// Compressibility is the fraction a value compresses to (1 = random bytes,
	// 0.5 = half of each value repeats), as db_bench's compression_ratio.
	Compressibility float64
	// Threads is the number of goroutines sharing each benchmark's work.
	Threads int
	// Batch groups this many writes per logkv.Batch in fills, overwrite and
	// deleterandom.
	Batch int
	// Seed makes key orders and values reproducible.
	Seed uint64
	// Dir, if set, holds the databases (one subdirectory per engine) and is
	// kept; otherwise a temporary directory is used and removed unless Keep.
	Dir string
	// Keep keeps the temporary directory.
	Keep bool
	// UseExisting assumes the database in Dir already holds keys 0..Num-1, so
	// read benchmarks may run first (db_bench's use_existing_db).
	UseExisting bool
	// JSON prints JSON Lines on stdout instead of text.
	JSON bool
	// Progress is ProgressAuto, ProgressAlways or ProgressNever.
	Progress string
	// ProgressEvery is the interval between progress lines.
	ProgressEvery time.Duration
	// Rounds repeats the whole run, alternating the engine order.
	Rounds int
	// LatencyEvery times one operation in this many (a power of two), drawn
	// at random, for the latency histograms; 1 times every one. Reading the
	// clock twice costs about 50 ns here, a sixth of the fastest engines'
	// writes and half an iterator step: timing every one would make the
	// driver, not the engine, the figure, and one in 16 (the default) keeps
	// the clock near 1% of it (scans time one step in 16*LatencyEvery; see
	// scanSampleEvery). Throughput always counts every operation. The
	// replication benchmarks time every write.
	LatencyEvery int
	// ScanPasses is how many times readseq and readreverse scan the
	// database (0: once, as db_bench), each thread with one iterator
	// positioned anew at each pass; every key read is an operation. A scan
	// of a few hundred thousand keys lasts milliseconds on the fastest
	// engines, too short to time steadily on a shared machine: measuring
	// kvbench's own cost (BenchmarkOverhead) scans several times.
	ScanPasses int

	// YCSB

	// Ops is the number of operations of a YCSB run phase (0: Num).
	Ops int
	// Duration, if > 0, bounds a YCSB run phase by time instead of Ops.
	Duration time.Duration
	// Distribution overrides the workloads' request distribution: "zipfian",
	// "uniform" or "latest"; empty means each workload's standard one.
	Distribution string
	// ZipfConstant is the zipfian skew (YCSB: 0.99).
	ZipfConstant float64
	// MaxScanLength bounds workload E's scans (lengths uniform in 1..this).
	MaxScanLength int

	// Replication (see ReplicationBenchmarks)

	// Followers is the number of followers of replicate-write and
	// replicate-lag.
	Followers int
	// Rate is replicate-lag's offered load, writes per second.
	Rate int
	// BacklogBytes is the key and value bytes replicate-catchup writes
	// before its follower starts.
	BacklogBytes int64
	// CatchUp is how replicate-catchup's follower catches up: "auto" (the
	// leader's choice, see replicate.Config.ResyncBacklogRatio) or "log"
	// (stream the log, never resync by backlog size).
	CatchUp string
	// FollowerDir, if set, holds the followers' commit logs and engines
	// (in a temporary directory, removed) instead of the leader's directory:
	// on another disk, the followers no longer share the leader's device, as
	// nodes on their own machines do not.
	FollowerDir string

	// Plot, if set, is an .svg or .png file to draw throughput and latency in.
	Plot string
	// CPUProfile, if set, is a file to write a CPU profile of the run to.
	CPUProfile string
}

// DefaultConfig returns the defaults of kvbench's flags.
func DefaultConfig() Config {
	return Config{
		Engines:         []string{"memory"},
		Benchmarks:      slices.Clone(DBBenchmarks),
		Num:             1_000_000,
		KeySize:         16,
		ValueSize:       100,
		Compressibility: 1,
		Threads:         1,
		Batch:           1,
		Seed:            301,
		Progress:        ProgressAuto,
		ProgressEvery:   2 * time.Second,
		Rounds:          1,
		LatencyEvery:    16,
		ZipfConstant:    0.99,
		MaxScanLength:   100,
		Followers:       2,
		Rate:            20000,
		BacklogBytes:    1 << 30,
		CatchUp:         "auto",
	}
}

// RegisterFlags defines kvbench's flags on fs, writing into c; c's current
// values are the defaults shown.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(listFlag{&c.Engines}, "engine", "comma-separated registered engines to measure (several: alternating order, ratio table)")
	fs.Var(listFlag{&c.Benchmarks}, "benchmarks", "comma-separated benchmarks: "+strings.Join(DBBenchmarks, ",")+","+strings.Join(YCSBWorkloads, ",")+",replicate (= "+strings.Join(ReplicationBenchmarks, ",")+")")
	fs.IntVar(&c.Num, "num", c.Num, "keys per fill, operations per benchmark, YCSB record count")
	fs.IntVar(&c.Reads, "reads", c.Reads, "operations of readrandom and seekrandom (0: -num)")
	fs.IntVar(&c.SyncNum, "sync_num", c.SyncNum, "writes of fillsync (0: num/100)")
	fs.IntVar(&c.KeySize, "key_size", c.KeySize, "key size in bytes (zero-padded decimal)")
	fs.IntVar(&c.ValueSize, "value_size", c.ValueSize, "value size in bytes")
	fs.Float64Var(&c.Compressibility, "compressibility", c.Compressibility, "fraction a value compresses to (1: random bytes)")
	fs.IntVar(&c.Threads, "threads", c.Threads, "goroutines sharing each benchmark's work")
	fs.IntVar(&c.Batch, "batch", c.Batch, "writes per logkv.Batch in fills, overwrite, deleterandom")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed (key orders, values, YCSB draws)")
	fs.StringVar(&c.Dir, "dir", c.Dir, "directory for the databases, kept (default: a temporary one, removed)")
	fs.BoolVar(&c.Keep, "keep", c.Keep, "keep the temporary directory")
	fs.BoolVar(&c.UseExisting, "use_existing_db", c.UseExisting, "with -dir: the database already holds keys 0..num-1")
	fs.BoolVar(&c.JSON, "json", c.JSON, "print JSON Lines on stdout, one object per result")
	fs.StringVar(&c.Progress, "progress", c.Progress, "progress lines on stderr: auto (if a terminal), always, never")
	fs.DurationVar(&c.ProgressEvery, "progress_every", c.ProgressEvery, "interval between progress lines")
	fs.IntVar(&c.Rounds, "rounds", c.Rounds, "repeat the run, alternating the engine order (ABC, CBA, ...)")
	fs.IntVar(&c.LatencyEvery, "latency_every", c.LatencyEvery, "time one operation in this many (a power of two; 1: every one) for the latency percentiles")
	fs.IntVar(&c.ScanPasses, "scan_passes", c.ScanPasses, "readseq, readreverse: scan the database this many times (0: once); each key read is an operation")
	fs.IntVar(&c.Ops, "ops", c.Ops, "YCSB: operations of the run phase (0: -num)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "YCSB: run phase length, instead of -ops")
	fs.StringVar(&c.Distribution, "distribution", c.Distribution, "YCSB request distribution: zipfian, uniform, latest (default: the workload's)")
	fs.Float64Var(&c.ZipfConstant, "zipf_constant", c.ZipfConstant, "YCSB zipfian constant")
	fs.IntVar(&c.MaxScanLength, "max_scan_length", c.MaxScanLength, "YCSB E: scan lengths are uniform in 1..this")
	fs.IntVar(&c.Followers, "followers", c.Followers, "replication: followers of replicate-write and replicate-lag")
	fs.IntVar(&c.Rate, "rate", c.Rate, "replicate-lag: offered writes per second")
	fs.Int64Var(&c.BacklogBytes, "backlog_bytes", c.BacklogBytes, "replicate-catchup: key+value bytes written before the follower starts")
	fs.StringVar(&c.FollowerDir, "follower_dir", c.FollowerDir, "replication: directory for the followers' logs and engines, e.g. on another disk (default: beside the leader's)")
	fs.StringVar(&c.CatchUp, "catchup", c.CatchUp, "replicate-catchup: auto (the leader resyncs a backlog large against the data) or log (always stream the log)")
	fs.StringVar(&c.Plot, "plot", c.Plot, "draw throughput and latency charts in this .svg or .png file")
	fs.StringVar(&c.CPUProfile, "cpuprofile", c.CPUProfile, "write a CPU profile of the run to this file")
}

type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listFlag) Set(s string) error {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	*l.p = out
	return nil
}

// Validate checks c and fills derived defaults (SyncNum).
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrUsage}, args...)...)
	}
	if len(c.Engines) == 0 {
		return bad("no engine")
	}
	for i, e := range c.Engines {
		if slices.Contains(c.Engines[:i], e) {
			return bad("engine %q listed twice", e)
		}
		if known := EngineNames(); !slices.Contains(known, e) {
			return bad("unknown engine %q (known here: %s; the peers Pebble, Badger, bbolt, goleveldb and btree are in the kvbench of cmd/kvbench/peers)", e, strings.Join(known, ","))
		}
	}
	if len(c.Benchmarks) == 0 {
		return bad("no benchmark")
	}
	c.Benchmarks = expandReplicate(c.Benchmarks)
	for _, b := range c.Benchmarks {
		if !slices.Contains(DBBenchmarks, b) && !slices.Contains(YCSBWorkloads, b) && !isReplication(b) {
			return bad("unknown benchmark %q", b)
		}
	}
	switch {
	case c.Num < 1:
		return bad("-num %d: must be at least 1", c.Num)
	case c.Reads < 0 || c.SyncNum < 0 || c.Ops < 0 || c.Duration < 0:
		return bad("-reads, -sync_num, -ops and -duration must not be negative")
	case c.KeySize < 1 || c.KeySize > 1024:
		return bad("-key_size %d: must be 1..1024", c.KeySize)
	case c.ValueSize < 0 || c.ValueSize > 1<<24:
		return bad("-value_size %d: must be 0..16777216", c.ValueSize)
	case c.Compressibility <= 0 || c.Compressibility > 1:
		return bad("-compressibility %g: must be in (0, 1]", c.Compressibility)
	case c.Threads < 1 || c.Threads > 1024:
		return bad("-threads %d: must be 1..1024 (each thread keeps its own histograms)", c.Threads)
	case c.Batch < 1 || c.Batch > 1<<20:
		return bad("-batch %d: must be 1..1048576", c.Batch)
	case c.Rounds < 1:
		return bad("-rounds %d: must be at least 1", c.Rounds)
	case c.LatencyEvery < 1 || c.LatencyEvery > 1<<16 || c.LatencyEvery&(c.LatencyEvery-1) != 0:
		return bad("-latency_every %d: must be a power of two in 1..65536", c.LatencyEvery)
	case c.ScanPasses < 0 || c.ScanPasses > 1000:
		return bad("-scan_passes %d: must be 0..1000", c.ScanPasses)
	case c.ZipfConstant <= 0 || c.ZipfConstant >= 1:
		return bad("-zipf_constant %g: must be in (0, 1)", c.ZipfConstant)
	case c.MaxScanLength < 1:
		return bad("-max_scan_length %d: must be at least 1", c.MaxScanLength)
	case c.Followers < 1 || c.Followers > 16:
		return bad("-followers %d: must be 1..16", c.Followers)
	case c.Rate < 1 || c.Rate > 10_000_000:
		return bad("-rate %d: must be 1..10000000", c.Rate)
	case c.CatchUp != "auto" && c.CatchUp != "log":
		return bad("-catchup %q: want auto or log", c.CatchUp)
	case c.BacklogBytes < 1:
		return bad("-backlog_bytes %d: must be positive", c.BacklogBytes)
	case c.FollowerDir != "" && !isDir(c.FollowerDir):
		return bad("-follower_dir %q: not a directory; create it first", c.FollowerDir)
	case c.UseExisting && c.Dir == "":
		return bad("-use_existing_db needs -dir")
	}
	switch c.Progress {
	case ProgressAuto, ProgressAlways, ProgressNever:
	default:
		return bad("-progress %q: want auto, always or never", c.Progress)
	}
	if c.ProgressEvery <= 0 {
		return bad("-progress_every must be positive")
	}
	switch c.Distribution {
	case "", DistZipfian, DistUniform, DistLatest:
	default:
		return bad("-distribution %q: want zipfian, uniform or latest", c.Distribution)
	}
	if c.Plot != "" && !strings.HasSuffix(c.Plot, ".svg") && !strings.HasSuffix(c.Plot, ".png") {
		return bad("-plot %q: the name must end in .svg or .png", c.Plot)
	}
	if c.SyncNum == 0 {
		c.SyncNum = max(1, c.Num/100)
	}
	// Keys are decimal numbers KeySize wide; the largest must fit. YCSB keys
	// are scrambled over the whole width (see ycsbKeys).
	if c.KeySize < 19 {
		if limit := pow10(c.KeySize); uint64(c.Num) > limit {
			return bad("-key_size %d holds at most %d keys; -num %d needs a wider key", c.KeySize, limit, c.Num)
		}
	}
	return nil
}

func pow10(n int) uint64 {
	p := uint64(1)
	for range n {
		p *= 10
	}
	return p
}

// syncNum is the number of writes of fillsync.
func (c *Config) syncNum() int {
	if c.SyncNum > 0 {
		return c.SyncNum
	}
	return max(1, c.Num/100)
}

// scanPasses is the number of times readseq and readreverse scan.
func (c *Config) scanPasses() int { return max(1, c.ScanPasses) }

// reads is the number of operations of readrandom and seekrandom.
func (c *Config) reads() int {
	if c.Reads > 0 {
		return c.Reads
	}
	return c.Num
}

// isDir reports whether path names a directory.
func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
