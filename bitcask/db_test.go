package bitcask

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
)

func TestOptions(t *testing.T) {
	var o Options
	require.NoError(t, yaml.Unmarshal([]byte(`
max_file_size: 1048576
buffer_size: 4096
sync: interval
sync_interval: 250ms
merge_threshold: 0.25
disable_auto_merge: true
`), &o))
	require.Equal(t, Options{MaxFileSize: 1 << 20, BufferSize: 4096, Sync: SyncInterval, SyncInterval: 250 * time.Millisecond,
		MergeThreshold: 0.25, DisableAutoMerge: true}, o)

	d := DefaultOptions()
	require.NoError(t, d.Validate())
	require.Equal(t, vfs.Default, d.FS)

	for _, bad := range []Options{
		{MaxFileSize: 10},
		{MaxFileSize: 3 << 30},
		{Sync: "sometimes"},
		{MergeThreshold: 1.5},
		{MergeThreshold: -1},
		{BufferSize: -1},
	} {
		fs := vfs.NewMem()
		bad.FS = fs
		_, err := Open("/x", &bad)
		require.Error(t, err, "%+v", bad)
		names, _ := fs.List("/")
		require.Empty(t, names, "Open touched the disk before validating %+v", bad)
	}

	// Open copies the options: the caller's stay as they were.
	mine := Options{FS: newMem(t)}
	db, err := Open(testDir, &mine)
	require.NoError(t, err)
	require.Zero(t, mine.MaxFileSize)
	require.NoError(t, db.Close())

	// The registry's OpenFunc takes nil or *Options.
	_, err = logkv.Open("bitcask", t.TempDir(), Options{})
	require.ErrorContains(t, err, "*bitcask.Options")
	e, err := logkv.Open("bitcask", t.TempDir(), &Options{FS: newMem(t)})
	require.NoError(t, err)
	require.NoError(t, e.Close())
}

func TestLock(t *testing.T) {
	fs := newMem(t)
	db := openMem(t, fs, Options{})
	_, err := Open(testDir, &Options{FS: fs})
	require.ErrorIs(t, err, vfs.ErrLocked)
	require.NoError(t, db.Close())
	db = openMem(t, fs, Options{})
	require.NoError(t, db.Close())

	dir := t.TempDir()
	db, err = Open(dir, nil)
	require.NoError(t, err)
	_, err = Open(dir, nil)
	require.ErrorIs(t, err, vfs.ErrLocked)
	require.NoError(t, db.Close())
}

// TestNoGoroutineLeak: Close stops the background merger and syncer.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	db := openMem(t, newMem(t), Options{Sync: SyncInterval, SyncInterval: time.Millisecond})
	require.NoError(t, db.Set([]byte("k"), []byte("v"), nil))
	require.Greater(t, runtime.NumGoroutine(), before)
	require.NoError(t, db.Close())
	// Close waited for them (WaitGroup); goroutines of the runtime and of
	// the tests before this one may still be winding down. A leak fails
	// after 10 s.
	// (Polled here: require.Eventually would add a goroutine of its own.)
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before)
}

// TestSyncInterval: the background syncer makes writes durable on its own.
func TestSyncInterval(t *testing.T) {
	fs := newMem(t)
	db := openMem(t, fs, Options{Sync: SyncInterval, SyncInterval: time.Millisecond})
	require.NoError(t, db.Set([]byte("k"), []byte("v"), nil))
	db.wmu.Lock()
	pos := db.pos
	db.wmu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for db.synced.Load() < pos && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	crashed := fs.CrashClone(vfs.CrashOptions{})
	require.NoError(t, db.Close())
	db = openMem(t, crashed, Options{})
	requireValue(t, db, "k", "v")
	require.NoError(t, db.Close())
}

func metric(m logkv.Metrics, name string) float64 {
	for _, d := range m.Detail {
		if d.Name == name {
			return d.Value
		}
	}
	return -1
}

