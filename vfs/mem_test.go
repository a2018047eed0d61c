package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// recorder notes what each step of a scenario observed, so the same scenario
// run on the OS and on a MemFS can be compared line by line.
type recorder struct {
	fs   FS
	root string
	log  []string
}

func (r *recorder) p(name string) string { return filepath.Join(r.root, name) }

// errClass reduces an error to what callers may rely on across FS
// implementations.
func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, os.ErrNotExist):
		return "ErrNotExist"
	case errors.Is(err, os.ErrClosed):
		return "ErrClosed"
	case errors.Is(err, ErrLocked):
		return "ErrLocked"
	default:
		return "error"
	}
}

func (r *recorder) note(step string, err error, results ...any) {
	r.log = append(r.log, fmt.Sprintf("%s: %s %v", step, errClass(err), results))
}

func (r *recorder) create(name string) File {
	f, err := r.fs.Create(r.p(name))
	r.note("create "+name, err)
	return f
}

func (r *recorder) open(name string) File {
	f, err := r.fs.Open(r.p(name))
	r.note("open "+name, err)
	return f
}

func (r *recorder) openRW(name string) File {
	f, err := r.fs.OpenReadWrite(r.p(name))
	r.note("openrw "+name, err)
	return f
}

func (r *recorder) write(f File, s string) {
	n, err := f.Write([]byte(s))
	r.note("write "+s, err, n)
}

func (r *recorder) read(f File, n int) {
	b := make([]byte, n)
	m, err := f.Read(b)
	r.note(fmt.Sprintf("read %d", n), err, m, string(b[:m]))
}

func (r *recorder) readAt(f File, n int, off int64) {
	b := make([]byte, n)
	m, err := f.ReadAt(b, off)
	r.note(fmt.Sprintf("readat %d@%d", n, off), err, m, string(b[:m]))
}

func (r *recorder) fstat(f File) {
	fi, err := f.Stat()
	if err != nil {
		r.note("fstat", err)
		return
	}
	size := fi.Size()
	if fi.IsDir() {
		size = -1 // directory sizes differ between filesystems
	}
	r.note("fstat", nil, fi.Name(), size, fi.IsDir(), fi.Mode().IsRegular())
}

func (r *recorder) stat(name string) {
	fi, err := r.fs.Stat(r.p(name))
	if err != nil {
		r.note("stat "+name, err)
		return
	}
	size := fi.Size()
	if fi.IsDir() {
		size = -1 // directory sizes differ between filesystems
	}
	r.note("stat "+name, nil, fi.Name(), size, fi.IsDir())
}

func (r *recorder) list(dir string) {
	names, err := r.fs.List(r.p(dir))
	r.note("list "+dir, err, strings.Join(names, ","))
}

