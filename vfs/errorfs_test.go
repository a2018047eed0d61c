package vfs

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// allOps runs one operation of every kind through fs, in a fixed order, and
// returns the error of each, by kind.
func allOps(fs *ErrorFS) map[OpKind]error {
	errs := make(map[OpKind]error)
	note := func(k OpKind, err error) {
		if _, ok := errs[k]; !ok || errs[k] == nil {
			errs[k] = err
		}
	}
	note(OpMkdirAll, fs.MkdirAll("/d", 0o755))
	_ = fs.Unwrap().MkdirAll("/d", 0o755) // in case that failed
	f, err := fs.Create("/d/f")
	note(OpCreate, err)
	if f == nil {
		f, _ = fs.Unwrap().Create("/d/f")
		f = &errorFile{f: f, fs: fs, name: "/d/f"}
	}
	_, err = f.Write([]byte("hello"))
	note(OpWrite, err)
	note(OpSync, f.Sync())
	note(OpTruncate, f.Truncate(5))
	_, err = f.Stat()
	note(OpStat, err)
	_, err = f.ReadAt(make([]byte, 1), 0)
	note(OpReadAt, err)
	_, err = f.Read(make([]byte, 1))
	note(OpRead, err)
	note(OpClose, f.Close())
	g, err := fs.Open("/d/f")
	note(OpOpen, err)
	if g != nil {
		g.Close()
	}
	g, err = fs.OpenReadWrite("/d/f")
	note(OpOpenReadWrite, err)
	if g != nil {
		g.Close()
	}
	_, err = fs.List("/d")
	note(OpList, err)
	_, err = fs.Stat("/d/f")
	note(OpStat, err)
	note(OpSyncDir, fs.SyncDir("/d"))
	note(OpRename, fs.Rename("/d/f", "/d/g"))
	l, err := fs.Lock("/d/LOCK")
	note(OpLock, err)
	if l != nil {
		l.Close()
	}
	note(OpRemove, fs.Remove("/d/LOCK"))
	return errs
}

func TestErrorFSEveryKind(t *testing.T) {
	for i := range len(opNames) {
		kind := OpKind(1 << i)
		t.Run(kind.String(), func(t *testing.T) {
			fs := NewErrorFS(NewMem(), NewToggle(kind))
			fs.inj.(*Toggle).On()
			errs := allOps(fs)
			require.Len(t, errs, len(opNames), "allOps covers every kind")
			for k, err := range errs {
				if k == kind {
					require.ErrorIs(t, err, ErrInjected, "%s", k)
					require.Contains(t, err.Error(), k.String())
				} else {
					require.NotErrorIs(t, err, ErrInjected, "%s while failing %s", k, kind)
				}
			}
		})
	}
}

func TestErrorFSOpKindString(t *testing.T) {
	require.Equal(t, "write", OpWrite.String())
	require.Equal(t, "read|readat", (OpRead | OpReadAt).String())
	require.Equal(t, OpAll, OpReads|OpWrites|OpClose)
	require.Equal(t, OpKind(0), OpReads&OpWrites)
	require.Contains(t, OpKind(0).String(), "OpKind")
}

func TestFailNth(t *testing.T) {
	// Count first, then fail each operation in turn.
	counter := FailNth(0, OpWrites)
	allOps(NewErrorFS(NewMem(), counter))
	total := counter.Count()
	require.Equal(t, int64(10), total, "allOps does one operation of each of the 10 writing kinds")
	for n := range total {
		inj := FailNth(n+1, OpWrites)
		errs := allOps(NewErrorFS(NewMem(), inj))
		injected := 0
		for _, err := range errs {
			if errors.Is(err, ErrInjected) {
				injected++
			}
		}
		require.Equal(t, 1, injected, "n=%d", n+1)
		require.True(t, inj.Failed())
		require.Equal(t, total, inj.Count())
	}

	// FailFrom fails the nth and all later ones.
	inj := FailFrom(3, OpWrite)
	fs := NewErrorFS(NewMem(), inj)
	f, err := fs.Create("/f")
	require.NoError(t, err)
	for i := range 6 {
		_, err := f.Write([]byte("x"))
		if i < 2 {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, ErrInjected)
		}
	}
	require.Equal(t, int64(6), inj.Count())
	require.NoError(t, f.Sync(), "other kinds are not counted or failed")
}

