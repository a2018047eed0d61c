package lsm

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// logBuffer collects a DB's log lines for a test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// has reports whether one line of the log holds every part.
func (b *logBuffer) has(parts ...string) bool {
	for _, line := range strings.Split(b.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// withLog returns o with a logger writing to a new logBuffer.
func withLog(o *Options) (*Options, *logBuffer) {
	var b logBuffer
	c := *o
	c.Logger = slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &c, &b
}

// readAll returns the content of path.
func readAll(t *testing.T, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	require.NoError(t, err)
	defer f.Close()
	data, err := io.ReadAll(f)
	require.NoError(t, err)
	return data
}

// writeAll replaces path's content with data, synced.
func writeAll(t *testing.T, fs vfs.FS, path string, data []byte) {
	t.Helper()
	f, err := fs.Create(path)
	require.NoError(t, err)
	_, err = f.Write(data)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
}

// frameOffsets returns the offsets of path's record frames, and its size.
func frameOffsets(t *testing.T, fs vfs.FS, path string) (offs []int64, size int64) {
	t.Helper()
	data := readAll(t, fs, path)
	r := record.NewReader(bytes.NewReader(data), path, int64(len(data)), 1<<30)
	for {
		off := r.Offset()
		_, err := r.Next()
		if err == io.EOF {
			return offs, int64(len(data))
		}
		require.NoError(t, err)
		offs = append(offs, off)
	}
}

// fillKeys writes keys key0000.. with values of about 100 bytes; every
// write is synced when sync is set.
func fillKeys(t *testing.T, db *DB, from, to int, sync bool) {
	t.Helper()
	for i := from; i < to; i++ {
		require.NoError(t, db.Set(fmt.Appendf(nil, "key%04d", i), value(i), &logkv.WriteOptions{Sync: sync}))
	}
}

func value(i int) []byte { return fmt.Appendf(nil, "value%04d-%s", i, strings.Repeat("x", 90)) }

// requireKeys checks that keys from..to-1 hold their values.
func requireKeys(t *testing.T, db *DB, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		v, err := db.Get(fmt.Appendf(nil, "key%04d", i))
		require.NoError(t, err, "key%04d", i)
		require.Equal(t, value(i), v, "key%04d", i)
	}
}

// cleanCopy returns a copy of fs after a clean stop: everything in it, as
// if its directory "db" had been synced (a crash clone would bring back
// files deleted since the last SyncDir).
func cleanCopy(t *testing.T, fs *vfs.MemFS) *vfs.MemFS {
	t.Helper()
	require.NoError(t, fs.SyncDir("db"))
	return fs.CrashClone(vfs.CrashOptions{})
}

// noCompactionOptions never compacts, so the manifest's edits are flushes.
func noCompactionOptions(fs vfs.FS) *Options {
	o := smallOptions(fs)
	o.L0CompactionThreshold, o.L0SlowdownWritesThreshold, o.L0StopWritesThreshold = 100, 100, 100
	o.MaxManifestSize = 1 << 20 // one manifest from the start
	return o
}

// l0CompactionOptions compacts L0 into L1 and never deeper, so no edit is
// a trivial move (which loses nothing when dropped).
func l0CompactionOptions(fs vfs.FS) *Options {
	o := smallOptions(fs)
	o.LBaseMaxBytes = 1 << 30
	o.MaxManifestSize = 1 << 20
	return o
}

// waitIdle waits until no flush or compaction is running or due.
func waitIdle(t *testing.T, db *DB) {
	t.Helper()
	require.Eventually(t, func() bool {
		db.mu.Lock()
		defer db.mu.Unlock()
		return !db.flushing && !db.compacting && len(db.imm) == 0 &&
			len(db.current.Levels[0]) < db.opts.L0CompactionThreshold
	}, time.Minute, time.Millisecond)
}

// lastEdit decodes the last edit of the manifest at path.
func lastEdit(t *testing.T, fs vfs.FS, path string) *manifest.Edit {
	t.Helper()
	data := readAll(t, fs, path)
	offs, _ := frameOffsets(t, fs, path)
	off := offs[len(offs)-1]
	e, err := manifest.Decode(data[off+record.HeaderSize:], path, off)
	require.NoError(t, err)
	return e
}

// TestManifestDamagedLastEdit: damage in the manifest's last edit after a
// clean stop is corruption, not an edit whose sync never returned: a flush
// edit's WAL segment is gone and its table holds the writes; a compaction
// edit's inputs are gone. Open must fail naming the manifest, and must not
// delete any table. (It used to drop the edit, lose the flushed keys and
// delete their table as obsolete.)
func TestManifestDamagedLastEdit(t *testing.T) {
	for name, tc := range map[string]struct {
		opts func(vfs.FS) *Options
		// is reports whether e is the kind of edit the case damages.
		is func(e *manifest.Edit) bool
	}{
		"flush": {noCompactionOptions, func(e *manifest.Edit) bool {
			return len(e.Deleted) == 0 && len(e.Added) == 1
		}},
		"compaction": {l0CompactionOptions, func(e *manifest.Edit) bool {
			return len(e.Deleted) >= 2
		}},
	} {
		t.Run(name, func(t *testing.T) {
			fs := vfs.NewMem()
			require.NoError(t, fs.MkdirAllSynced("db"))
			db, err := Open("db", tc.opts(fs))
			require.NoError(t, err)
			// Which edit comes last depends on how flushes and
			// compactions interleaved (a last flush may leave L0 under
			// the compaction threshold): write more until the last edit
			// is of the case's kind.
			for round := 0; ; round++ {
				fillKeys(t, db, round*1000, (round+1)*1000, false)
				require.NoError(t, db.flushAll())
				waitIdle(t, db)
				ms := filesOf(t, fs, "db", kindManifest)
				require.Len(t, ms, 1)
				if tc.is(lastEdit(t, fs, "db/"+ms[0])) {
					break
				}
				require.Less(t, round, 20, "no %s edit came last in 20 rounds of writes", name)
			}
			require.NoError(t, db.Close())

			manifests := filesOf(t, fs, "db", kindManifest)
			require.Len(t, manifests, 1)
			path := "db/" + manifests[0]
			require.True(t, tc.is(lastEdit(t, fs, path)), "the last edit after Close is a %s edit", name)
			offs, size := frameOffsets(t, fs, path)
			tablesBefore := filesOf(t, fs, "db", kindTable)
			last := offs[len(offs)-1]
			for off := last; off < size; off += max(1, (size-last)/8) {
				c := cleanCopy(t, fs)
				flipBit(t, c, path, off)
				o, logs := withLog(tc.opts(c))
				_, err := Open("db", o)
				require.ErrorIs(t, err, logkv.ErrCorrupt, "flip at %d; log:\n%s", off, logs)
				require.Contains(t, err.Error(), manifests[0])
				require.Equal(t, tablesBefore, filesOf(t, c, "db", kindTable), "a table was deleted")
			}
		})
	}
}

// TestManifestTornLastEdit: a last edit whose sync never returned (the crash
// came while it was written) is a torn tail: Open cuts it, logs the cut,
// loses no synced write, and keeps the table the edit named until an Open
// with a clean manifest.
func TestManifestTornLastEdit(t *testing.T) {
	mem := vfs.NewMem()
	require.NoError(t, mem.MkdirAllSynced("db"))
	var armed sync.Mutex
	failSync := false
	fs := vfs.NewErrorFS(mem, vfs.InjectorFunc(func(op vfs.Op) error {
		armed.Lock()
		defer armed.Unlock()
		if failSync && op.Kind == vfs.OpSync && strings.Contains(op.Path, "MANIFEST") {
			return vfs.InjectedError(op)
		}
		return nil
	}))
	opts := smallOptions(fs)
	opts.MaxManifestSize = 1 << 20
	opts.MemtableSize = 1 << 20
	db, err := Open("db", opts)
	require.NoError(t, err)
	fillKeys(t, db, 0, 500, true)
	manifests := filesOf(t, mem, "db", kindManifest)
	require.Len(t, manifests, 1)
	path := "db/" + manifests[0]
	durable := readAll(t, mem, path)
	armed.Lock()
	failSync = true
	armed.Unlock()
	require.Error(t, db.flushAll(), "the flush's manifest sync fails")
	full := readAll(t, mem, path)
	require.Greater(t, len(full), len(durable), "the edit was written")
	edit := full[len(durable):]
	orphans := filesOf(t, mem, "db", kindTable)
	require.Len(t, orphans, 1, "the flush wrote its table")

	for name, tail := range map[string][]byte{
		"prefix":  edit[:len(edit)/2],
		"garbage": append(append([]byte(nil), edit[:len(edit)-3]...), 0xde, 0xad, 0xbe),
	} {
		t.Run(name, func(t *testing.T) {
			c := mem.CrashClone(vfs.CrashOptions{})
			require.Equal(t, orphans, filesOf(t, c, "db", kindTable), "the table was synced before the edit")
			writeAll(t, c, path, append(append([]byte(nil), durable...), tail...))
			o, logs := withLog(smallOptions(c))
			db2, err := Open("db", o)
			require.NoError(t, err)
			requireKeys(t, db2, 0, 500)
			require.True(t, logs.has("dropped the torn last edit of the manifest", "file="+manifests[0]+fmt.Sprintf(" offset=%d bytes=%d", len(durable), len(tail))), logs.String())
			require.True(t, logs.has("kept a table the manifest does not name", "file="+orphans[0]), logs.String())
			require.Subset(t, filesOf(t, c, "db", kindTable), orphans, "the table was deleted on the strength of a cut manifest")
			require.NoError(t, db2.Close())
			// The next Open reads a clean manifest and deletes the table.
			o, logs = withLog(smallOptions(c))
			db3, err := Open("db", o)
			require.NoError(t, err)
			requireKeys(t, db3, 0, 500)
			require.NotContains(t, filesOf(t, c, "db", kindTable), orphans[0])
			require.True(t, logs.has("deleted an obsolete file at open", "file="+orphans[0]), logs.String())
			require.NoError(t, db3.Close())
		})
	}
	db.Close()
}

// TestManifestLostEdits: a manifest cut at an edit boundary reads cleanly,
// but the files say edits were lost: a compaction's inputs are gone, or a
// flush's WAL segment is. Open must fail, not open an older tree.
func TestManifestLostEdits(t *testing.T) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAllSynced("db"))
	db, err := Open("db", l0CompactionOptions(fs))
	require.NoError(t, err)
	fillKeys(t, db, 0, 3000, false)
	require.NoError(t, db.flushAll())
	waitIdle(t, db)
	require.NoError(t, db.Close())
	manifests := filesOf(t, fs, "db", kindManifest)
	path := "db/" + manifests[0]
	offs, _ := frameOffsets(t, fs, path)
	require.Greater(t, len(offs), 3, "flushes and compactions were recorded")
	data := readAll(t, fs, path)
	for _, end := range offs[1:] {
		c := cleanCopy(t, fs)
		writeAll(t, c, path, data[:end])
		_, err := Open("db", l0CompactionOptions(c))
		require.ErrorIs(t, err, logkv.ErrCorrupt, "manifest cut at %d of %d", end, len(data))
	}
}

