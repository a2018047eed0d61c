package bitcask

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
)

// Fault injection: damage every kind of file a bitcask directory holds, one
// byte flip or one truncation at a time, after a clean Close and after a
// simulated crash, and require that Open either fails with ErrCorrupt
// naming the damaged file or opens with every acknowledged (synced) write
// intact and no wrong value.
//
// Two exceptions are inherent and documented in recover.go; the test checks
// that nothing is lost beyond them, and that the loss is logged:
//   - After a crash, the newest append file has no hint recording its size,
//     so a truncation of it is a file whose later writes never happened:
//     Open recovers exactly the writes that lie before the cut.
//   - After a crash, the records of the last group commit are vouched for
//     by no later record, so a flip in them is cut as a torn tail: Open
//     recovers exactly the writes before the cut, which is no earlier than
//     the start of that last group.
//
// And one is by design: Open reads no values of a file it loads from its
// hint, so a flipped byte there fails the reads of the affected key with
// ErrCorrupt naming the file (never a wrong value) instead of failing Open.

// faultOp is one write of the scenario: where its batch ends in which file,
// and what it did.
type faultOp struct {
	fid   uint32
	end   int64 // the offset after its batch's last record
	key   string
	value string // "" for a delete
	acked bool   // synced before it returned
}

// faultScenario is a directory to damage and what was written to it.
type faultScenario struct {
	fs     *vfs.MemFS
	ops    []faultOp
	keys   []string
	newest uint32 // the newest append file
	// lastGroup is where the last group commit of acknowledged writes
	// starts in the newest file: after a crash, damage from there on may be
	// cut as a torn tail.
	lastGroup int64
}

// buildFaultScenario writes, with Sync, keys over several files, overwrites
// and deletes most, merges (with an iterator open, so the inputs and the
// manifest stay on disk), writes more, and then stops cleanly or crashes
// with some unsynced writes in flight.
func buildFaultScenario(t *testing.T, crash bool) *faultScenario {
	fs := newMem(t)
	opts := Options{MaxFileSize: 2 << 10, BufferSize: 128, DisableAutoMerge: true, MergeThreshold: 0.3,
		Logger: slog.New(slog.DiscardHandler)}
	db := openMem(t, fs, opts)
	sc := &faultScenario{}
	keys := map[string]bool{}
	apply := func(sync bool, kvs ...string) {
		var b logkv.Batch
		for i := 0; i < len(kvs); i += 2 {
			if kvs[i+1] == "" {
				b.Delete([]byte(kvs[i]))
			} else {
				b.Set([]byte(kvs[i]), []byte(kvs[i+1]))
			}
		}
		require.NoError(t, db.Apply(&b, &logkv.WriteOptions{Sync: sync}))
		db.wmu.Lock()
		fid, end := db.active.id, db.active.size
		db.wmu.Unlock()
		for i := 0; i < len(kvs); i += 2 {
			sc.ops = append(sc.ops, faultOp{fid: fid, end: end, key: kvs[i], value: kvs[i+1], acked: sync})
			keys[kvs[i]] = true
		}
	}
	val := func(i, round int) string {
		return fmt.Sprintf("v%d.%d-%s", i, round, strings.Repeat("x", (i*7+round)%40))
	}
	for i := range 60 {
		apply(true, fmt.Sprintf("k%03d", i), val(i, 0))
	}
	for i := range 40 {
		if i%9 == 4 {
			apply(true, fmt.Sprintf("k%03d", i), "")
		} else {
			apply(true, fmt.Sprintf("k%03d", i), val(i, 1))
		}
	}
	apply(true, "batch-a", "1", "batch-b", "2", "k001", "")
	it, err := db.NewIter(nil) // pins the merge's inputs: they and the manifest stay
	require.NoError(t, err)
	merged, err := db.Merge()
	require.NoError(t, err)
	require.True(t, merged)
	for i := 60; i < 75; i++ {
		if i%5 == 0 {
			apply(true, fmt.Sprintf("k%03d", i), val(i, 0), fmt.Sprintf("k%03d", i-50), val(i-50, 2))
		} else {
			apply(true, fmt.Sprintf("k%03d", i), val(i, 0))
		}
	}
	sc.newest = db.active.id
	var lastAcked []int64
	for _, op := range sc.ops {
		if op.fid == sc.newest && (len(lastAcked) == 0 || lastAcked[len(lastAcked)-1] != op.end) {
			lastAcked = append(lastAcked, op.end)
		}
	}
	require.Greater(t, len(lastAcked), 2, "the newest file needs a few batches")
	sc.lastGroup = lastAcked[len(lastAcked)-2]

	if crash {
		// Closed files get their hints in the background: wait for them,
		// so that each file kind is in the directory to be damaged.
		deadline := time.Now().Add(10 * time.Second)
		for {
			db.kickWorker()
			db.kmu.RLock()
			missing := 0
			for _, df := range db.files {
				if !df.active && !df.hasHint {
					missing++
				}
			}
			db.kmu.RUnlock()
			if missing == 0 {
				break
			}
			require.True(t, time.Now().Before(deadline), "%d hints still missing", missing)
			time.Sleep(time.Millisecond)
		}
		for i := range 4 { // unsynced, flushed to the file: a torn tail to be
			apply(false, fmt.Sprintf("u%d", i), val(i, 9))
		}
		require.Equal(t, sc.newest, db.active.id, "the unsynced writes must stay in the newest file")
		sc.fs = fs.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(7, 7)), Data: vfs.TornUnsyncedData})
		require.NoError(t, db.Close())
	} else {
		require.NoError(t, db.Close())
		sc.fs = fs
	}
	require.NoError(t, it.Close())
	names, err := sc.fs.List(testDir)
	require.NoError(t, err)
	for _, kind := range []func(string) bool{
		func(n string) bool { return strings.HasSuffix(n, dataSuffix) },
		func(n string) bool { return strings.HasSuffix(n, hintSuffix) },
		func(n string) bool { return strings.HasPrefix(n, mergePrefix) },
		func(n string) bool { return n == lockName },
	} {
		require.True(t, slices.ContainsFunc(names, kind), "a file kind is missing from %v", names)
	}
	sc.keys = slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	})
	return sc
}

