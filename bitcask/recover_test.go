package bitcask

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
)

// logRecorder is a slog handler keeping every record, for tests that check
// what recovery reports.
type logRecorder struct {
	mu   sync.Mutex
	recs []map[string]any
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.Any()
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, m)
	l.mu.Unlock()
	return nil
}

// cuts returns the torn tails logged: file, offset and bytes removed.
func (l *logRecorder) cuts() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, m := range l.recs {
		if strings.Contains(m["msg"].(string), "torn tail") {
			out = append(out, m)
		}
	}
	return out
}

// loadTestdata copies testdata/<name> into a new MemFS at testDir.
func loadTestdata(t *testing.T, name string) *vfs.MemFS {
	t.Helper()
	fs := newMem(t)
	ents, err := os.ReadDir(filepath.Join("testdata", name))
	require.NoError(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("testdata", name, e.Name()))
		require.NoError(t, err)
		writeFile(t, fs, filepath.Join(testDir, e.Name()), b)
	}
	require.NoError(t, fs.SyncDir(testDir))
	return fs
}

// writeFile replaces the content of path with b, durably.
func writeFile(t *testing.T, fs vfs.FS, path string, b []byte) {
	t.Helper()
	f, err := fs.Create(path)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
}

// abandon stops db as a killed process would stop: nothing more is written
// or synced, and what it wrote to the filesystem stays (the OS has it).
func abandon(db *DB) {
	db.closed.Store(true)
	close(db.quit)
	db.wg.Wait()
	db.closeFiles()
	db.lock.Close()
}

// TestGoldenFormat2 opens a directory written by this format's first
// version (testdata/format2: keys key00..key39 with "value N", key07
// deleted, two data files with hints), copied so the test leaves it as it is.
func TestGoldenFormat2(t *testing.T) {
	db := openMem(t, loadTestdata(t, "format2"), Options{})
	defer db.Close()
	require.Equal(t, uint64(41), db.LastSeq())
	for i := range 40 {
		k := fmt.Sprintf("key%02d", i)
		if i == 7 {
			_, err := db.Get([]byte(k))
			require.ErrorIs(t, err, logkv.ErrNotFound)
			continue
		}
		requireValue(t, db, k, fmt.Sprintf("value %d", i))
	}
}

// TestGoldenFormat3 opens a directory of this format (testdata/format3, the
// content of testdata/format2: keys key00..key39 with "value N", key07
// deleted, two data files with hints), copied so the test leaves it as it
// is. LOGKV_WRITE_GOLDEN=1 writes it anew (only when the format changes:
// the point is that old files keep opening).
func TestGoldenFormat3(t *testing.T) {
	if os.Getenv("LOGKV_WRITE_GOLDEN") != "" {
		fs := newMem(t)
		db := openMem(t, fs, Options{MaxFileSize: 1024})
		for i := range 40 {
			require.NoError(t, db.Set([]byte(fmt.Sprintf("key%02d", i)), []byte(fmt.Sprintf("value %d", i)), nil))
		}
		require.NoError(t, db.Delete([]byte("key07"), nil))
		require.NoError(t, db.Close())
		names, err := fs.List(testDir)
		require.NoError(t, err)
		require.NoError(t, os.RemoveAll(filepath.Join("testdata", "format3")))
		require.NoError(t, os.MkdirAll(filepath.Join("testdata", "format3"), 0o755))
		for _, name := range names {
			if name == "LOCK" {
				continue
			}
			b, err := readAll(fs, filepath.Join(testDir, name))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join("testdata", "format3", name), b, 0o644))
		}
	}
	fs := loadTestdata(t, "format3")
	for _, name := range []string{"00000001.data", "00000002.data"} {
		b, err := readAll(fs, filepath.Join(testDir, name))
		require.NoError(t, err)
		h, why, err := decodeFileHeader(name, b)
		require.NoError(t, err)
		require.Empty(t, why)
		require.NotZero(t, h.salt, "format 3 salts its records")
	}
	db := openMem(t, fs, Options{})
	defer db.Close()
	require.Equal(t, uint64(41), db.LastSeq())
	for i := range 40 {
		k := fmt.Sprintf("key%02d", i)
		if i == 7 {
			_, err := db.Get([]byte(k))
			require.ErrorIs(t, err, logkv.ErrNotFound)
			continue
		}
		requireValue(t, db, k, fmt.Sprintf("value %d", i))
	}
}