func (r *recorder) contents(name string) {
	f, err := r.fs.Open(r.p(name))
	if err != nil {
		r.note("contents "+name, err)
		return
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	r.note("contents "+name, err, fmt.Sprintf("%q", b))
}

func (r *recorder) call(step string, err error) { r.note(step, err) }

// scenarios run against both the OS and a MemFS; their logs must match.
var scenarios = []struct {
	name string
	run  func(r *recorder)
}{
	{"create write read", func(r *recorder) {
		f := r.create("a")
		r.write(f, "hello")
		r.write(f, "")
		r.fstat(f)
		r.read(f, 4) // the position is at the end
		r.readAt(f, 5, 0)
		r.readAt(f, 3, 3)
		r.readAt(f, 3, 5)
		r.readAt(f, 3, 9)
		r.readAt(f, 0, 9)
		r.call("sync", f.Sync())
		r.call("close", f.Close())
		r.call("close again", f.Close())
		r.write(f, "x")
		r.read(f, 1)
		r.readAt(f, 1, 0)
		r.call("sync closed", f.Sync())
		r.call("truncate closed", f.Truncate(0))
		r.fstat(f)

		f = r.open("a")
		r.read(f, 3)
		r.read(f, 10)
		r.read(f, 10)
		r.read(f, 0)
		r.write(f, "nope")
		r.call("truncate read-only", f.Truncate(1))
		r.call("close", f.Close())
		r.contents("a")
		r.stat("a")
	}},
	{"create truncates", func(r *recorder) {
		f := r.create("a")
		r.write(f, "old content")
		r.call("close", f.Close())
		f = r.create("a")
		r.fstat(f)
		r.write(f, "new")
		r.call("close", f.Close())
		r.contents("a")
	}},
	{"position shared by read and write", func(r *recorder) {
		f := r.create("a")
		r.write(f, "abcdef")
		r.call("close", f.Close())
		f = r.create("a") // truncates; position 0
		r.write(f, "012345")
		r.readAt(f, 6, 0)
		r.call("close", f.Close())

		f = r.openRW("a")
		r.read(f, 2)
		r.write(f, "XY") // appends, whatever the position
		r.read(f, 10)    // the position followed the append
		r.readAt(f, 10, 0)
		r.write(f, "Z")
		r.fstat(f)
		r.call("close", f.Close())
		r.contents("a")
		r.openRW("missing")
	}},
	{"truncate", func(r *recorder) {
		f := r.create("a")
		r.write(f, "0123456789")
		r.call("truncate 4", f.Truncate(4))
		r.fstat(f)
		r.readAt(f, 10, 0)
		r.write(f, "Z") // at position 10: a hole of zeros
		r.fstat(f)
		r.readAt(f, 11, 0)
		r.call("truncate 14", f.Truncate(14))
		r.readAt(f, 14, 0)
		r.call("truncate same", f.Truncate(14))
		r.call("truncate -1", f.Truncate(-1))
		r.call("truncate 0", f.Truncate(0))
		r.fstat(f)
		r.write(f, "q")
		r.readAt(f, 12, 0)
		r.call("close", f.Close())
	}},
	{"directories", func(r *recorder) {
		r.call("mkdirall d/e/f", r.fs.MkdirAll(r.p("d/e/f"), 0o755))
		r.call("mkdirall d/e/f again", r.fs.MkdirAll(r.p("d/e/f"), 0o755))
		r.call("mkdirall d", r.fs.MkdirAll(r.p("d"), 0o755))
		r.list("")
		r.list("d")
		r.list("d/e/f")
		r.list("missing")
		r.stat("d")
		r.stat("d/e")
		r.stat("missing")
		r.stat("d/missing")
		for _, name := range []string{"d/z", "d/b", "d/a", "d/m"} {
			f := r.create(name)
			r.call("close", f.Close())
		}
		r.list("d")
		r.list("d/a") // a file
		r.create("missing/x")
		r.open("missing")
		r.open("d/missing")
		r.create("d/a/x") // under a file
		r.stat("d/a/x")
		r.call("mkdirall over file", r.fs.MkdirAll(r.p("d/a"), 0o755))
		r.call("mkdirall under file", r.fs.MkdirAll(r.p("d/a/b"), 0o755))
		r.create("d/e") // a directory
		r.openRW("d/e")
		f := r.open("d/e") // opening a directory read-only works
		if f != nil {
			r.read(f, 1)
			r.write(f, "x")
			r.fstat(f)
			r.call("close", f.Close())
		}
		r.call("remove non-empty dir", r.fs.Remove(r.p("d/e")))
		r.call("remove empty dir", r.fs.Remove(r.p("d/e/f")))
		r.call("remove missing", r.fs.Remove(r.p("d/e/f")))
		r.call("remove file", r.fs.Remove(r.p("d/a")))
		r.call("remove under missing", r.fs.Remove(r.p("q/a")))
		r.list("d")
		r.list("d/e")
		r.call("syncdir d", r.fs.SyncDir(r.p("d")))
		r.call("syncdir missing", r.fs.SyncDir(r.p("missing")))
		r.call("syncdir file", r.fs.SyncDir(r.p("d/b")))
	}},
	{"rename", func(r *recorder) {
		f := r.create("a")
		r.write(f, "A")
		r.call("close", f.Close())
		f = r.create("b")
		r.write(f, "B")
		r.call("close", f.Close())

		r.call("rename a c", r.fs.Rename(r.p("a"), r.p("c")))
		r.list("")
		r.contents("c")
		r.call("rename c b (replace)", r.fs.Rename(r.p("c"), r.p("b")))
		r.list("")
		r.contents("b")
		r.call("rename missing", r.fs.Rename(r.p("a"), r.p("x")))
		r.call("rename to missing dir", r.fs.Rename(r.p("b"), r.p("nodir/b")))
		r.call("rename to itself", r.fs.Rename(r.p("b"), r.p("b")))
		r.contents("b")

		r.call("mkdirall d", r.fs.MkdirAll(r.p("d/sub"), 0o755))
		r.call("mkdirall e", r.fs.MkdirAll(r.p("e"), 0o755))
		r.call("rename file over dir", r.fs.Rename(r.p("b"), r.p("e")))
		r.call("rename dir over file", r.fs.Rename(r.p("e"), r.p("b")))
		r.call("rename dir over non-empty dir", r.fs.Rename(r.p("e"), r.p("d")))
		r.call("rename dir into itself", r.fs.Rename(r.p("d"), r.p("d/sub/x")))
		r.call("rename dir over empty dir", r.fs.Rename(r.p("d"), r.p("e")))
		r.call("rename dir to itself", r.fs.Rename(r.p("d"), r.p("d")))
		r.call("rename dir", r.fs.Rename(r.p("d"), r.p("f")))
		r.list("")
		r.list("f")
		r.call("rename file into dir", r.fs.Rename(r.p("b"), r.p("f/sub/b")))
		r.contents("f/sub/b")
		r.list("")
		r.list("f/sub")
	}},
	{"open files outlive their names", func(r *recorder) {
		f := r.create("a")
		r.write(f, "one")
		g := r.open("a")
		r.call("rename a b", r.fs.Rename(r.p("a"), r.p("b")))
		r.write(f, "two")
		r.readAt(g, 6, 0)
		r.call("remove b", r.fs.Remove(r.p("b")))
		r.write(f, "three")
		r.readAt(g, 20, 0)
		r.fstat(f)
		r.call("sync", f.Sync())
		r.stat("b")
		r.list("")
		r.call("close f", f.Close())
		r.call("close g", g.Close())
	}},
	{"lock", func(r *recorder) {
		l1, err := r.fs.Lock(r.p("LOCK"))
		r.note("lock", err)
		_, err = r.fs.Lock(r.p("LOCK"))
		r.note("lock again", err)
		r.stat("LOCK")
		r.call("unlock", l1.Close())
		l2, err := r.fs.Lock(r.p("LOCK"))
		r.note("lock after unlock", err)
		r.call("unlock", l2.Close())
		_, err = r.fs.Lock(r.p("nodir/LOCK"))
		r.note("lock in missing dir", err)
	}},
}

func TestMemFSMatchesOS(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			osRec := &recorder{fs: Default, root: t.TempDir()}
			sc.run(osRec)
			for _, root := range []string{"/some/dir", "rel/dir"} {
				mem := NewMem()
				require.NoError(t, mem.MkdirAll(root, 0o755))
				memRec := &recorder{fs: mem, root: root}
				sc.run(memRec)
				require.Equal(t, osRec.log, memRec.log, "root %q", root)
			}
		})
	}
}