// expected returns the state after the writes that survive when the newest
// file holds its first size bytes (size < 0: all of it).
func (sc *faultScenario) expected(size int64) map[string]string {
	m := map[string]string{}
	for _, op := range sc.ops {
		if size >= 0 && op.fid == sc.newest && op.end > size {
			continue
		}
		if !op.acked && size < 0 {
			continue
		}
		if op.value == "" {
			delete(m, op.key)
		} else {
			m[op.key] = op.value
		}
	}
	return m
}

// faultCase is one damage: a flip of the byte at off, or a cut to off bytes.
type faultCase struct {
	name string // the file's base name
	off  int64
	cut  bool
}

func (c faultCase) String() string {
	if c.cut {
		return fmt.Sprintf("%s cut to %d bytes", c.name, c.off)
	}
	return fmt.Sprintf("%s byte %d flipped", c.name, c.off)
}

// faultOffsets samples the offsets of a file of size n: every byte of its
// first 64 and last 16, and every stride-th byte between, shifted per file.
func faultOffsets(n, stride, shift int64) []int64 {
	var offs []int64
	for off := int64(0); off < n; off++ {
		if off < 64 || off >= n-16 || (off+shift)%stride == 0 {
			offs = append(offs, off)
		}
	}
	return offs
}

func TestFaultInjection(t *testing.T) {
	// Every byte of each file's first 64 and last 16, and a sample between:
	// about 4,000 damaged directories, 1,000 with -short (seconds either way,
	// under -race too).
	stride := int64(5)
	switch {
	case testing.Short():
		stride = 41
	case raceEnabled:
		stride = 11
	}
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "clean", true: "crash"}[crash], func(t *testing.T) {
			sc := buildFaultScenario(t, crash)
			// Undamaged, the directory opens with everything acknowledged.
			checkFaultCase(t, sc, crash, nil)
			names, err := sc.fs.List(testDir)
			require.NoError(t, err)
			cases := 0
			for i, name := range names {
				st, err := sc.fs.Stat(filepath.Join(testDir, name))
				require.NoError(t, err)
				offs := faultOffsets(st.Size(), stride, int64(i))
				for _, off := range offs {
					checkFaultCase(t, sc, crash, &faultCase{name: name, off: off})
					checkFaultCase(t, sc, crash, &faultCase{name: name, off: off, cut: true})
					cases += 2
				}
			}
			t.Logf("%d damaged directories opened and checked (files %v)", cases, names)
		})
	}
}