// TestMissingCurrent: a directory with data but no CURRENT is not a new DB,
// and a CURRENT naming a missing manifest is corruption, not an I/O error.
func TestMissingCurrent(t *testing.T) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAllSynced("db"))
	db, err := Open("db", smallOptions(fs))
	require.NoError(t, err)
	fillKeys(t, db, 0, 1000, false)
	require.NoError(t, db.Close())

	c := cleanCopy(t, fs)
	require.NoError(t, c.Remove("db/CURRENT"))
	_, err = Open("db", smallOptions(c))
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	require.Contains(t, err.Error(), "CURRENT is missing")

	c = cleanCopy(t, fs)
	writeAll(t, c, "db/CURRENT", []byte("MANIFEST-999999\n"))
	_, err = Open("db", smallOptions(c))
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	require.Contains(t, err.Error(), "MANIFEST-999999")
}

// TestLiveTableDamaged: a table the manifest names that is missing or of
// the wrong size fails Open with ErrCorrupt naming it.
func TestLiveTableDamaged(t *testing.T) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAllSynced("db"))
	db, err := Open("db", smallOptions(fs))
	require.NoError(t, err)
	fillKeys(t, db, 0, 1000, false)
	require.NoError(t, db.flushAll())
	require.NoError(t, db.Close())
	tables := filesOf(t, fs, "db", kindTable)
	require.NotEmpty(t, tables)

	c := cleanCopy(t, fs)
	require.NoError(t, c.Remove("db/"+tables[0]))
	_, err = Open("db", smallOptions(c))
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	require.Contains(t, err.Error(), tables[0])

	c = cleanCopy(t, fs)
	data := readAll(t, c, "db/"+tables[0])
	writeAll(t, c, "db/"+tables[0], data[:len(data)-1])
	_, err = Open("db", smallOptions(c))
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	require.Contains(t, err.Error(), tables[0])
}

