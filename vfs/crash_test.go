package vfs

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, fs FS, name, data string, sync bool) File {
	t.Helper()
	f, err := fs.Create(name)
	require.NoError(t, err)
	_, err = f.Write([]byte(data))
	require.NoError(t, err)
	if sync {
		require.NoError(t, f.Sync())
	}
	return f
}

func appendFile(t *testing.T, f File, data string, sync bool) {
	t.Helper()
	_, err := f.Write([]byte(data))
	require.NoError(t, err)
	if sync {
		require.NoError(t, f.Sync())
	}
}

func readFile(t *testing.T, fs FS, name string) string {
	t.Helper()
	f, err := fs.Open(name)
	require.NoError(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	return string(b)
}

func requireMissing(t *testing.T, fs FS, name string) {
	t.Helper()
	_, err := fs.Stat(name)
	require.ErrorIs(t, err, os.ErrNotExist, "%s should not exist", name)
}

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }

func TestCrashDropsUnsyncedData(t *testing.T) {
	fs := NewMem()
	require.NoError(t, fs.MkdirAllSynced("/db"))
	f := writeFile(t, fs, "/db/a", "synced,", true)
	appendFile(t, f, "unsynced", false)
	g := writeFile(t, fs, "/db/never-synced", "data", false)
	require.NoError(t, fs.SyncDir("/db"))

	c := fs.CrashClone(CrashOptions{})
	require.Equal(t, "synced,", readFile(t, c, "/db/a"))
	require.Equal(t, "", readFile(t, c, "/db/never-synced"), "the entry is durable, the data not")

	// The original is untouched and keeps working; the clone does not see it.
	require.Equal(t, "synced,unsynced", readFile(t, fs, "/db/a"))
	appendFile(t, f, " more", true)
	appendFile(t, g, " more", true)
	require.Equal(t, "synced,", readFile(t, c, "/db/a"))
	require.NoError(t, f.Close())
	require.NoError(t, g.Close())

	// Everything in a clone is durable: cloning it again changes nothing.
	c2 := c.CrashClone(CrashOptions{})
	require.Equal(t, "synced,", readFile(t, c2, "/db/a"))
}

func TestCrashTruncate(t *testing.T) {
	fs := NewMem()
	f := writeFile(t, fs, "a", "0123456789", true)
	require.NoError(t, fs.SyncDir("/"))
	require.NoError(t, f.Truncate(3))
	require.Equal(t, "0123456789", readFile(t, fs.CrashClone(CrashOptions{}), "a"), "truncate not synced")
	require.NoError(t, f.Sync())
	require.Equal(t, "012", readFile(t, fs.CrashClone(CrashOptions{}), "a"))
	appendFile(t, f, "abc", true) // at position 10: a hole
	require.Equal(t, "012\x00\x00\x00\x00\x00\x00\x00abc", readFile(t, fs.CrashClone(CrashOptions{}), "a"))

	// Create truncates an existing file, durable after Sync.
	g, err := fs.Create("a")
	require.NoError(t, err)
	require.Equal(t, "012\x00\x00\x00\x00\x00\x00\x00abc", readFile(t, fs.CrashClone(CrashOptions{}), "a"))
	require.NoError(t, g.Sync())
	require.Equal(t, "", readFile(t, fs.CrashClone(CrashOptions{}), "a"))
}

