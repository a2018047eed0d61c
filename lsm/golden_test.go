package lsm_test

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm"
	"github.com/stretchr/testify/require"
)

// Golden files (issue #19): testdata/format1 is a DB written by this
// version, checked in, so that a change to the table, manifest or WAL
// format that breaks old directories fails here rather than on a user's
// disk. It holds one L0 table in each compression (none, snappy, zstd, s2;
// compaction is held off so that each survives), deletes shadowing older
// values in older tables, a manifest with several edits, and a WAL whose
// batches were never flushed (written by a DB that was abandoned, not
// closed: the state a crash leaves).
//
// Regenerate it only for a new format, as a new directory beside the old
// one (the old one must keep opening, or be refused with a clear error).
// testdata/format2 is the same DB written by table format version 2 (the
// blocked bloom filter, 491f8bd): its tables pin version 2's filter bytes,
// so that a change to the filter's probe sequence or hash, which would make
// tables already on disk give false negatives (Gets missing keys they
// hold), fails here. Each directory is written by its own test:
//
//	LOGKV_WRITE_GOLDEN=1 go test -run 'TestGoldenFormat2$' ./lsm/
//
// (format1 was written the same way by the version that wrote version 1
// tables; this version writes only version 2, so format1 must not be
// regenerated.)

const (
	goldenDir  = "testdata/format1"
	golden2Dir = "testdata/format2"
)

// goldenPhases are the compressions the DB was opened with, one phase each.
// Close leaves a phase's writes in the WAL, and the next Open flushes them
// with its own compression: so phase p's table is in goldenPhases[p+1]'s,
// and the last phase, never flushed, stays in the WAL.
var goldenPhases = []string{"none", "none", "snappy", "zstd", "s2"}

// goldenOps writes phase p's operations through set and del, and returns
// nothing: the same calls build the expected state in the test.
func goldenOps(p int, set func(k, v string), del func(k string)) {
	for i := range 120 {
		k := fmt.Sprintf("key%04d", (i*7+p*31)%200)
		if i%9 == 4 {
			del(k)
			continue
		}
		set(k, fmt.Sprintf("phase %d value %d %s", p, i, strings.Repeat("x", i%40)))
	}
}

func goldenOptions(compression string) *lsm.Options {
	return &lsm.Options{
		MemtableSize:              64 << 10,
		L0CompactionThreshold:     len(goldenPhases) + 1, // each phase's table stays
		L0SlowdownWritesThreshold: len(goldenPhases) + 1,
		L0StopWritesThreshold:     len(goldenPhases) + 1,
		BlockSize:                 512,
		Compression:               compression,
		Logger:                    slog.New(slog.DiscardHandler),
	}
}

// writeGolden builds goldenDir: each phase writes with Sync and, but for the
// last, closes (flushing to tables in that phase's compression); the last
// phase's writes stay in the WAL of a DB that is never closed.
func writeGolden(t *testing.T, dir string) {
	require.NoError(t, os.RemoveAll(dir))
	for p, c := range goldenPhases {
		db, err := lsm.Open(dir, goldenOptions(c))
		require.NoError(t, err)
		sync := &logkv.WriteOptions{Sync: true}
		goldenOps(p, func(k, v string) { require.NoError(t, db.Set([]byte(k), []byte(v), sync)) },
			func(k string) { require.NoError(t, db.Delete([]byte(k), sync)) })
		if p < len(goldenPhases)-1 {
			require.NoError(t, db.Close())
		}
		// The last DB is abandoned: its WAL holds the last phase.
	}
}

func TestGoldenFormat1(t *testing.T) {
	checkGolden(t, goldenDir, 1)
}

// TestGoldenFormat2: the fixture of table format version 2, the version
// written since 491f8bd. Its Gets go through the tables' blocked filters,
// so that changing filterProbeMul or HashKey fails here.
func TestGoldenFormat2(t *testing.T) {
	if os.Getenv("LOGKV_WRITE_GOLDEN") != "" {
		writeGolden(t, golden2Dir)
	}
	checkGolden(t, golden2Dir, 2)
}