// A format 2 directory takes new writes in format 3 files beside its old
// ones, and reopens with both; a merge rewrites the old records salted.
func TestFormat2UpgradesInPlace(t *testing.T) {
	fs := loadTestdata(t, "format2")
	db := openMem(t, fs, Options{})
	require.NoError(t, db.Set([]byte("key07"), []byte("back"), &logkv.WriteOptions{Sync: true}))
	require.NoError(t, db.Close())
	// DisableAutoMerge: the background worker would otherwise merge first
	// at times, and the Merge below would find nothing left to do.
	db = openMem(t, fs, Options{MergeThreshold: 0.01, DisableAutoMerge: true})
	requireValue(t, db, "key07", "back")
	requireValue(t, db, "key01", "value 1")
	merged, err := db.Merge()
	require.NoError(t, err)
	require.True(t, merged)
	require.NoError(t, db.Close())
	names, err := fs.List(testDir)
	require.NoError(t, err)
	for _, name := range names {
		if _, suffix, ok := parseFileName(name); ok && suffix == dataSuffix {
			b, err := readAll(fs, filepath.Join(testDir, name))
			require.NoError(t, err)
			h, _, err := decodeFileHeader(name, b)
			require.NoError(t, err)
			require.NotZero(t, h.salt, "%s: a format 2 file is left after the merge", name)
		}
	}
	db = openMem(t, fs, Options{})
	defer db.Close()
	for i := range 40 {
		want := fmt.Sprintf("value %d", i)
		if i == 7 {
			want = "back"
		}
		requireValue(t, db, fmt.Sprintf("key%02d", i), want)
	}
}

// TestGoldenFormat1Refused: a directory of format 1 files (testdata/format1,
// the same content written before the synced field) is refused with
// ErrFormat naming a file, and left unchanged.
func TestGoldenFormat1Refused(t *testing.T) {
	fs := loadTestdata(t, "format1")
	before, err := readAll(fs, filepath.Join(testDir, "00000002.data"))
	require.NoError(t, err)
	_, err = Open(testDir, &Options{FS: fs})
	require.ErrorIs(t, err, ErrFormat)
	require.ErrorIs(t, err, logkv.ErrFormat, "bitcask's ErrFormat wraps logkv's")
	require.ErrorContains(t, err, "00000001.data is in data file format 1")
	after, err := readAll(fs, filepath.Join(testDir, "00000002.data"))
	require.NoError(t, err)
	require.Equal(t, before, after)
	names, err := fs.List(testDir)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"00000001.data", "00000001.hint", "00000002.data", "00000002.hint", "LOCK"}, names)
}

// TestFlipInSyncedActiveFile is the reviewer's reproduction: 1,000 keys
// written with Sync, a crash, one bit flipped at 10% of the active file.
// Records after the damage say those bytes were synced, so Open fails with
// ErrCorrupt naming the file and offset, and cuts nothing.
func TestFlipInSyncedActiveFile(t *testing.T) {
	fs := newMem(t)
	db := openMem(t, fs, Options{})
	for i := range 1000 {
		k, v := kv(i)
		require.NoError(t, db.Set([]byte(k), []byte(v), &logkv.WriteOptions{Sync: true}))
	}
	crashed := fs.CrashClone(vfs.CrashOptions{})
	require.NoError(t, db.Close())

	path := filepath.Join(testDir, fileName(1, dataSuffix))
	b, err := readAll(crashed, path)
	require.NoError(t, err)
	b[len(b)/10] ^= 0x08
	writeFile(t, crashed, path, b)

	var logs logRecorder
	_, err = Open(testDir, &Options{FS: crashed, Logger: slog.New(&logs)})
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	require.ErrorContains(t, err, path)
	require.ErrorContains(t, err, "in bytes that were synced")
	after, err := readAll(crashed, path)
	require.NoError(t, err)
	require.Equal(t, b, after, "the file was changed")
	require.Empty(t, logs.cuts())
}

// TestHintSizeMismatch: a data file whose hint (written after the file's
// last sync) records another size lost or gained bytes since; Open fails
// with ErrCorrupt naming the data file rather than cut it or ignore the hint.
func TestHintSizeMismatch(t *testing.T) {
	for _, delta := range []int{-1, -40, +7} {
		t.Run(fmt.Sprint(delta), func(t *testing.T) {
			fs := newMem(t)
			opts := Options{MaxFileSize: 4 << 10, DisableAutoMerge: true}
			db := openMem(t, fs, opts)
			for i := range 300 {
				k, v := kv(i)
				require.NoError(t, db.Set([]byte(k), []byte(v), nil))
			}
			last := db.active.id // the newest append file: Close gives it a hint
			require.NoError(t, db.Close())
			for _, id := range []uint32{1, last} {
				cfs := fs.CrashClone(vfs.CrashOptions{}) // a copy: everything is synced
				path := filepath.Join(testDir, fileName(id, dataSuffix))
				b, err := readAll(cfs, path)
				require.NoError(t, err)
				if delta < 0 {
					b = b[:len(b)+delta]
				} else {
					b = append(b, make([]byte, delta)...)
				}
				writeFile(t, cfs, path, b)
				_, err = Open(testDir, &Options{FS: cfs, MaxFileSize: opts.MaxFileSize})
				require.ErrorIs(t, err, logkv.ErrCorrupt, "file %d", id)
				require.ErrorContains(t, err, path)
				require.ErrorContains(t, err, "its hint file")
				after, err := readAll(cfs, path)
				require.NoError(t, err)
				require.Equal(t, b, after, "the file was changed")
			}
		})
	}
}

