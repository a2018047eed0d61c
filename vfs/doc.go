// Package vfs is the filesystem interface logkv's engines and logs write
// through, so that tests can run them on memory, inject I/O errors and
// simulate power loss (after Pebble's vfs package).
//
// Default is the operating system's filesystem. NewMem returns an in-memory
// one that remembers what is durable; its CrashClone is what a power loss
// would leave. NewErrorFS wraps any FS to fail the operations an Injector
// picks.
//
// # Durability model
//
// The interface promises what POSIX promises, and the crash-simulating
// filesystems in this package give no more:
//
//   - Data written to a file is durable only after File.Sync. So is a
//     Truncate.
//   - A created, renamed or removed directory entry is durable only after
//     SyncDir on its directory. MkdirAll's new directories are entries of
//     their parents like any other.
//
// Engines must sync both to make a new file survive a power loss: write,
// File.Sync, then SyncDir of its directory (and, after a rename between
// directories, SyncDir of both).
//
// # Simulating a crash
//
// MemFS tracks, for each file, its durable (synced) content beside its
// current content, and for each directory its durable entries beside its
// current ones. CrashClone returns a new MemFS holding only what survives; by
// default (the zero CrashOptions) every unsynced byte and every unsynced
// entry is lost, deterministically. With a seeded CrashOptions.Rand it can
// instead keep torn, zero-filled or damaged tails of unsynced data
// (TornUnsyncedData, ZeroedUnsyncedData, CorruptUnsyncedData) and an
// in-order prefix of the unsynced entry changes (KeepEntryPrefix). Synced data that was not overwritten since always
// survives exactly. An engine test:
//
//	fs := vfs.NewMem()
//	fs.MkdirAllSynced("db")           // the directory predates the test
//	db := open(fs, "db")
//	write(db)                         // some synced, some not
//	crashed := fs.CrashClone(vfs.CrashOptions{})
//	// Abandon db: never Close it (Close would sync). It may keep writing to
//	// fs; crashed does not see it.
//	db2 := open(crashed, "db")
//	check(db2)                        // everything synced is there
//
// Loop over seeds with vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, 0)),
// Data: vfs.CorruptUnsyncedData, Entries: vfs.KeepEntryPrefix} to explore
// torn tails and half-synced directories; report the seed on failure.
//
// To crash at every interesting instant rather than at the end, wrap the
// MemFS in an ErrorFS with a CrashPoint (CrashAt): it fails nothing, but
// takes the clone just before the nth operation of some kinds (the nth
// Sync, say). Loop n from 1 to the Count of a first run. Any Injector may
// call CrashClone: ErrorFS calls it outside MemFS's lock.
//
// # Crashes in the conformance suite
//
// Engine tests open an engine by directory name (enginetest.OpenFunc is
// open(t, dir)), so they need "the current filesystem of dir", which a
// crash replaces. Dirs keeps that map:
//
//	var dirs vfs.Dirs
//	open := func(t *testing.T, dir string) logkv.Engine {
//		db, err := lsm.Open(dir, &lsm.Options{FS: dirs.FS(dir)})
//		require.NoError(t, err)
//		return db
//	}
//	enginetest.Run(t, open, enginetest.Capabilities{
//		Durable: true,
//		Crash: func(t *testing.T, e logkv.Engine, dir string) {
//			dirs.Crash(dir, vfs.CrashOptions{}) // e is abandoned
//		},
//	})
//
// Dirs.FS creates dir, durable, on first use; Dirs.Crash swaps in the crash
// clone, so the suite's next open(t, dir) sees what survived.
//
// # Injecting errors
//
// ErrorFS asks its Injector before every operation (Op{Kind, Path}) and
// fails it with the Injector's error instead of running it. Ready
// injectors: FailNth and FailFrom (the nth operation of some kinds, once or
// from then on; with n = 0 they count, for a loop failing each operation in
// turn), Toggle (on and off from the test), FailRandomly (probability p,
// seeded), FailPaths (by path), and Filter and Any to compose them. Their
// errors wrap ErrInjected. A failed Write writes nothing unless
// SetShortWrites asks it to write a random prefix first, as a disk that
// fills up mid-write does:
//
//	inj := vfs.FailNth(3, vfs.OpSync)
//	fs := vfs.NewErrorFS(vfs.NewMem(), inj)
//	// The engine's third fsync fails with an error wrapping vfs.ErrInjected.
//
// ErrorFS over a MemFS combines both: fail an fsync, then crash
// (mem.CrashClone) and check that nothing the engine acknowledged is lost.
package vfs