// checkFaultCase damages a copy of the scenario's directory as c says (nil:
// not at all), opens it and checks the outcome.
func checkFaultCase(t *testing.T, sc *faultScenario, crash bool, c *faultCase) {
	t.Helper()
	fs := sc.fs.CrashClone(vfs.CrashOptions{}) // a copy: everything in it is synced
	what := "undamaged"
	var damagedPath string
	if c != nil {
		what = c.String()
		damagedPath = filepath.Join(testDir, c.name)
		b, err := readAll(fs, damagedPath)
		require.NoError(t, err)
		if c.cut {
			b = b[:c.off]
		} else {
			b[c.off] ^= 0x20
		}
		writeFile(t, fs, damagedPath, b)
	}
	newestPath := filepath.Join(testDir, fileName(sc.newest, dataSuffix))
	newestBefore := int64(-1)
	if st, err := fs.Stat(newestPath); err == nil {
		newestBefore = st.Size()
	}

	var logs logRecorder
	db, err := Open(testDir, &Options{FS: fs, MaxFileSize: 2 << 10, DisableAutoMerge: true, Logger: slog.New(&logs)})
	if err != nil {
		require.NotNil(t, c, "undamaged: %v", err)
		require.ErrorIs(t, err, logkv.ErrCorrupt, what)
		require.ErrorContains(t, err, c.name, "%s: the error does not name the file", what)
		return
	}
	defer func() { require.NoError(t, db.Close(), what) }()

	// What survived of the newest file decides which writes must be there.
	// Only after a crash may it have lost acknowledged writes, and only
	// through the two inherent exceptions.
	want := sc.expected(-1)
	if crash {
		size := int64(0)
		if st, err := fs.Stat(newestPath); err == nil {
			size = st.Size()
		}
		want = sc.expected(size)
		damagedNewest := c != nil && c.name == fileName(sc.newest, dataSuffix)
		acked := sc.expected(-1)
		for _, k := range sc.keys {
			if strings.HasPrefix(k, "u") {
				continue // never acknowledged
			}
			w, wok := want[k]
			a, aok := acked[k]
			if (w != a || wok != aok) && !(damagedNewest && (c.cut || size >= sc.lastGroup)) {
				t.Fatalf("%s: acknowledged write of %q (%q, present %v) lost (the newest file recovered to %d bytes; its last group starts at %d)",
					what, k, a, aok, size, sc.lastGroup)
			}
		}
		if size < newestBefore {
			logged := false
			for _, m := range logs.recs {
				if m["file"] == newestPath {
					logged = true
				}
			}
			require.True(t, logged, "%s: %d bytes of %s removed without a log record", what, newestBefore-size, newestPath)
		}
	}
	for _, k := range sc.keys {
		v, err := db.Get([]byte(k))
		switch w, ok := want[k]; {
		case err == nil:
			require.True(t, ok, "%s: %q=%q should be absent", what, k, v)
			require.Equal(t, w, string(v), "%s: wrong value for %q", what, k)
		case errors.Is(err, logkv.ErrNotFound):
			require.False(t, ok, "%s: %q missing, want %q", what, k, w)
		default:
			// Open reads no values of a file loaded from its hint: a
			// damaged value is found by the read, and named.
			require.ErrorIs(t, err, logkv.ErrCorrupt, "%s: Get(%q)", what, k)
			require.NotNil(t, c, "undamaged: Get(%q): %v", k, err)
			require.True(t, strings.HasSuffix(c.name, dataSuffix), "%s: Get(%q): %v", what, k, err)
			require.ErrorContains(t, err, c.name, what)
		}
	}
}