func TestCrashDirectoryEntries(t *testing.T) {
	fs := NewMem()
	require.NoError(t, fs.MkdirAllSynced("/db"))

	// Created and synced, but the directory never synced: gone.
	f := writeFile(t, fs, "/db/new", "data", true)
	requireMissing(t, fs.CrashClone(CrashOptions{}), "/db/new")
	require.NoError(t, fs.SyncDir("/db"))
	require.Equal(t, "data", readFile(t, fs.CrashClone(CrashOptions{}), "/db/new"))
	require.NoError(t, f.Close())

	// A rename not followed by SyncDir is undone.
	writeFile(t, fs, "/db/tmp", "v2", true).Close()
	require.NoError(t, fs.SyncDir("/db"))
	require.NoError(t, fs.Rename("/db/tmp", "/db/new"))
	c := fs.CrashClone(CrashOptions{})
	require.Equal(t, "data", readFile(t, c, "/db/new"))
	require.Equal(t, "v2", readFile(t, c, "/db/tmp"))
	require.NoError(t, fs.SyncDir("/db"))
	c = fs.CrashClone(CrashOptions{})
	require.Equal(t, "v2", readFile(t, c, "/db/new"))
	requireMissing(t, c, "/db/tmp")

	// A removal not synced comes back with its durable data.
	g, err := fs.OpenReadWrite("/db/new")
	require.NoError(t, err)
	appendFile(t, g, "+synced", true)
	appendFile(t, g, "+unsynced", false)
	require.NoError(t, fs.Remove("/db/new"))
	c = fs.CrashClone(CrashOptions{})
	require.Equal(t, "v2+synced", readFile(t, c, "/db/new"))
	// Data synced through an open handle after the removal is durable too:
	// the inode lives until the removal is.
	require.NoError(t, g.Sync())
	require.Equal(t, "v2+synced+unsynced", readFile(t, fs.CrashClone(CrashOptions{}), "/db/new"))
	require.NoError(t, fs.SyncDir("/db"))
	requireMissing(t, fs.CrashClone(CrashOptions{}), "/db/new")
	require.NoError(t, g.Close())

	// Syncing a directory does not make its parent's entry for it durable.
	require.NoError(t, fs.MkdirAll("/db/sub/deeper", 0o755))
	writeFile(t, fs, "/db/sub/deeper/x", "x", true).Close()
	require.NoError(t, fs.SyncDir("/db/sub/deeper"))
	require.NoError(t, fs.SyncDir("/db/sub"))
	requireMissing(t, fs.CrashClone(CrashOptions{}), "/db/sub")
	require.NoError(t, fs.SyncDir("/db"))
	require.Equal(t, "x", readFile(t, fs.CrashClone(CrashOptions{}), "/db/sub/deeper/x"))

	// A rename between directories needs both synced.
	require.NoError(t, fs.Rename("/db/sub/deeper/x", "/db/x"))
	require.NoError(t, fs.SyncDir("/db"))
	c = fs.CrashClone(CrashOptions{})
	require.Equal(t, "x", readFile(t, c, "/db/x"))
	require.Equal(t, "x", readFile(t, c, "/db/sub/deeper/x"), "the source directory still durably lists it")
	require.NoError(t, fs.SyncDir("/db/sub/deeper"))
	c = fs.CrashClone(CrashOptions{})
	requireMissing(t, c, "/db/sub/deeper/x")
	require.Equal(t, "x", readFile(t, c, "/db/x"))
}

func TestCrashClearsLocks(t *testing.T) {
	fs := NewMem()
	l, err := fs.Lock("/LOCK")
	require.NoError(t, err)
	require.NoError(t, fs.SyncDir("/"))
	c := fs.CrashClone(CrashOptions{})
	l2, err := c.Lock("/LOCK")
	require.NoError(t, err, "a crashed process holds no locks")
	require.NoError(t, l2.Close())
	require.NoError(t, l.Close())
}

func TestCrashNeedsRand(t *testing.T) {
	fs := NewMem()
	require.Panics(t, func() { fs.CrashClone(CrashOptions{Data: TornUnsyncedData}) })
	require.Panics(t, func() { fs.CrashClone(CrashOptions{Entries: KeepEntryPrefix}) })
}

// TestCrashTornTail checks, over many seeds, that a torn or corrupt tail
// keeps every synced byte, changes nothing but the unsynced region, keeps at
// most what was written, and shows each outcome (nothing, everything, a
// strict prefix, damage) at least once.
func TestCrashTornTail(t *testing.T) {
	const synced, unsynced = "durable-prefix|", "unsynced-tail-0123456789abcdefghijklmnopqrstuvwxyz"
	for _, mode := range []DataLoss{TornUnsyncedData, ZeroedUnsyncedData, CorruptUnsyncedData} {
		fs := NewMem()
		f := writeFile(t, fs, "/log", synced, true)
		require.NoError(t, fs.SyncDir("/"))
		appendFile(t, f, unsynced, false)

		var none, all, partial, damaged bool
		lengths := make(map[int]bool)
		for seed := range uint64(200) {
			c := fs.CrashClone(CrashOptions{Rand: seeded(seed), Data: mode})
			got := readFile(t, c, "/log")
			require.GreaterOrEqual(t, len(got), len(synced))
			require.Equal(t, synced, got[:len(synced)], "seed %d: synced bytes changed", seed)
			tail := got[len(synced):]
			require.LessOrEqual(t, len(tail), len(unsynced), "seed %d", seed)
			lengths[len(tail)] = true
			switch {
			case tail == "":
				none = true
			case tail == unsynced:
				all = true
			case tail == unsynced[:len(tail)]:
				partial = true
			default:
				require.NotEqual(t, TornUnsyncedData, mode, "seed %d: torn mode damaged %q", seed, tail)
				damaged = true
			}
			if mode == ZeroedUnsyncedData {
				// Written bytes, then zeros.
				kept := strings.TrimRight(tail, "\x00")
				require.Equal(t, unsynced[:len(kept)], kept, "seed %d", seed)
			}
		}
		require.True(t, lengths[0] && lengths[len(unsynced)] && len(lengths) > 10,
			"mode %d: tails of no, all and many partial lengths: %v", mode, lengths)
		if mode == TornUnsyncedData {
			require.True(t, none && all && partial, "none %v all %v partial %v", none, all, partial)
		} else {
			require.True(t, damaged, "kept unsynced bytes are always spoiled")
		}
	}
}

