package lsm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// dbBenchValues hands out values as db_bench (and peerbench) make them:
// consecutive slices of a 1 MiB buffer of 100-byte pieces, each half random
// printable bytes and half a repeat of them, so that a value compresses to
// about half its size and no two neighbours are equal. Zero-filled values
// compress to nothing and keep a whole 1M-key table in the block cache,
// hiding the cost of a miss.
type dbBenchValues struct {
	data []byte
	pos  int
}

func newDBBenchValues() *dbBenchValues {
	r := rand.New(rand.NewPCG(1, 2))
	var data []byte
	for len(data) < 1<<20 {
		piece := make([]byte, 50)
		for i := range piece {
			piece[i] = byte(' ' + r.IntN(95))
		}
		data = append(data, piece...)
		data = append(data, piece...)
	}
	return &dbBenchValues{data: data}
}

func (g *dbBenchValues) next(n int) []byte {
	if g.pos+n > len(g.data) {
		g.pos = 0
	}
	g.pos += n
	return g.data[g.pos-n : g.pos]
}

// dbBenchKey is db_bench's key: 16 zero-padded decimal digits, so that keys
// share their first 8 bytes, as real keys with a common prefix do.
func dbBenchKey(buf []byte, i int) []byte { return fmt.Appendf(buf[:0], "%016d", i) }

// readBenchDB is the DB BenchmarkReadRandomDBBench reads: filled once per
// process, so that the benchmark's first run (b.N = 1) and its measured run
// share one fill, and a run under callgrind pays for one fill only.
var readBench struct {
	once sync.Once
	dir  string
	db   *DB
	err  error
}

const readBenchKeys = 1000000

func TestMain(m *testing.M) {
	code := m.Run()
	if readBench.db != nil {
		readBench.db.Close()
		os.RemoveAll(readBench.dir)
	}
	if nodeBench.db != nil {
		nodeBench.db.Close()
		if nodeBench.dir != "" {
			os.RemoveAll(nodeBench.dir)
		}
	}
	os.Exit(code)
}

// BenchmarkReadRandomDBBench is peerbench's readrandom inside the package, so
// that it can be profiled: a random fill of 1M db_bench keys and values with
// the default options, then Gets of random keys once compactions are done.
// Under callgrind, count the instructions of DB.Get alone (valgrind 3.19
// knows neither RDTSCP, which the runtime's cputicks uses, hence a copy of
// runtime/asm_amd64.s whose cputicks takes its MFENCE branch, nor Go's
// preemption signals):
//
//	sed 's/^\tJNE\tfences$/\tJMP\tfences/' $(go env GOROOT)/src/runtime/asm_amd64.s >/tmp/asm_amd64.s
//	echo '{"Replace":{"'$(go env GOROOT)'/src/runtime/asm_amd64.s":"/tmp/asm_amd64.s"}}' >/tmp/ovl.json
//	CGO_ENABLED=0 go test -overlay /tmp/ovl.json -c -o lsm.test ./lsm
//	GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --collect-atstart=no \
//	  --toggle-collect='github.com/logkv/logkv/lsm.(*DB).Get' \
//	  ./lsm.test -test.run XXX -test.bench ReadRandomDBBench -test.benchtime 100000x
//
// and divide the instructions by 100001 (the benchmark's first run reads
// one key).
func BenchmarkReadRandomDBBench(b *testing.B) {
	readBench.once.Do(func() {
		readBench.dir, readBench.err = os.MkdirTemp("", "lsm-readbench-")
		if readBench.err != nil {
			return
		}
		readBench.db, readBench.err = Open(readBench.dir, nil)
		if readBench.err != nil {
			return
		}
		vals := newDBBenchValues()
		var k []byte
		for _, i := range rand.New(rand.NewPCG(3, 4)).Perm(readBenchKeys) {
			k = dbBenchKey(k, i)
			if readBench.err = readBench.db.Set(k, vals.next(100), nil); readBench.err != nil {
				return
			}
		}
		// Let flushes and compactions finish: background work would
		// muddle a profile (and callgrind's attribution, which follows
		// threads, not goroutines), and a node serves reads long after
		// its fill.
		readBench.db.waitIdle()
	})
	require.NoError(b, readBench.err)
	db := readBench.db
	before := db.Metrics()
	r := rand.New(rand.NewPCG(5, 6))
	var k []byte
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k = dbBenchKey(k, r.IntN(readBenchKeys))
		v, err := db.Get(k)
		if err != nil || len(v) != 100 {
			b.Fatal(k, err)
		}
	}
	b.StopTimer()
	// CPU time per Get (the process's: background work is done) holds up
	// on a loaded machine far better than wall time.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	old := map[string]float64{}
	for _, m := range before.Detail {
		old[m.Name] = m.Value
	}
	for _, m := range db.Metrics().Detail {
		switch m.Name {
		case "lsm_block_cache_hits_total", "lsm_block_cache_misses_total":
			b.ReportMetric((m.Value-old[m.Name])/float64(b.N), m.Name[len("lsm_block_cache_"):len(m.Name)-len("_total")]+"/op")
		}
	}
}

// readBenchMarker is the file in LSM_READBENCH_DIR that says its "db" was
// filled by BenchmarkReadRandomLarge, holding the number of keys (decimal).
const readBenchMarker = "filled"