// TestReopenHintsAndScan: Open loads closed files from hints, and gets the
// same state by scanning when the hints are gone or damaged.
func TestReopenHintsAndScan(t *testing.T) {
	fs := newMem(t)
	opts := Options{MaxFileSize: 4 << 10, DisableAutoMerge: true}
	db := openMem(t, fs, opts)
	model := fillForMerge(t, db, 500)
	seq := db.LastSeq()
	require.NoError(t, db.Close())

	db = openMem(t, fs, opts)
	m := db.Metrics()
	require.Zero(t, metric(m, "bitcask_open_scanned_files"))
	require.Greater(t, metric(m, "bitcask_open_hint_files"), 1.0)
	require.Equal(t, seq, db.LastSeq())
	requireModel(t, db, model)
	require.NoError(t, db.Close())

	names, err := fs.List(testDir)
	require.NoError(t, err)
	damaged := false
	for _, n := range names {
		if strings.HasSuffix(n, hintSuffix) {
			p := filepath.Join(testDir, n)
			if !damaged {
				b, err := readAll(fs, p)
				require.NoError(t, err)
				b[len(b)/2] ^= 1
				f, err := fs.Create(p)
				require.NoError(t, err)
				_, err = f.Write(b)
				require.NoError(t, err)
				require.NoError(t, f.Close())
				damaged = true
				continue
			}
			require.NoError(t, fs.Remove(p))
		}
	}
	db = openMem(t, fs, opts)
	m = db.Metrics()
	require.Greater(t, metric(m, "bitcask_open_scanned_files"), 1.0)
	require.Equal(t, seq, db.LastSeq())
	requireModel(t, db, model)
	require.NoError(t, db.Close())
}