// TestCrashTornOverwrite checks the torn model when unsynced writes overwrite
// synced bytes: the result is the new bytes up to some point, then the old.
func TestCrashTornOverwrite(t *testing.T) {
	fs := NewMem()
	f := writeFile(t, fs, "/f", "AAAAAAAAAA", true)
	require.NoError(t, fs.SyncDir("/"))
	require.NoError(t, f.Truncate(2))
	appendFile(t, f, "BBBB", false) // position 10: the file is AA + 8 zeros + BBBB
	cur := readFile(t, fs, "/f")
	require.Equal(t, "AA\x00\x00\x00\x00\x00\x00\x00\x00BBBB", cur)
	for seed := range uint64(100) {
		got := readFile(t, fs.CrashClone(CrashOptions{Rand: seeded(seed), Data: TornUnsyncedData}), "/f")
		if got == cur {
			continue
		}
		// Some prefix of the current content over the synced content.
		const synced = "AAAAAAAAAA"
		ok := false
		for k := 2; k <= len(cur); k++ {
			ok = ok || got == cur[:k]+synced[min(k, len(synced)):]
		}
		require.True(t, ok, "seed %d: %q", seed, got)
	}
}

func TestCrashDeterministic(t *testing.T) {
	build := func() *MemFS {
		fs := NewMem()
		require.NoError(t, fs.MkdirAllSynced("/db"))
		for i := range 20 {
			name := "/db/" + string(rune('a'+i))
			f := writeFile(t, fs, name, "synced", true)
			appendFile(t, f, "-unsynced-data-of-some-length", false)
			if i%3 == 0 {
				require.NoError(t, fs.SyncDir("/db"))
			}
			if i%4 == 0 {
				require.NoError(t, fs.Rename(name, name+".renamed"))
			}
			if i%5 == 0 {
				if i%4 == 0 {
					name += ".renamed"
				}
				require.NoError(t, fs.Remove(name))
			}
		}
		return fs
	}
	o := func(seed uint64) CrashOptions {
		return CrashOptions{Rand: seeded(seed), Data: CorruptUnsyncedData, Entries: KeepEntryPrefix}
	}
	fs1, fs2 := build(), build()
	differ := false
	for seed := range uint64(20) {
		d1, d2 := dump(t, fs1.CrashClone(o(seed))), dump(t, fs2.CrashClone(o(seed)))
		require.Equal(t, d1, d2, "seed %d", seed)
		if seed > 0 && d1 != dump(t, fs1.CrashClone(o(seed-1))) {
			differ = true
		}
	}
	require.True(t, differ, "different seeds should crash differently")
}

// dump renders a whole MemFS as text, for comparisons.
func dump(t *testing.T, fs *MemFS) string {
	var buf bytes.Buffer
	var walk func(dir string)
	walk = func(dir string) {
		names, err := fs.List(dir + "/")
		require.NoError(t, err)
		for _, name := range names {
			p := dir + "/" + name
			fi, err := fs.Stat(p)
			require.NoError(t, err)
			if fi.IsDir() {
				buf.WriteString(p + "/\n")
				walk(p)
				continue
			}
			buf.WriteString(p + " " + readFile(t, fs, p) + "\n")
		}
	}
	walk("")
	return buf.String()
}

// TestCrashEntryPrefix checks that KeepEntryPrefix keeps the unsynced entry
// changes in order: if a later change survives, so does every earlier one.
func TestCrashEntryPrefix(t *testing.T) {
	fs := NewMem()
	const n = 8
	for i := range n {
		writeFile(t, fs, string(rune('a'+i)), "x", true).Close()
	}
	seen := make(map[int]bool)
	for seed := range uint64(100) {
		c := fs.CrashClone(CrashOptions{Rand: seeded(seed), Entries: KeepEntryPrefix})
		names, err := c.List("/")
		require.NoError(t, err)
		for i, name := range names {
			require.Equal(t, string(rune('a'+i)), name, "seed %d: not a prefix: %v", seed, names)
		}
		seen[len(names)] = true
	}
	require.Len(t, seen, n+1, "every prefix length, 0 to n, should occur")
}

