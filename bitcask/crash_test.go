package bitcask

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
)

const testDir = "/db"

func openMem(t *testing.T, fs vfs.FS, o Options) *DB {
	t.Helper()
	o.FS = fs
	db, err := Open(testDir, &o)
	require.NoError(t, err)
	return db
}

func newMem(t *testing.T) *vfs.MemFS {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAllSynced(testDir))
	return fs
}

func kv(i int) (string, string) {
	return fmt.Sprintf("key%05d", i), fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%37))
}

func requireValue(t *testing.T, r logkv.Reader, k, want string) {
	t.Helper()
	v, err := r.Get([]byte(k))
	require.NoError(t, err, "Get(%q)", k)
	require.Equal(t, want, string(v), "Get(%q)", k)
}

// TestCrashTornTail: after a power loss, every synced write is there, and
// the unsynced ones that survive form a prefix of history, cut at the first
// bad record.
func TestCrashTornTail(t *testing.T) {
	for seed := range uint64(24) {
		fs := newMem(t)
		db := openMem(t, fs, Options{MaxFileSize: 8 << 10})
		const synced, total = 300, 600
		for i := range total {
			k, v := kv(i)
			require.NoError(t, db.Set([]byte(k), []byte(v), &logkv.WriteOptions{Sync: i == synced-1}))
		}
		data := []vfs.DataLoss{vfs.DropUnsyncedData, vfs.TornUnsyncedData, vfs.CorruptUnsyncedData}[seed%3]
		crashed := fs.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, 9)), Data: data, Entries: vfs.KeepEntryPrefix})
		require.NoError(t, db.Close())

		db = openMem(t, crashed, Options{MaxFileSize: 8 << 10})
		n := int(db.LastSeq())
		require.GreaterOrEqual(t, n, synced, "seed %d: synced writes lost", seed)
		require.LessOrEqual(t, n, total)
		for i := range total {
			k, v := kv(i)
			if i < n {
				requireValue(t, db, k, v)
			} else {
				_, err := db.Get([]byte(k))
				require.ErrorIs(t, err, logkv.ErrNotFound, "seed %d: key %d after the recovered prefix (%d)", seed, i, n)
			}
		}
		// The engine goes on from there and keeps what it writes.
		require.NoError(t, db.Set([]byte("after"), []byte("crash"), nil))
		require.Equal(t, uint64(n+1), db.LastSeq())
		require.NoError(t, db.Close())
		db = openMem(t, crashed, Options{MaxFileSize: 8 << 10})
		requireValue(t, db, "after", "crash")
		require.NoError(t, db.Close())
	}
}

// TestCrashBatchAtomic: a batch whose last record did not reach the disk
// is dropped whole.
func TestCrashBatchAtomic(t *testing.T) {
	for seed := range uint64(24) {
		fs := newMem(t)
		db := openMem(t, fs, Options{BufferSize: 64})
		require.NoError(t, db.Set([]byte("base"), []byte("v"), &logkv.WriteOptions{Sync: true}))
		for b := range 20 {
			var batch logkv.Batch
			for i := range 10 {
				batch.Set([]byte(fmt.Sprintf("b%02d-%d", b, i)), []byte(strings.Repeat("v", 50)))
			}
			require.NoError(t, db.Apply(&batch, nil))
		}
		crashed := fs.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, 3)), Data: vfs.TornUnsyncedData})
		require.NoError(t, db.Close())
		db = openMem(t, crashed, Options{})
		n := int(db.LastSeq()) - 1 // batches recovered
		for b := range 20 {
			for i := range 10 {
				_, err := db.Get([]byte(fmt.Sprintf("b%02d-%d", b, i)))
				if b < n {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, logkv.ErrNotFound, "seed %d batch %d op %d (recovered %d batches)", seed, b, i, n)
				}
			}
		}
		require.NoError(t, db.Close())
	}
}

var errCrashed = errors.New("simulated crash")

// crashAt returns a test hook that takes a crash clone of fs at the named
// point and fails the operation there (the engine is then abandoned).
func crashAt(fs *vfs.MemFS, point string, seed uint64, clone **vfs.MemFS) func(string) error {
	return func(p string) error {
		if p != point || *clone != nil {
			return nil
		}
		*clone = fs.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, 5)), Data: vfs.TornUnsyncedData, Entries: vfs.KeepEntryPrefix})
		return errCrashed
	}
}

