package lsm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/stretchr/testify/require"
)

// nodeBench is the DB BenchmarkNodeGet reads, filled once per process.
var nodeBench struct {
	once    sync.Once
	dir     string
	db      *DB
	present []uint32 // key numbers present
	absent  []uint32 // key numbers never written
	err     error
}

const (
	nodeBenchKeys = 1000000 // the keyspace: redis-benchmark -r 1000000
	nodeBenchSets = 2000000 // -n 2000000: 86% of the keyspace present
)

// nodeBenchKey is the engine key kvnode stores for redis-benchmark's
// key:%012d in database 0 (keyspace format 2): the dbgen byte, the key's
// 2-byte hash slot, then the key; 19 bytes. The slot here is a
// multiplicative hash, not CRC16, with the same effect: keys spread over
// 16384 slots, so neighbours in the engine are unrelated numbers.
func nodeBenchKey(buf []byte, i uint32) []byte {
	slot := uint16(i*2654435761>>18) & 0x3fff
	buf = append(buf[:0], 0, byte(slot>>8), byte(slot))
	return fmt.Appendf(buf, "key:%012d", i)
}

// BenchmarkNodeGet reads the DB kvnode holds after redis-benchmark's SET
// phase with -n 2000000 -r 1000000 -P 16: 2M Sets of random keys of a 1M
// keyspace in batches of 16, with the WAL off as under a node, and a 4-byte
// value (the node's 1-byte header and 3 bytes). The fill waits for
// flushes and compactions to end unless LSM_NODEBENCH_BUSY is set, which
// reads at once, as a node's GET phase does. hit reads present keys, miss
// keys never written; the Gets are AppendGet into one buffer, as the node
// does, through nodeBenchGet so that callgrind can count them alone:
//
//	GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --collect-atstart=no \
//	  --toggle-collect='github.com/logkv/logkv/lsm.nodeBenchGet' \
//	  ./lsm.test -test.run XXX -test.bench 'NodeGet/hit' -test.benchtime 200000x
//
// (built as in BenchmarkReadRandomDBBench's comment), and divide by the
// Gets: 200001, the first run reads one key. LSM_NODEBENCH_WARM Gets
// (default 200000, not counted: they call AppendGet directly) warm the
// caches first.
func BenchmarkNodeGet(b *testing.B) {
	nodeBench.once.Do(nodeBenchFill)
	require.NoError(b, nodeBench.err)
	db := nodeBench.db
	for _, c := range []struct {
		name string
		keys []uint32
		hit  bool
	}{{"hit", nodeBench.present, true}, {"miss", nodeBench.absent, false}} {
		b.Run(c.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(7, 8))
			var k, buf []byte
			for range envInt(b, "LSM_NODEBENCH_WARM", 200000) {
				k = nodeBenchKey(k, c.keys[r.IntN(len(c.keys))])
				if _, err := db.AppendGet(buf[:0], k); err != nil && c.hit {
					b.Fatal(err)
				}
			}
			// Grow the goroutine's stack now: a stack growth inside
			// nodeBenchGet enters it twice for callgrind, which then
			// toggles collection the wrong way round.
			growStack()
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				k = nodeBenchKey(k, c.keys[r.IntN(len(c.keys))])
				var err error
				if buf, err = nodeBenchGet(db, buf[:0], k, c.hit); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			probed := 0
			for i := range 1000 {
				probed += tablesProbed(db, nodeBenchKey(k, c.keys[i*len(c.keys)/1000]))
			}
			b.ReportMetric(float64(probed)/1000, "tables/op")
		})
	}
}

// nodeBenchGet is one measured Get of BenchmarkNodeGet.
//
//go:noinline
func nodeBenchGet(db *DB, buf, k []byte, hit bool) ([]byte, error) {
	v, err := db.AppendGet(buf, k)
	switch {
	case hit && err == nil && len(v) != 4:
		err = fmt.Errorf("%q: value of %d bytes", k, len(v))
	case !hit && errors.Is(err, logkv.ErrNotFound):
		err = nil
	case !hit && err == nil:
		err = fmt.Errorf("%q: found", k)
	}
	return v, err
}