// TestCrashEntryPrefixRenameAtomic checks that a rename survives whole or
// not at all: the file is always under exactly one of its names.
func TestCrashEntryPrefixRenameAtomic(t *testing.T) {
	fs := NewMem()
	writeFile(t, fs, "/old", "data", true).Close()
	require.NoError(t, fs.SyncDir("/"))
	writeFile(t, fs, "/other", "o", true).Close()
	require.NoError(t, fs.Rename("/old", "/new"))
	writeFile(t, fs, "/later", "l", true).Close()
	for seed := range uint64(50) {
		c := fs.CrashClone(CrashOptions{Rand: seeded(seed), Entries: KeepEntryPrefix})
		_, errOld := c.Stat("/old")
		_, errNew := c.Stat("/new")
		require.True(t, (errOld == nil) != (errNew == nil), "seed %d: old %v new %v", seed, errOld, errNew)
		if errNew == nil {
			_, err := c.Stat("/other")
			require.NoError(t, err, "seed %d: the earlier create must survive too", seed)
		}
	}
}

func TestDirs(t *testing.T) {
	var dirs Dirs
	fs := dirs.FS("/tmp/test/db")
	require.Same(t, fs, dirs.FS("/tmp/test/db/"), "one FS per cleaned dir")
	require.NotSame(t, fs, dirs.FS("/tmp/test/other"))

	f := writeFile(t, fs, "/tmp/test/db/a", "kept", true)
	require.NoError(t, fs.SyncDir("/tmp/test/db"))
	appendFile(t, f, "lost", false)

	crashed := dirs.Crash("/tmp/test/db", CrashOptions{})
	require.Same(t, crashed, dirs.FS("/tmp/test/db"))
	require.Equal(t, "kept", readFile(t, crashed, "/tmp/test/db/a"))

	// The directory itself survives a crash even if nothing was written.
	empty := dirs.Crash("/tmp/test/other", CrashOptions{})
	names, err := empty.List("/tmp/test/other")
	require.NoError(t, err)
	require.Empty(t, names)
}

// TestCrashDirInTwoPlaces checks the rule for a directory renamed between
// directories with only one of them synced: the durable view lists it twice,
// and it survives in one place only, where it is now if that is durable.
func TestCrashDirInTwoPlaces(t *testing.T) {
	fs := NewMem()
	require.NoError(t, fs.MkdirAllSynced("/a/sub"))
	require.NoError(t, fs.MkdirAllSynced("/b"))
	writeFile(t, fs, "/a/sub/f", "data", true).Close()
	require.NoError(t, fs.SyncDir("/a/sub"))

	require.NoError(t, fs.Rename("/a/sub", "/b/sub"))
	c := fs.CrashClone(CrashOptions{})
	require.Equal(t, "/a/\n/a/sub/\n/a/sub/f data\n/b/\n", dump(t, c), "nothing synced: undone")

	require.NoError(t, fs.SyncDir("/b"))
	c = fs.CrashClone(CrashOptions{})
	require.Equal(t, "/a/\n/b/\n/b/sub/\n/b/sub/f data\n", dump(t, c), "the new place is durable")

	// Move it on, unsynced: /b still durably lists it, /a too, and where it
	// is now is not durable: the first in name order wins.
	require.NoError(t, fs.Rename("/b/sub", "/c"))
	c = fs.CrashClone(CrashOptions{})
	require.Equal(t, "/a/\n/a/sub/\n/a/sub/f data\n/b/\n", dump(t, c))

	// Its own subdirectory cannot contain it: a directory renamed into a
	// sibling that is then synced while the old parent is not.
	fs = NewMem()
	require.NoError(t, fs.MkdirAllSynced("/p/q"))
	require.NoError(t, fs.MkdirAllSynced("/p/r"))
	require.NoError(t, fs.Rename("/p/q", "/p/r/q"))
	require.NoError(t, fs.SyncDir("/p/r"))
	require.NoError(t, fs.Rename("/p/r", "/r"))
	require.NoError(t, fs.SyncDir("/"))
	c = fs.CrashClone(CrashOptions{})
	require.Equal(t, "/p/\n/r/\n/r/q/\n", dump(t, c))
	c = fs.CrashClone(CrashOptions{Rand: seeded(1), Entries: KeepEntryPrefix})
	_, err := c.List("/")
	require.NoError(t, err)
}

func TestMemFSString(t *testing.T) {
	fs := NewMem()
	require.NoError(t, fs.MkdirAllSynced("/db"))
	f := writeFile(t, fs, "/db/a", "0123456789", true)
	require.NoError(t, fs.SyncDir("/db"))
	appendFile(t, f, "xyz", false)
	writeFile(t, fs, "/db/b", "synced", true).Close()
	require.NoError(t, fs.MkdirAll("/db/sub", 0o755))
	require.Equal(t, `/db/
/db/a 13 bytes, 10 durable, unsynced from 10
/db/b 6 bytes (entry not synced)
/db/sub/ (entry not synced)
`, fs.String())
}