// fillForMerge writes n keys in small files, then overwrites two thirds of
// them, all synced, and returns the model.
func fillForMerge(t *testing.T, db *DB, n int) map[string]string {
	model := map[string]string{}
	for i := range n {
		k, v := kv(i)
		require.NoError(t, db.Set([]byte(k), []byte(v), nil))
		model[k] = v
	}
	for i := range n {
		if i%3 != 0 {
			k, _ := kv(i)
			v := "new-" + k
			require.NoError(t, db.Set([]byte(k), []byte(v), nil))
			model[k] = v
		}
	}
	require.NoError(t, db.Delete([]byte("key00000"), nil))
	delete(model, "key00000")
	require.NoError(t, db.Sync())
	return model
}

func requireModel(t *testing.T, r logkv.Reader, model map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	it, err := r.NewIter(nil)
	require.NoError(t, err)
	var got []string
	for ok := it.First(); ok; ok = it.Next() {
		got = append(got, string(it.Key()))
		require.Equal(t, model[string(it.Key())], string(it.Value()), "value of %q", it.Key())
	}
	require.NoError(t, it.Close())
	require.Equal(t, keys, got)
	for k, v := range model {
		requireValue(t, r, k, v)
	}
}

// requireNoDuplicates checks that the files' live bytes are exactly the
// model's records: no record is live twice, none is missing.
func requireNoDuplicates(t *testing.T, db *DB, model map[string]string) {
	t.Helper()
	var want int64
	for k, v := range model {
		want += int64(recordSize(len(k), len(v)))
	}
	var live int64
	db.kmu.RLock()
	for _, df := range db.files {
		live += df.liveBytes()
	}
	db.kmu.RUnlock()
	// Tombstones a merge kept count as live; this model has one delete.
	require.InDelta(t, want, live, float64(recordSize(len("key00000"), 0)))
}

// TestCrashMidMerge crashes at every point of a merge, and checks that
// what survives is the whole state, once.
func TestCrashMidMerge(t *testing.T) {
	opts := Options{MaxFileSize: 4 << 10, DisableAutoMerge: true, MergeThreshold: 0.4}
	for _, point := range []string{"merge-before-commit", "merge-after-commit", "rotate-after-sync"} {
		for seed := range uint64(6) {
			t.Run(fmt.Sprintf("%s/%d", point, seed), func(t *testing.T) {
				fs := newMem(t)
				db := openMem(t, fs, opts)
				model := fillForMerge(t, db, 400)
				var clone *vfs.MemFS
				db.testHook = crashAt(fs, point, seed, &clone)
				if point == "rotate-after-sync" {
					// A merge runs, then a rotation crashes.
					db.testHook = nil
					merged, err := db.Merge()
					require.NoError(t, err)
					require.True(t, merged)
					db.testHook = crashAt(fs, point, seed, &clone)
					for i := 0; clone == nil; i++ {
						err := db.Set([]byte(fmt.Sprintf("zz%05d", i)), []byte("v"), &logkv.WriteOptions{Sync: true})
						if err != nil {
							require.ErrorIs(t, err, errCrashed)
							break
						}
						model[fmt.Sprintf("zz%05d", i)] = "v"
					}
				} else {
					_, err := db.Merge()
					require.ErrorIs(t, err, errCrashed)
				}
				require.NotNil(t, clone)
				if err := db.Close(); point == "rotate-after-sync" {
					require.ErrorIs(t, err, errCrashed) // the failed rotation is sticky
				} else {
					require.NoError(t, err)
				}

				db = openMem(t, clone, opts)
				requireModel(t, db, model)
				requireNoDuplicates(t, db, model)
				require.NoError(t, db.Close())
				names, err := clone.List(testDir)
				require.NoError(t, err)
				for _, n := range names {
					require.False(t, strings.HasSuffix(n, mdataSuffix) || strings.HasPrefix(n, mergePrefix) || strings.HasSuffix(n, tmpSuffix), "left over: %s", n)
				}
			})
		}
	}
}