// TestWALLastRecordDamaged: after a crash, damage in the last record of
// the newest WAL segment is past the last offset any record says was
// synced: Open cuts exactly there, keeps every record before it, and logs
// the cut with file, offset and bytes. Damage in a record that a later one
// says was synced, or in an older segment, is ErrCorrupt naming the file.
func TestWALLastRecordDamaged(t *testing.T) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAllSynced("db"))
	opts := smallOptions(fs)
	opts.MemtableStopWritesThreshold = 100
	db, err := Open("db", opts)
	require.NoError(t, err)
	// Hold the first flush, so every segment written stays needed.
	release := make(chan struct{})
	db.testHooks.afterFlushTable = func() { <-release }
	fillKeys(t, db, 0, 1000, true)
	crashed := fs.CrashClone(vfs.CrashOptions{})
	close(release)
	require.NoError(t, db.Close())
	logs := filesOf(t, crashed, "db", kindLog)
	require.Greater(t, len(logs), 1, "the writes span WAL segments")

	newest := "db/" + logs[len(logs)-1]
	offs, size := frameOffsets(t, crashed, newest)
	require.Greater(t, len(offs), 2)
	t.Run("last", func(t *testing.T) {
		last := offs[len(offs)-1]
		for off := last; off < size; off += max(1, (size-last)/8) {
			c := crashed.CrashClone(vfs.CrashOptions{})
			flipBit(t, c, newest, off)
			o, lb := withLog(opts.withFS(c))
			db2, err := Open("db", o)
			require.NoError(t, err)
			require.Equal(t, uint64(999), db2.LastSeq(), "only the damaged record is cut")
			requireKeys(t, db2, 0, 999)
			require.NoError(t, db2.Close())
			require.True(t, lb.has("cut the torn tail of the last WAL segment", fmt.Sprintf("file=%s offset=%d bytes=%d", logs[len(logs)-1], last, size-last)), lb.String())
		}
	})
	t.Run("witnessed", func(t *testing.T) {
		// Every record but the last is followed by one appended after its
		// sync, whose synced field covers it.
		for i := 0; i < len(offs)-1; i += max(1, len(offs)/16) {
			c := crashed.CrashClone(vfs.CrashOptions{})
			flipBit(t, c, newest, offs[i]+9)
			_, err := Open("db", opts.withFS(c))
			require.ErrorIs(t, err, logkv.ErrCorrupt)
			require.Contains(t, err.Error(), logs[len(logs)-1])
		}
	})
	t.Run("older-segment", func(t *testing.T) {
		older := "db/" + logs[len(logs)-2]
		offs, size := frameOffsets(t, crashed, older)
		for _, off := range []int64{offs[len(offs)-2] + 9, offs[len(offs)-1] + 9, size - 1} {
			c := crashed.CrashClone(vfs.CrashOptions{})
			flipBit(t, c, older, off)
			_, err := Open("db", opts.withFS(c))
			require.ErrorIs(t, err, logkv.ErrCorrupt)
			require.Contains(t, err.Error(), logs[len(logs)-2])
		}
		// Cut at a record boundary, so that what is left reads cleanly:
		// the closing marker is missing.
		for _, end := range []int64{offs[len(offs)-1], offs[len(offs)/2], 0} {
			c := crashed.CrashClone(vfs.CrashOptions{})
			writeAll(t, c, older, readAll(t, c, older)[:end])
			_, err := Open("db", opts.withFS(c))
			require.ErrorIs(t, err, logkv.ErrCorrupt, "cut at %d", end)
			require.Contains(t, err.Error(), logs[len(logs)-2])
		}
	})
}