// TestMergeConcurrent merges over and over while writers overwrite and
// delete their keys and readers read, then compares with the model; a
// snapshot taken before the merges still reads its state after them.
func TestMergeConcurrent(t *testing.T) {
	fs := newMem(t)
	opts := Options{MaxFileSize: 8 << 10, MergeThreshold: 0.3}
	db := openMem(t, fs, opts)
	base := fillForMerge(t, db, 300)
	snap, err := db.NewSnapshot()
	require.NoError(t, err)

	const writers, keysPer = 4, 60
	rounds := 400
	if testing.Short() {
		rounds = 150
	}
	models := make([]map[string]string, writers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 16)
	for w := range writers {
		models[w] = map[string]string{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				k := fmt.Sprintf("w%d-%03d", w, r%keysPer)
				if r%7 == 3 {
					if err := db.Delete([]byte(k), nil); err != nil {
						errs <- err
						return
					}
					delete(models[w], k)
					continue
				}
				v := fmt.Sprintf("%s=%d%s", k, r, strings.Repeat("p", r%50))
				if err := db.Set([]byte(k), []byte(v), &logkv.WriteOptions{Sync: r%50 == 0}); err != nil {
					errs <- err
					return
				}
				models[w][k] = v
				got, err := db.Get([]byte(k))
				if err != nil || string(got) != v {
					errs <- fmt.Errorf("read own write %q: %q, %v", k, got, err)
					return
				}
			}
		}()
	}
	var readers sync.WaitGroup
	readers.Add(2)
	for range 2 {
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for k, v := range base {
					if got, err := db.Get([]byte(k)); err != nil || string(got) != v {
						errs <- fmt.Errorf("base key %q: %q, %v", k, got, err)
						return
					}
				}
				it, err := db.NewIter(&logkv.IterOptions{UpperBound: []byte("l")})
				if err != nil {
					errs <- err
					return
				}
				n := 0
				for ok := it.First(); ok; ok = it.Next() {
					if string(it.Value()) != base[string(it.Key())] {
						errs <- fmt.Errorf("iter %q: %q", it.Key(), it.Value())
					}
					n++
				}
				if err := it.Close(); err != nil || n != len(base) {
					errs <- fmt.Errorf("iter saw %d keys, %v", n, err)
					return
				}
			}
		}()
	}
	merges := 0
	mergeDone := make(chan struct{})
	go func() {
		defer close(mergeDone)
		// Merge before looking at stop: on a loaded machine the writers can
		// finish before this goroutine first runs, and the files
		// fillForMerge left are past the threshold either way.
		for {
			ok, err := db.Merge()
			if err != nil {
				errs <- err
				return
			}
			if ok {
				merges++
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	<-mergeDone
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d merges, %v", merges, db.MergeStats())
	require.Greater(t, db.MergeStats().Merges, uint64(0))

	model := map[string]string{}
	for k, v := range base {
		model[k] = v
	}
	for _, m := range models {
		for k, v := range m {
			model[k] = v
		}
	}
	requireModel(t, db, model)
	requireModel(t, snap, base)
	require.NoError(t, snap.Close())
	require.NoError(t, db.Close())
	db = openMem(t, fs, opts)
	requireModel(t, db, model)
	require.NoError(t, db.Close())
	// Every merged-away file was deleted once nothing held it.
	names, err := fs.List(testDir)
	require.NoError(t, err)
	for _, n := range names {
		require.False(t, strings.HasPrefix(n, mergePrefix), "manifest left: %s", n)
	}
}

// TestMergeReclaims: a merge rewrites only live data, and the space of the
// inputs goes away when the last snapshot holding them closes.
func TestMergeReclaims(t *testing.T) {
	fs := newMem(t)
	opts := Options{MaxFileSize: 4 << 10, DisableAutoMerge: true}
	db := openMem(t, fs, opts)
	model := fillForMerge(t, db, 600)
	// The worker holds each file it writes a hint for until the hint is
	// done, and a merge's input it holds outlives the snapshot below: let
	// it write every hint first, so that only the snapshot holds them.
	waitHints(db)
	before := db.Metrics().DiskBytes
	snap, err := db.NewSnapshot()
	require.NoError(t, err)
	merged, err := db.Merge()
	require.NoError(t, err)
	require.True(t, merged)
	after := db.Metrics().DiskBytes
	require.Less(t, after, before)
	requireNoDuplicates(t, db, model)

	countData := func() int {
		names, err := fs.List(testDir)
		require.NoError(t, err)
		n := 0
		for _, name := range names {
			if strings.HasSuffix(name, dataSuffix) {
				n++
			}
		}
		return n
	}
	held := countData()
	requireModel(t, snap, model) // reads the merged-away files
	require.NoError(t, snap.Close())
	require.Less(t, countData(), held, "inputs deleted when the snapshot let go")
	requireModel(t, db, model)
	require.NoError(t, db.Close())
}

// TestKeydirMemory reports the keydir's memory per key, by the engine's
// own count and by the Go heap, for 200k keys loaded by writes and by Open:
// 16-byte keys (held inline in the nodes) and 40-byte keys (with a tail).
func TestKeydirMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("memory measurement skipped with -short and -race")
	}
	const n = 200_000
	for _, klen := range []int{16, 40} {
		t.Run(fmt.Sprint(klen), func(t *testing.T) {
			fs := newMem(t)
			db := openMem(t, fs, Options{DisableAutoMerge: true})
			var b logkv.Batch
			for i := range n {
				b.Set([]byte(fmt.Sprintf("%0*d", klen, (i*7919)%n)), []byte("v"))
				if b.Len() == 1000 {
					require.NoError(t, db.Apply(&b, nil))
					b.Reset()
				}
			}
			perKey := metric(db.Metrics(), "bitcask_keydir_overhead_bytes_per_key")
			t.Logf("random inserts: %.1f B/key overhead (engine count)", perKey)
			require.Less(t, perKey, 64.0)
			require.NoError(t, db.Close())

			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			db = openMem(t, fs, Options{DisableAutoMerge: true})
			runtime.GC()
			runtime.ReadMemStats(&m1)
			perKey = metric(db.Metrics(), "bitcask_keydir_overhead_bytes_per_key")
			heap := float64(m1.HeapAlloc-m0.HeapAlloc)/n - float64(klen)
			t.Logf("after Open: %.1f B/key overhead (engine count), %.1f B/key heap beyond the %d-byte key", perKey, heap, klen)
			require.Less(t, perKey, 64.0)
			require.Less(t, heap, 64.0)
			require.NoError(t, db.Close())
		})
	}
}

// TestLastSeqSurvivesMergedDeletes: a merge that drops every record (keys
// written, then deleted) does not move LastSeq back after a reopen.
func TestLastSeqSurvivesMergedDeletes(t *testing.T) {
	fs := newMem(t)
	opts := Options{MaxFileSize: 1 << 10, DisableAutoMerge: true, MergeThreshold: 0.1}
	db := openMem(t, fs, opts)
	for i := range 40 {
		k, v := kv(i)
		require.NoError(t, db.Set([]byte(k), []byte(v), nil))
		require.NoError(t, db.Delete([]byte(k), nil))
	}
	// Rotate onto an empty active file, then merge everything away.
	db.wmu.Lock()
	require.NoError(t, db.rotate())
	db.wmu.Unlock()
	merged, err := db.Merge()
	require.NoError(t, err)
	require.True(t, merged)
	require.Zero(t, db.Metrics().Keys)
	seq := db.LastSeq()
	require.Equal(t, uint64(80), seq)
	require.NoError(t, db.Close())
	for range 2 {
		db = openMem(t, fs, opts)
		require.Equal(t, seq, db.LastSeq())
		require.NoError(t, db.Close())
	}
}