// readBenchDir prepares dir for BenchmarkReadRandomLarge and reports
// whether dir/db is filled with keys keys. It removes nothing it did not
// create: a marker for another key count means dir/db is the benchmark's,
// which is removed for a new fill; dir without a marker must be empty (or
// absent), else the benchmark refuses it rather than delete a user's files.
func readBenchDir(b *testing.B, dir string, keys int) bool {
	marker := filepath.Join(dir, readBenchMarker)
	got, err := os.ReadFile(marker)
	if err == nil {
		if n, err := strconv.Atoi(string(got)); err == nil && n == keys {
			return true
		}
		b.Logf("%s: filled with %q keys, not %d: filling again", dir, got, keys)
		require.NoError(b, os.Remove(marker))
		require.NoError(b, os.RemoveAll(filepath.Join(dir, "db")))
		return false
	}
	require.ErrorIs(b, err, os.ErrNotExist)
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		b.Fatal(err)
	}
	if len(ents) > 0 {
		b.Fatalf("LSM_READBENCH_DIR %s is not empty and has no %q marker (an interrupted fill, or not the benchmark's): remove it or name another", dir, readBenchMarker)
	}
	return false
}

// BenchmarkReadRandomLarge is peerbench's readrandom at 8M keys (-n 8000000)
// inside the package, for profiles of a DB several times the block cache.
// It runs only when LSM_READBENCH_DIR names a directory to keep the DB in:
// the fill (minutes) is done once into its "db", marked by a file "filled"
// (holding the key count) written after compactions end, and reused by
// later runs, so that callgrind runs on a filled DB (LSM_READBENCH_KEYS
// overrides the 8M keys; a directory the benchmark did not fill is refused,
// not removed: readBenchDir). Before the timer,
// LSM_READBENCH_WARM Gets (default 200000) fill the block cache to its
// steady state; the measured Gets go through readBenchGet, so that
// callgrind counts them alone:
//
//	LSM_READBENCH_DIR=/tmp/x GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind \
//	  --collect-atstart=no --toggle-collect='github.com/logkv/logkv/lsm.readBenchGet' \
//	  ./lsm.test -test.run XXX -test.bench ReadRandomLarge -test.benchtime 100000x
//
// (built as in BenchmarkReadRandomDBBench's comment) and divide by 100001.
func BenchmarkReadRandomLarge(b *testing.B) {
	dir := os.Getenv("LSM_READBENCH_DIR")
	if dir == "" {
		b.Skip("LSM_READBENCH_DIR not set")
	}
	keys := envInt(b, "LSM_READBENCH_KEYS", 8000000)
	warm := envInt(b, "LSM_READBENCH_WARM", 200000)
	filled := readBenchDir(b, dir, keys)
	db, err := Open(filepath.Join(dir, "db"), nil)
	require.NoError(b, err)
	defer db.Close()
	if !filled {
		vals := newDBBenchValues()
		var k []byte
		for _, i := range rand.New(rand.NewPCG(3, 4)).Perm(keys) {
			k = dbBenchKey(k, i)
			require.NoError(b, db.Set(k, vals.next(100), nil))
		}
		db.waitIdle()
		require.NoError(b, os.WriteFile(filepath.Join(dir, readBenchMarker), []byte(strconv.Itoa(keys)), 0o644))
	}
	db.waitIdle()
	r := rand.New(rand.NewPCG(5, 6))
	var k []byte
	for i := 0; i < warm; i++ {
		k = dbBenchKey(k, r.IntN(keys))
		if _, err := db.Get(k); err != nil {
			b.Fatal(k, err)
		}
	}
	before := db.Metrics()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k = dbBenchKey(k, r.IntN(keys))
		if err := readBenchGet(db, k); err != nil {
			b.Fatal(k, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	probed := 0
	for i := range 1000 {
		probed += tablesProbed(db, dbBenchKey(k, i*(keys/1000)))
	}
	b.ReportMetric(float64(probed)/1000, "tables/op")
	if b.N > 1 {
		fmt.Fprintf(os.Stderr, "readbench: %d keys; %s\n", keys, dbShape(db))
	}
	old := map[string]float64{}
	for _, m := range before.Detail {
		old[m.Name+fmt.Sprint(m.Labels)] += m.Value
	}
	per := map[string]float64{}
	for _, m := range db.Metrics().Detail {
		switch m.Name {
		case "lsm_block_cache_hits_total", "lsm_block_cache_misses_total":
			per[m.Name] += m.Value - old[m.Name+fmt.Sprint(m.Labels)]
		}
	}
	for name, v := range per {
		b.ReportMetric(v/float64(b.N), strings.TrimSuffix(strings.TrimPrefix(name, "lsm_"), "_total")+"/op")
	}
}

// readBenchGet is one measured Get of BenchmarkReadRandomLarge, a function
// of its own so that callgrind can count it apart from the warm-up.
//
//go:noinline
func readBenchGet(db *DB, k []byte) error {
	v, err := db.Get(k)
	if err == nil && len(v) != 100 {
		err = fmt.Errorf("value of %d bytes", len(v))
	}
	return err
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	require.NoError(b, err, name)
	return n
}