// TestCrashDuringRecovery: a recovery that cut the newest segment's torn
// tail and then crashed before switching CURRENT leaves that segment
// behind a newer, empty one. The next Open must still open it: recovery
// sealed it with a closing marker before starting the new segment.
func TestCrashDuringRecovery(t *testing.T) {
	mem := vfs.NewMem()
	require.NoError(t, mem.MkdirAllSynced("db"))
	db, err := Open("db", smallOptions(mem))
	require.NoError(t, err)
	fillKeys(t, db, 0, 300, true)
	// An unsynced write left half written: a torn tail to cut.
	require.NoError(t, db.Set([]byte("torn"), []byte("value"), nil))
	crashed := mem.CrashClone(vfs.CrashOptions{})
	require.NoError(t, db.Close())
	logs := filesOf(t, crashed, "db", kindLog)
	newest := "db/" + logs[len(logs)-1]
	require.NoError(t, crashed.MkdirAllSynced("db"))
	data := readAll(t, mem, newest)
	durable := readAll(t, crashed, newest)
	writeAll(t, crashed, newest, data[:len(durable)+5])

	failing := vfs.NewErrorFS(crashed, vfs.InjectorFunc(func(op vfs.Op) error {
		if op.Kind == vfs.OpRename {
			return vfs.InjectedError(op)
		}
		return nil
	}))
	_, err = Open("db", smallOptions(failing))
	require.Error(t, err, "the switch of CURRENT fails")
	// The process died there: its files stay as they are.
	again := crashed
	require.Greater(t, len(filesOf(t, again, "db", kindLog)), len(logs), "the failed recovery started a new segment")
	db2, err := Open("db", smallOptions(again))
	require.NoError(t, err)
	requireKeys(t, db2, 0, 300)
	require.Equal(t, uint64(300), db2.LastSeq())
	require.NoError(t, db2.Close())
}