// nodeBenchFill fills nodeBench.db. With LSM_NODEBENCH_DIR set, the DB is
// kept in that directory's "db" and reused by later runs (a run under
// callgrind then pays for no fill, and old and new builds read the same
// tables): the first run fills and closes it (which flushes the memtable)
// and writes the "filled" marker; every run, the first included, reopens
// it. A directory without the marker must be empty or absent.
func nodeBenchFill() {
	nb := &nodeBench
	opts := func() *Options { return &Options{DisableWAL: true} }
	if keep := os.Getenv("LSM_NODEBENCH_DIR"); keep != "" {
		nb.present, nb.absent = nodeBenchSplit(nodeBenchSetKeys())
		marker := filepath.Join(keep, readBenchMarker)
		if _, err := os.Stat(marker); err != nil {
			if ents, _ := os.ReadDir(keep); len(ents) > 0 {
				nb.err = fmt.Errorf("LSM_NODEBENCH_DIR %s is not empty and has no %q marker", keep, readBenchMarker)
				return
			}
			db, err := Open(filepath.Join(keep, "db"), opts())
			if nb.err = err; err != nil {
				return
			}
			if nb.err = nodeBenchWrite(db); nb.err == nil {
				db.waitIdle()
			}
			if err := db.Close(); nb.err == nil {
				nb.err = err
			}
			if nb.err != nil {
				return
			}
			if nb.err = os.WriteFile(marker, []byte("nodebench"), 0o644); nb.err != nil {
				return
			}
		}
		if nb.db, nb.err = Open(filepath.Join(keep, "db"), opts()); nb.err != nil {
			return
		}
		nb.db.waitIdle()
		nodeBenchShape(nb.db, 0)
		nb.dir = "" // TestMain closes the DB and removes nothing
		return
	}
	if nb.dir, nb.err = os.MkdirTemp("", "lsm-nodebench-"); nb.err != nil {
		return
	}
	if nb.db, nb.err = Open(nb.dir, opts()); nb.err != nil {
		return
	}
	cpu0 := cpuTime()
	if nb.err = nodeBenchWrite(nb.db); nb.err != nil {
		return
	}
	fillCPU := cpuTime() - cpu0
	if os.Getenv("LSM_NODEBENCH_BUSY") == "" {
		nb.db.waitIdle()
	}
	nb.present, nb.absent = nodeBenchSplit(nodeBenchSetKeys())
	nodeBenchShape(nb.db, fillCPU)
}

// nodeBenchSetKeys returns which key numbers nodeBenchWrite sets.
func nodeBenchSetKeys() []bool {
	set := make([]bool, nodeBenchKeys)
	nodeBenchDraw(func(i uint32) { set[i] = true }, func() {})
	return set
}

// nodeBenchDraw draws the fill's keys, calling key for each and batch after
// every 16.
func nodeBenchDraw(key func(uint32), batch func()) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range nodeBenchSets / 16 {
		for range 16 {
			key(uint32(rng.IntN(nodeBenchKeys)))
		}
		batch()
	}
}

func nodeBenchSplit(set []bool) (present, absent []uint32) {
	for i, ok := range set {
		if ok {
			present = append(present, uint32(i))
		} else {
			absent = append(absent, uint32(i))
		}
	}
	return present, absent
}

// nodeBenchWrite is the fill: 2M Sets in batches of 16.
func nodeBenchWrite(db *DB) error {
	value := []byte{0, 'x', 'x', 'x'}
	var bt logkv.Batch
	var k []byte
	var err error
	nodeBenchDraw(func(i uint32) {
		k = nodeBenchKey(k, i)
		bt.Set(k, value)
	}, func() {
		if err == nil {
			err = db.Apply(&bt, nil)
		}
		bt.Reset()
	})
	return err
}

// nodeBenchShape prints the DB's shape (and the fill's CPU, if known).
func nodeBenchShape(db *DB, fillCPU int64) {
	fmt.Fprintf(os.Stderr, "nodebench: %d present, fill %.0f ns CPU a set (0: not filled in this run); %s\n",
		len(nodeBench.present), float64(fillCPU)/nodeBenchSets, dbShape(db))
}

// dbShape describes the DB's memtables and levels.
func dbShape(db *DB) string {
	rs := db.loadReadState()
	defer rs.unref()
	shape := fmt.Sprintf("memtable %d entries, %d immutable;", rs.mem.sl.Len(), len(rs.imm))
	for lvl := range manifest.NumLevels {
		if n := len(rs.v.Levels[lvl]); n > 0 {
			shape += fmt.Sprintf(" L%d %d tables %d MB;", lvl, n, rs.v.LevelSize(lvl)>>20)
		}
	}
	return shape
}

// tablesProbed returns how many tables a Get of key at the DB's latest
// state would look in if no memtable held it: every L0 table whose range
// holds key, and the one table of each deeper level whose range does, as
// DB.get walks them (the filter then rules most of them out).
func tablesProbed(db *DB, key []byte) int {
	rs := db.loadReadState()
	defer rs.unref()
	n := 0
	for _, f := range rs.v.Levels[0] {
		if inRange(f, key) {
			n++
		}
	}
	for lvl := 1; lvl < manifest.NumLevels; lvl++ {
		files := rs.v.Levels[lvl]
		if i := manifest.SearchLevel(files, key); i < len(files) && inRange(files[i], key) {
			n++
		}
	}
	return n
}

// growStack uses 64 KiB of stack, so that the goroutine's stack is at least
// that large afterwards.
//
//go:noinline
func growStack() byte {
	var a [64 << 10]byte
	a[len(a)-1] = 1
	return a[len(a)-1] + a[0]
}