func TestMemFSErrors(t *testing.T) {
	fs := NewMem()
	_, err := fs.Open("/missing")
	require.ErrorIs(t, err, os.ErrNotExist)
	var pe *os.PathError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "/missing", pe.Path)

	require.NoError(t, fs.MkdirAll("/d/e", 0o755))
	f, err := fs.Create("/d/f")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.ErrorIs(t, f.Close(), os.ErrClosed)
	_, err = f.Write([]byte("x"))
	require.ErrorIs(t, err, os.ErrClosed)

	require.ErrorIs(t, fs.MkdirAll("/d/f", 0o755), os.ErrExist, "a file is in the way")
	_, err = fs.Create("/d/e")
	require.ErrorIs(t, err, os.ErrExist, "a directory is in the way")
	require.ErrorIs(t, fs.Remove("/d"), os.ErrExist, "not empty")
	require.ErrorIs(t, fs.Rename("/d/f", "/d/e"), os.ErrExist)

	l, err := fs.Lock("/d/LOCK")
	require.NoError(t, err)
	_, err = fs.Lock("d/LOCK") // the same file by another spelling
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "closing a lock twice is safe")
	l, err = fs.Lock("/d/LOCK")
	require.NoError(t, err)
	require.NoError(t, fs.Rename("/d/LOCK", "/d/LOCK2"))
	_, err = fs.Lock("/d/LOCK2")
	require.ErrorIs(t, err, ErrLocked, "the lock follows the file")
	_, err = fs.Lock("/d/LOCK")
	require.NoError(t, err, "a new file under the old name is not locked")
	require.NoError(t, l.Close())

	_, err = fs.Stat("")
	require.ErrorIs(t, err, os.ErrNotExist, "the empty name names nothing")
	require.ErrorIs(t, fs.MkdirAll("", 0o755), os.ErrNotExist)
	require.NoError(t, fs.MkdirAll("../../up", 0o755))
	_, err = fs.Stat("/up")
	require.NoError(t, err, ".. stops at the root")

	big, err := fs.Create("/big")
	require.NoError(t, err)
	require.ErrorIs(t, big.Truncate(1<<40), syscall.EFBIG, "a memory file is bounded")
	require.NoError(t, big.Close())

	fi, err := fs.Stat("/")
	require.NoError(t, err)
	require.True(t, fi.IsDir())
	require.Error(t, fs.Remove("/"), "the root has no parent")
}

