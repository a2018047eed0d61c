package vfs_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/logkv/logkv/vfs"
)

// appendRecord stands in for an engine's write path: append, then maybe
// fsync.
func appendRecord(f vfs.File, rec string, sync bool) error {
	if _, err := f.Write([]byte(rec)); err != nil {
		return err
	}
	if sync {
		return f.Sync()
	}
	return nil
}

func contents(fs vfs.FS, name string) string {
	f, err := fs.Open(name)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	return string(b)
}

// A crash keeps what was synced, file data and directory entries alike.
func ExampleMemFS_CrashClone() {
	fs := vfs.NewMem()
	_ = fs.MkdirAllSynced("/db") // the directory predates the test

	wal, _ := fs.Create("/db/wal")
	_ = fs.SyncDir("/db") // the new file's entry is durable
	_ = appendRecord(wal, "put a=1;", true)
	_ = appendRecord(wal, "put b=2;", false) // acknowledged without fsync

	tmp, _ := fs.Create("/db/tmp") // its directory is never synced
	_ = appendRecord(tmp, "data", true)

	crashed := fs.CrashClone(vfs.CrashOptions{})
	// The engine on fs is abandoned; reopen on crashed.
	fmt.Printf("%q\n", contents(crashed, "/db/wal"))
	names, _ := crashed.List("/db")
	fmt.Println(names)
	// Output:
	// "put a=1;"
	// [wal]
}

// With a seeded Rand, a crash may keep a torn prefix of unsynced data.
func ExampleCrashOptions() {
	fs := vfs.NewMem()
	f, _ := fs.Create("/log")
	_ = fs.SyncDir("/")
	_ = appendRecord(f, "synced|", true)
	_ = appendRecord(f, "unsynced", false)
	for seed := range uint64(4) {
		crashed := fs.CrashClone(vfs.CrashOptions{
			Rand: rand.New(rand.NewPCG(seed, 0)),
			Data: vfs.TornUnsyncedData,
		})
		fmt.Printf("seed %d: %q\n", seed, contents(crashed, "/log"))
	}
	// Output:
	// seed 0: "synced|"
	// seed 1: "synced|unsynced"
	// seed 2: "synced|unsynce"
	// seed 3: "synced|"
}

// Crash before each fsync in turn, and at the end.
func ExampleCrashAt() {
	run := func(fs vfs.FS) {
		f, _ := fs.Create("/log")
		_ = fs.SyncDir("/")
		for _, rec := range []string{"a", "b", "c"} {
			_ = appendRecord(f, rec, true)
		}
	}
	for n := int64(1); n <= 5; n++ {
		mem := vfs.NewMem()
		cp := vfs.CrashAt(mem, n, vfs.OpSync|vfs.OpSyncDir, vfs.CrashOptions{})
		run(vfs.NewErrorFS(mem, cp))
		crashed, before := cp.Crashed()
		fmt.Printf("n=%d before=%v: %q\n", n, before, contents(crashed, "/log"))
	}
	// Output:
	// n=1 before=true: "<open /log: no such file or directory>"
	// n=2 before=true: ""
	// n=3 before=true: "a"
	// n=4 before=true: "ab"
	// n=5 before=false: "abc"
}

// Fail the second fsync, and check the error.
func ExampleFailNth() {
	inj := vfs.FailNth(2, vfs.OpSync)
	fs := vfs.NewErrorFS(vfs.NewMem(), inj)
	f, _ := fs.Create("/log")
	for _, rec := range []string{"a", "b", "c"} {
		err := appendRecord(f, rec, true)
		fmt.Println(rec, err, errors.Is(err, vfs.ErrInjected))
	}
	fmt.Println("syncs seen:", inj.Count())
	// Output:
	// a <nil> false
	// b vfs: injected error: sync /log true
	// c <nil> false
	// syncs seen: 3
}

// Dirs gives an engine test's open function and crash hook one view of
// "the filesystem of dir". This is how an engine plugs into
// enginetest.Capabilities.Crash.
func ExampleDirs() {
	var dirs vfs.Dirs
	// open is the engine test's OpenFunc, minus the engine.
	open := func(dir string) vfs.File {
		fs := dirs.FS(dir)
		f, err := fs.OpenReadWrite(dir + "/data")
		if err == nil {
			return f
		}
		f, _ = fs.Create(dir + "/data")
		_ = fs.SyncDir(dir)
		return f
	}
	crash := func(dir string) { dirs.Crash(dir, vfs.CrashOptions{}) }

	f := open("/tmp/t1")
	_ = appendRecord(f, "durable;", true)
	_ = appendRecord(f, "lost;", false)
	crash("/tmp/t1") // f is abandoned
	f = open("/tmp/t1")
	buf := make([]byte, 64)
	n, _ := f.ReadAt(buf, 0)
	fmt.Printf("%q\n", buf[:n])
	// Output:
	// "durable;"
}