// checkGolden opens a copy of the directory fixture, whose tables are all of
// table format version, and checks that every key reads back through Get
// and through an iterator.
func checkGolden(t *testing.T, fixture string, version uint32) {
	for _, n := range listDir(t, fixture) {
		if strings.HasSuffix(n, ".sst") {
			b, err := os.ReadFile(filepath.Join(fixture, n))
			require.NoError(t, err)
			require.Equal(t, version, binary.LittleEndian.Uint32(b[len(b)-16:]), "%s: the footer's format version", n)
		}
	}
	want := map[string]string{}
	for p := range goldenPhases {
		goldenOps(p, func(k, v string) { want[k] = v }, func(k string) { delete(want, k) })
	}
	seq := uint64(len(goldenPhases) * 120)

	dir := copyDir(t, fixture) // Open may rewrite the manifest and remove files
	db, err := lsm.Open(dir, goldenOptions(""))
	require.NoError(t, err, "a directory written by an earlier version must open")
	defer db.Close()
	require.Equal(t, seq, db.LastSeq(), "the WAL's batches are recovered")
	got := map[string]string{}
	it, err := db.NewIter(nil)
	require.NoError(t, err)
	for k, v := range logkv.All(it) {
		got[string(k)] = string(v)
	}
	require.NoError(t, it.Close())
	require.Equal(t, want, got)
	for k, v := range want {
		g, err := db.Get([]byte(k))
		require.NoError(t, err, k)
		require.Equal(t, v, string(g), k)
	}

	// The fixture covers what it says: tables, a WAL, several compressions.
	names := listDir(t, fixture)
	tables := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return !strings.HasSuffix(n, ".sst") })
	require.Len(t, tables, len(goldenPhases)-1, "one table per flushed phase in %v", names)
	require.NotEmpty(t, slices.DeleteFunc(slices.Clone(names), func(n string) bool { return !strings.HasSuffix(n, ".log") }), "no WAL in %v", names)
}

// TestGoldenTableVersionRefused: a table whose footer claims a format
// version this one does not know (its checksum recomputed, so that only the
// version is wrong) is refused with an error naming the file, never read as
// if it were version 1: the error wraps lsm.ErrFormat, and through it
// logkv.ErrFormat and logkv.ErrCorrupt.
func TestGoldenTableVersionRefused(t *testing.T) {
	dir := copyDir(t, goldenDir)
	var table string
	for _, n := range listDir(t, dir) {
		if strings.HasSuffix(n, ".sst") {
			table = filepath.Join(dir, n)
		}
	}
	require.NotEmpty(t, table)
	b, err := os.ReadFile(table)
	require.NoError(t, err)
	foot := b[len(b)-64:]
	require.Equal(t, "LOGKVSST", string(foot[56:]))
	require.Equal(t, uint32(1), binary.LittleEndian.Uint32(foot[48:]))
	binary.LittleEndian.PutUint32(foot[48:], 99) // no version this package knows (it reads 1 and 2)
	binary.LittleEndian.PutUint32(foot[52:], crc32.Checksum(foot[:52], crc32.MakeTable(crc32.Castagnoli)))
	require.NoError(t, os.WriteFile(table, b, 0o644))

	db, err := lsm.Open(dir, goldenOptions(""))
	if err == nil {
		// Tables may open lazily: reading every key must then fail.
		defer db.Close()
		var it logkv.Iterator
		if it, err = db.NewIter(nil); err == nil {
			for range logkv.All(it) {
			}
			err = it.Close()
		}
	}
	require.ErrorIs(t, err, lsm.ErrFormat)
	require.ErrorIs(t, err, logkv.ErrFormat)
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	require.ErrorContains(t, err, filepath.Base(table))
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, n := range listDir(t, src) {
		b, err := os.ReadFile(filepath.Join(src, n))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, n), b, 0o644))
	}
	return dst
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}