func TestToggle(t *testing.T) {
	tog := NewToggle(OpSync | OpWrite)
	fs := NewErrorFS(NewMem(), tog)
	f, err := fs.Create("/f")
	require.NoError(t, err)
	_, err = f.Write([]byte("a"))
	require.NoError(t, err)
	tog.On()
	_, err = f.Write([]byte("b"))
	require.ErrorIs(t, err, ErrInjected)
	require.ErrorIs(t, f.Sync(), ErrInjected)
	_, err = f.ReadAt(make([]byte, 1), 0)
	require.NoError(t, err)
	tog.Off()
	_, err = f.Write([]byte("c"))
	require.NoError(t, err)
	require.Equal(t, "ac", readFile(t, fs, "/f"), "a failed write writes nothing")
}

func TestFailRandomly(t *testing.T) {
	run := func(seed uint64) (pattern string) {
		fs := NewErrorFS(NewMem(), FailRandomly(0.3, seed, OpWrite))
		f, err := fs.Create("/f")
		require.NoError(t, err)
		var b strings.Builder
		for range 200 {
			if _, err := f.Write([]byte("x")); err != nil {
				require.ErrorIs(t, err, ErrInjected)
				b.WriteByte('F')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	p := run(1)
	require.Equal(t, p, run(1), "same seed, same failures")
	require.NotEqual(t, p, run(2))
	fails := strings.Count(p, "F")
	require.True(t, fails > 30 && fails < 90, "about 60 of 200 should fail, got %d", fails)
}

func TestFailPathsAndFilter(t *testing.T) {
	isLog := func(p string) bool { return strings.HasSuffix(p, ".log") }
	fs := NewErrorFS(NewMem(), FailPaths(isLog, OpCreate|OpWrite))
	_, err := fs.Create("/a.log")
	require.ErrorIs(t, err, ErrInjected)
	_, err = fs.Create("/a.sst")
	require.NoError(t, err)

	// The third write to a .log file fails, whatever other files see.
	nth := FailNth(3, OpWrite)
	fs = NewErrorFS(NewMem(), Filter(func(op Op) bool { return isLog(op.Path) }, nth))
	wal, err := fs.Create("/wal.log")
	require.NoError(t, err)
	sst, err := fs.Create("/x.sst")
	require.NoError(t, err)
	for i := range 5 {
		_, err := sst.Write([]byte("s"))
		require.NoError(t, err)
		_, err = wal.Write([]byte("w"))
		if i == 2 {
			require.ErrorIs(t, err, ErrInjected)
		} else {
			require.NoError(t, err)
		}
	}
	require.Equal(t, int64(5), nth.Count())

	// Any: the first injector to fail wins; custom errors pass through.
	full := InjectorFunc(func(op Op) error {
		if op.Kind == OpWrite {
			return syscall.ENOSPC
		}
		return nil
	})
	fs = NewErrorFS(NewMem(), Any(FailNth(0, OpAll), full))
	f, err := fs.Create("/f")
	require.NoError(t, err)
	_, err = f.Write([]byte("x"))
	require.ErrorIs(t, err, syscall.ENOSPC)
}

func TestShortWrites(t *testing.T) {
	tog := NewToggle(OpWrite)
	fs := NewErrorFS(NewMem(), tog)
	fs.SetShortWrites(rand.New(rand.NewPCG(1, 2)))
	f, err := fs.Create("/f")
	require.NoError(t, err)
	tog.On()
	const rec = "0123456789abcdef"
	sawShort := false
	total := 0
	for range 20 {
		n, err := f.Write([]byte(rec))
		require.ErrorIs(t, err, ErrInjected)
		require.Less(t, n, len(rec), "a failed write is short")
		sawShort = sawShort || n > 0
		total += n
		require.Equal(t, total, len(readFile(t, fs, "/f")), "n is what was written")
	}
	require.True(t, sawShort)
}

func TestErrorFSConcurrent(t *testing.T) {
	nth := FailNth(0, OpAll)
	fs := NewErrorFS(NewMem(), Any(nth, FailRandomly(0.1, 7, OpWrite)))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := fs.Create("/" + string(rune('a'+w)))
			if !assertNoErr(t, err) {
				return
			}
			for range 100 {
				_, _ = f.Write([]byte("x"))
			}
			assertNoErr(t, f.Close())
		}()
	}
	wg.Wait()
	require.Equal(t, int64(4*(1+100+1)), nth.Count())
}

func TestCrashAt(t *testing.T) {
	// Count first.
	mem := NewMem()
	counter := CrashAt(mem, 0, OpWrite, CrashOptions{})
	fs := NewErrorFS(mem, counter)
	f, err := fs.Create("/f")
	require.NoError(t, err)
	require.NoError(t, fs.SyncDir("/"))
	for range 10 {
		_, err := f.Write([]byte("x"))
		require.NoError(t, err)
		require.NoError(t, f.Sync())
	}
	require.Equal(t, int64(10), counter.Count())
	crashed, before := counter.Crashed()
	require.False(t, before)
	require.Equal(t, "xxxxxxxxxx", readFile(t, crashed, "/f"))

	// Crash before the 4th write, from writers on two goroutines.
	mem = NewMem()
	cp := CrashAt(mem, 4, OpWrite, CrashOptions{})
	fs = NewErrorFS(mem, cp)
	require.NoError(t, fs.MkdirAll("/d", 0o755))
	require.NoError(t, fs.SyncDir("/"))
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "/d/" + string(rune('a'+w))
			f, err := fs.Create(name)
			if !assertNoErr(t, err) {
				return
			}
			defer f.Close()
			assertNoErr(t, fs.SyncDir("/d"))
			for range 3 {
				_, err := f.Write([]byte("y"))
				assertNoErr(t, err)
				assertNoErr(t, f.Sync())
			}
		}()
	}
	wg.Wait()
	crashed, before = cp.Crashed()
	require.True(t, before)
	total := 0
	names, err := crashed.List("/d")
	require.NoError(t, err)
	for _, name := range names {
		got := readFile(t, crashed, "/d/"+name)
		require.Equal(t, strings.Repeat("y", len(got)), got)
		total += len(got)
	}
	// A write counted is not yet done, so on two goroutines at most three
	// synced writes precede the clone.
	require.LessOrEqual(t, total, 3)

	// On one goroutine, exactly three.
	mem = NewMem()
	cp = CrashAt(mem, 4, OpWrite, CrashOptions{})
	fs = NewErrorFS(mem, cp)
	f, err = fs.Create("/f")
	require.NoError(t, err)
	require.NoError(t, fs.SyncDir("/"))
	for range 6 {
		_, err := f.Write([]byte("z"))
		require.NoError(t, err)
		require.NoError(t, f.Sync())
	}
	crashed, before = cp.Crashed()
	require.True(t, before)
	require.Equal(t, "zzz", readFile(t, crashed, "/f"))
	require.Equal(t, "zzzzzz", readFile(t, mem, "/f"), "the workload went on")
}

// SyncGate holds only the first fsync of a matching file after Arm, fails
// it once released, and lets every other operation through.
func TestSyncGate(t *testing.T) {
	g := NewSyncGate(".log")
	fsync := func(path string) error { return g.MaybeError(Op{Kind: OpSync, Path: path}) }
	require.NoError(t, fsync("a.log"), "not armed")
	g.Arm()
	require.NoError(t, fsync("a.dat"), "another file")
	require.NoError(t, g.MaybeError(Op{Kind: OpWrite, Path: "a.log"}), "not an fsync")
	require.False(t, g.TryRelease(), "nothing held")
	held := make(chan error, 1)
	go func() { held <- fsync("a.log") }()
	<-g.Entered()
	g.Release()
	require.ErrorIs(t, <-held, ErrInjected)
	require.NoError(t, fsync("a.log"), "only the first is held")
}