// TestTornTailLogged: the torn tail recovery cuts is logged with the file,
// the offset it was cut at and the bytes removed, and nothing synced goes.
func TestTornTailLogged(t *testing.T) {
	fs := newMem(t)
	db := openMem(t, fs, Options{BufferSize: 128})
	for i := range 100 {
		k, v := kv(i)
		require.NoError(t, db.Set([]byte(k), []byte(v), &logkv.WriteOptions{Sync: i == 49}))
	}
	db.wmu.Lock()
	synced, written := db.active.syncedSize, db.active.size
	require.NoError(t, db.flushLocked())
	db.wmu.Unlock()
	abandon(db)

	// Damage the first unsynced record: everything from it on was never
	// synced, so it is a torn tail even though intact records follow.
	path := filepath.Join(testDir, fileName(1, dataSuffix))
	b, err := readAll(fs, path)
	require.NoError(t, err)
	require.Equal(t, written, int64(len(b)))
	b[synced+recordHeaderSize] ^= 1
	writeFile(t, fs, path, b)

	var logs logRecorder
	db = openMem(t, fs, Options{Logger: slog.New(&logs)})
	defer db.Close()
	require.Equal(t, uint64(50), db.LastSeq())
	cuts := logs.cuts()
	require.Len(t, cuts, 1)
	require.Equal(t, path, cuts[0]["file"])
	require.Equal(t, synced, cuts[0]["offset"])
	require.Equal(t, written-synced, cuts[0]["bytes"])
	require.Equal(t, float64(written-synced), metric(db.Metrics(), "bitcask_open_torn_bytes"))
	for i := range 50 {
		k, v := kv(i)
		requireValue(t, db, k, v)
	}
}

// TestRecoverySyncsTheTail: after a process crash, records the OS had but
// the disk did not are recovered; Open must make them durable before a newer
// file exists, or a power loss afterwards takes them silently (the file is no
// longer the newest, so nothing marks its end as torn).
func TestRecoverySyncsTheTail(t *testing.T) {
	fs := newMem(t)
	db := openMem(t, fs, Options{BufferSize: 64})
	for i := range 200 {
		k, v := kv(i)
		require.NoError(t, db.Set([]byte(k), []byte(v), &logkv.WriteOptions{Sync: i == 19}))
	}
	db.wmu.Lock()
	require.NoError(t, db.flushLocked())
	db.wmu.Unlock()
	abandon(db) // kill -9: the OS keeps what was written

	db = openMem(t, fs, Options{})
	require.Equal(t, uint64(200), db.LastSeq())
	power := fs.CrashClone(vfs.CrashOptions{}) // then the power goes
	abandon(db)

	db = openMem(t, power, Options{})
	defer db.Close()
	require.Equal(t, uint64(200), db.LastSeq())
	for i := range 200 {
		k, v := kv(i)
		requireValue(t, db, k, v)
	}
}

// FuzzScanFile: the data file scanner never panics on any bytes after a
// valid header, in either mode, and fails only with ErrCorrupt. What it
// accepts lies within the good prefix, each entry an intact record at its
// offset, whole batches only; only a file that may be torn has a torn tail.
func FuzzScanFile(f *testing.F) {
	const salt = 0x5a17
	seed := appendFileHeader(nil, originAppend, 0, salt)
	seed = appendRecord(seed, salt, fileHeaderSize, 1, flagMore, []byte("a"), []byte("1"))
	seed = appendRecord(seed, salt, fileHeaderSize, 1, 0, []byte("b"), nil)
	synced := uint64(len(seed))
	seed = appendRecord(seed, salt, synced, 2, flagTombstone, []byte("a"), nil)
	seed = appendRecord(seed, salt, synced, 3, 0, []byte("c"), []byte("value"))
	f.Add(seed[fileHeaderSize:])
	damaged := bytes.Clone(seed)
	damaged[fileHeaderSize+recordHeaderSize] ^= 1
	f.Add(damaged[fileHeaderSize:])
	f.Add(seed[fileHeaderSize : len(seed)-3])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, tail []byte) {
		b := append(appendFileHeader(nil, originAppend, 0, salt), tail...)
		for _, tornOK := range []bool{false, true} {
			res, err := scanFile("f", b, tornOK, true)
			if err != nil {
				require.ErrorIs(t, err, logkv.ErrCorrupt)
				continue
			}
			require.LessOrEqual(t, res.valid, int64(len(b)))
			require.GreaterOrEqual(t, res.valid, int64(fileHeaderSize))
			if !tornOK {
				require.Equal(t, int64(len(b)), res.valid)
			}
			require.Equal(t, res.valid < int64(len(b)), res.torn != "")
			end := int64(fileHeaderSize)
			for i, e := range res.entries {
				require.Equal(t, end, int64(e.off), "entry %d", i)
				r, why := decodeRecord(b[e.off:res.valid], salt)
				require.Empty(t, why)
				require.Equal(t, e.key, string(r.key))
				require.Equal(t, e.seq, r.seq)
				end += int64(r.size())
				if i == len(res.entries)-1 {
					require.Zero(t, r.flags&flagMore, "a batch without its last record")
				}
			}
		}
	})
}
