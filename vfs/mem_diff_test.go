package vfs

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// randomOps runs n random operations, drawn from rng, over a small namespace
// through r. Its choices depend only on rng, so two runs with equal seeds do
// the same operations, and their logs differ only where the filesystems do.
func randomOps(r *recorder, rng *rand.Rand, n int) {
	names := []string{"a", "b", "d/c", "d/e", "d2/c", "d/f/g", "d", "d2", "d/f"}
	dirs := []string{"", "d", "d2", "d/f"}
	var files []File
	var locks []io.Closer
	pick := func() File {
		if len(files) == 0 {
			return nil
		}
		i := rng.IntN(len(files))
		if files[i] != nil {
			r.log = append(r.log, fmt.Sprintf("(file %d)", i))
		}
		return files[i]
	}
	data := func() string {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return string(b)
	}
	for range n {
		name := names[rng.IntN(len(names))]
		switch op := rng.IntN(20); op {
		case 0:
			files = append(files, r.create(name))
			r.log = append(r.log, fmt.Sprintf("(file %d)", len(files)-1))
		case 1:
			files = append(files, r.open(name))
			r.log = append(r.log, fmt.Sprintf("(file %d)", len(files)-1))
		case 2:
			files = append(files, r.openRW(name))
			r.log = append(r.log, fmt.Sprintf("(file %d)", len(files)-1))
		case 3, 4, 5:
			if f := pick(); f != nil {
				r.write(f, data())
			}
		case 6:
			if f := pick(); f != nil {
				r.read(f, rng.IntN(16))
			}
		case 7:
			if f := pick(); f != nil {
				r.readAt(f, rng.IntN(16), int64(rng.IntN(40)))
			}
		case 8:
			if f := pick(); f != nil {
				r.call("truncate", f.Truncate(int64(rng.IntN(40))))
			}
		case 9:
			if f := pick(); f != nil {
				r.call("sync", f.Sync())
			}
		case 10:
			if f := pick(); f != nil {
				r.call("close", f.Close())
			}
		case 11:
			if f := pick(); f != nil {
				r.fstat(f)
			}
		case 12:
			to := names[rng.IntN(len(names))]
			r.call(fmt.Sprintf("rename %s %s", name, to), r.fs.Rename(r.p(name), r.p(to)))
		case 13:
			r.call("remove "+name, r.fs.Remove(r.p(name)))
		case 14:
			dir := dirs[rng.IntN(len(dirs))]
			r.call("mkdirall "+dir, r.fs.MkdirAll(r.p(dir), 0o755))
		case 15:
			r.list(dirs[rng.IntN(len(dirs))])
		case 16:
			r.stat(name)
		case 17:
			r.contents(name)
		case 18:
			l, err := r.fs.Lock(r.p(name))
			r.note("lock "+name, err)
			if err == nil {
				locks = append(locks, l)
			}
		case 19:
			if len(locks) > 0 {
				i := rng.IntN(len(locks))
				r.call("unlock", locks[i].Close())
				locks = slices.Delete(locks, i, i+1)
			}
		}
	}
	for _, l := range locks {
		l.Close()
	}
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// TestMemFSMatchesOSRandom runs random operation sequences on the OS and on
// a MemFS and requires the same observations.
func TestMemFSMatchesOSRandom(t *testing.T) {
	seeds, ops := 40, 300
	if testing.Short() {
		seeds = 10
	}
	for seed := range uint64(seeds) {
		osRec := &recorder{fs: Default, root: t.TempDir()}
		randomOps(osRec, rand.New(rand.NewPCG(seed, 1)), ops)
		mem := NewMem()
		memRec := &recorder{fs: mem, root: "/db"}
		require.NoError(t, mem.MkdirAll("/db", 0o755))
		randomOps(memRec, rand.New(rand.NewPCG(seed, 1)), ops)
		for i := range osRec.log {
			require.Equal(t, osRec.log[i], memRec.log[i], "seed %d, step %d; steps before:\n%v", seed, i, osRec.log[max(0, i-40):i])
		}
	}
}