// TestCrashMidRotation: a crash between the sync of the old file and the
// new file's creation, or before the new header is durable, loses nothing
// that was synced.
func TestCrashMidRotation(t *testing.T) {
	for _, point := range []string{"rotate-before-sync", "rotate-after-sync"} {
		fs := newMem(t)
		opts := Options{MaxFileSize: 2 << 10}
		db := openMem(t, fs, opts)
		var clone *vfs.MemFS
		db.testHook = crashAt(fs, point, 1, &clone)
		model := map[string]string{}
		for i := 0; ; i++ {
			k, v := kv(i)
			err := db.Set([]byte(k), []byte(v), &logkv.WriteOptions{Sync: true})
			if err != nil {
				require.ErrorIs(t, err, errCrashed)
				break
			}
			model[k] = v
		}
		// The engine refuses writes after the failed rotation, and Close
		// reports the failure (and still releases the directory).
		require.ErrorIs(t, db.Set([]byte("x"), []byte("y"), nil), errCrashed)
		require.ErrorIs(t, db.Close(), errCrashed)
		db = openMem(t, clone, opts)
		requireModel(t, db, model)
		require.NoError(t, db.Set([]byte("x"), []byte("y"), nil))
		require.NoError(t, db.Close())
	}
}

// TestCorruptRecordMidFile: a damaged value in a closed file fails that
// key's reads with ErrCorrupt naming file and offset, every other key still
// reading, when Open loaded the file from its hint (Open reads no values);
// when Open has to scan the file, it fails with ErrCorrupt naming file and
// offset rather than open without the records it could not read.
func TestCorruptRecordMidFile(t *testing.T) {
	for _, withHints := range []bool{true, false} {
		t.Run(fmt.Sprintf("hints=%v", withHints), func(t *testing.T) {
			fs := newMem(t)
			opts := Options{MaxFileSize: 4 << 10, DisableAutoMerge: true}
			db := openMem(t, fs, opts)
			model := map[string]string{}
			for i := range 300 {
				k, v := kv(i)
				require.NoError(t, db.Set([]byte(k), []byte(v), nil))
				model[k] = v
			}
			victim := "key00010"
			db.kmu.RLock()
			e, _ := db.tree.get(victim)
			db.kmu.RUnlock()
			require.NoError(t, db.Close())

			// Flip a bit in the victim's value, in the middle of file e.fid.
			path := filepath.Join(testDir, fileName(e.fid, dataSuffix))
			b, err := readAll(fs, path)
			require.NoError(t, err)
			b[int(e.off)+recordHeaderSize+len(victim)+2] ^= 0x40
			f, err := fs.Create(path)
			require.NoError(t, err)
			_, err = f.Write(b)
			require.NoError(t, err)
			require.NoError(t, f.Sync())
			require.NoError(t, f.Close())
			if !withHints {
				names, err := fs.List(testDir)
				require.NoError(t, err)
				for _, n := range names {
					if strings.HasSuffix(n, hintSuffix) {
						require.NoError(t, fs.Remove(filepath.Join(testDir, n)))
					}
				}
			}

			if !withHints {
				o := opts
				o.FS = fs
				_, err := Open(testDir, &o)
				require.ErrorIs(t, err, logkv.ErrCorrupt)
				require.ErrorContains(t, err, fileName(e.fid, dataSuffix))
				require.ErrorContains(t, err, fmt.Sprintf("offset %d", e.off))
				return
			}
			db = openMem(t, fs, opts)
			defer db.Close()
			_, err = db.Get([]byte(victim))
			require.ErrorIs(t, err, logkv.ErrCorrupt)
			require.Contains(t, err.Error(), fileName(e.fid, dataSuffix))
			require.Contains(t, err.Error(), fmt.Sprintf("offset %d", e.off))
			for k, v := range model {
				if k != victim {
					requireValue(t, db, k, v)
				}
			}
			// An iterator reports it when it reaches the value.
			it, err := db.NewIter(nil)
			require.NoError(t, err)
			for ok := it.First(); ok; ok = it.Next() {
				it.Value()
			}
			require.ErrorIs(t, it.Close(), logkv.ErrCorrupt)
			// A merge leaves the damaged file alone.
			_, err = db.Merge()
			require.NoError(t, err)
		})
	}
}