// TestWriteKeepsNoBatchBytes checks that the operations a write decodes
// (DB.ops) are emptied after it, so that they hold none of the caller's
// bytes, that the slice is kept for the next write, and that a batch of more
// than maxKeptOps operations does not leave its large slice behind. The
// written keys read back.
func TestWriteKeepsNoBatchBytes(t *testing.T) {
	db, err := Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer db.Close()
	for _, n := range []int{16, maxKeptOps + 1} {
		var b logkv.Batch
		for i := range n {
			b.Set(fmt.Appendf(nil, "key%06d", i), []byte("v"))
		}
		require.NoError(t, db.Apply(&b, nil))
		db.wmu.Lock()
		ops := db.ops[:cap(db.ops)]
		db.wmu.Unlock()
		require.Empty(t, db.ops)
		if n > maxKeptOps {
			require.Zero(t, cap(ops), "the slice of a batch of %d operations was kept", n)
		} else {
			require.GreaterOrEqual(t, cap(ops), n)
		}
		for _, op := range ops {
			require.Equal(t, writeOp{}, op, "an emptied slot still holds an operation")
		}
		v, err := db.Get(fmt.Appendf(nil, "key%06d", n-1))
		require.NoError(t, err)
		require.Equal(t, "v", string(v))
	}
}

// TestAppendGet checks that AppendGet, on the DB and on a snapshot, reads
// what Get reads, appended after the caller's bytes: for a key present (in
// the write buffer, in the file, after a reopen), absent and deleted.
func TestAppendGet(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, &Options{DisableAutoMerge: true, MaxFileSize: 1 << 12})
	require.NoError(t, err)
	keys := make([][]byte, 0, 300)
	for i := range 300 {
		k := fmt.Appendf(nil, "key%05d", i)
		keys = append(keys, k)
		require.NoError(t, db.Set(k, []byte(strings.Repeat("v", i%40)+fmt.Sprint(i)), nil))
	}
	for _, k := range keys[100:150] {
		require.NoError(t, db.Delete(k, nil))
	}
	absent := [][]byte{[]byte("a"), []byte("key00100x"), []byte("zzz")}
	check := func(name string, r logkv.Reader) {
		t.Helper()
		prefix := []byte("prefix:")
		for _, k := range append(append([][]byte{}, keys...), absent...) {
			want, werr := r.Get(k)
			dst := append(make([]byte, 0, 16), prefix...)
			got, gerr := logkv.AppendGet(r, dst, k)
			require.Equal(t, werr, gerr, "%s %s", name, k)
			require.Equal(t, string(prefix)+string(want), string(got), "%s %s", name, k)
			// With no buffer of the caller's, the value alone (or nil).
			got, gerr = logkv.AppendGet(r, nil, k)
			require.Equal(t, werr, gerr, "%s %s", name, k)
			require.Equal(t, want, got, "%s %s", name, k)
		}
	}
	_, ok := logkv.Engine(db).(logkv.ValueAppender)
	require.True(t, ok)
	snap, err := db.NewSnapshot()
	require.NoError(t, err)
	_, ok = snap.(logkv.ValueAppender)
	require.True(t, ok)
	// Writes after the snapshot: the DB sees them, the snapshot does not.
	require.NoError(t, db.Set(keys[0], []byte("newer"), nil))
	require.NoError(t, db.Delete(keys[1], nil))
	check("db", db)
	check("snapshot", snap)
	v, err := logkv.AppendGet(snap, nil, keys[1])
	require.NoError(t, err)
	require.NotEmpty(t, v)
	require.NoError(t, snap.Close())
	_, err = logkv.AppendGet(snap, []byte("x"), keys[0])
	require.ErrorIs(t, err, logkv.ErrClosed)
	require.NoError(t, db.Close())

	db, err = Open(dir, &Options{DisableAutoMerge: true, MaxFileSize: 1 << 12})
	require.NoError(t, err)
	check("reopened", db)
	require.NoError(t, db.Close())
	got, err := db.AppendGet([]byte("x"), keys[0])
	require.ErrorIs(t, err, logkv.ErrClosed)
	require.Equal(t, "x", string(got))
}

// waitHints waits until db's worker has written the hints of every closed
// file that lacked one, so that it holds no file afterwards (until more
// files are rotated out).
func waitHints(db *DB) {
	done := make(chan struct{})
	db.hintsNow <- done
	<-done
}