// TestMemFSConcurrent hammers one MemFS from several goroutines (the race
// detector checks the locking), then checks each file's content.
func TestMemFSConcurrent(t *testing.T) {
	fs := NewMem()
	require.NoError(t, fs.MkdirAll("/db", 0o755))
	const writers, writes = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("/db/%d", w)
			f, err := fs.Create(name)
			if !assertNoErr(t, err) {
				return
			}
			defer f.Close()
			r, err := fs.Open(name)
			if !assertNoErr(t, err) {
				return
			}
			defer r.Close()
			buf := make([]byte, 8)
			for i := range writes {
				if _, err := f.Write([]byte(fmt.Sprintf("%08d", i))); !assertNoErr(t, err) {
					return
				}
				if i%10 == 0 {
					assertNoErr(t, f.Sync())
					assertNoErr(t, fs.SyncDir("/db"))
				}
				if _, err := r.ReadAt(buf, int64(i)*8); !assertNoErr(t, err) {
					return
				}
				_, _ = fs.List("/db")
				_, _ = fs.Stat(name)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			c := fs.CrashClone(CrashOptions{})
			_, _ = c.List("/db")
		}
	}()
	wg.Wait()
	for w := range writers {
		f, err := fs.Open(fmt.Sprintf("/db/%d", w))
		require.NoError(t, err)
		b, err := io.ReadAll(f)
		require.NoError(t, err)
		require.Len(t, b, writes*8)
		require.Equal(t, fmt.Sprintf("%08d", writes-1), string(b[len(b)-8:]))
		require.NoError(t, f.Close())
	}
}

// assertNoErr reports err from a goroutine other than the test's, where
// require must not be used.
func assertNoErr(t *testing.T, err error) bool {
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

// BenchmarkMemFSAppendSync measures a log's pattern: small appends, each
// synced. Sync copies only what changed, so the cost per op stays flat as
// the file grows.
func BenchmarkMemFSAppendSync(b *testing.B) {
	fs := NewMem()
	f, err := fs.Create("/log")
	require.NoError(b, err)
	rec := make([]byte, 100)
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}
