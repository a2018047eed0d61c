package bitcask

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/groupsync"
	"github.com/logkv/logkv/internal/mapfault"
	"github.com/logkv/logkv/internal/ordtree"
	"github.com/logkv/logkv/vfs"
)

var (
	_ logkv.Engine        = (*DB)(nil)
	_ logkv.ValueAppender = (*DB)(nil)
	_ logkv.ValueAppender = (*snapshot)(nil)
	_ logkv.Prefetcher    = (*DB)(nil)
)

func init() { logkv.RegisterTyped("bitcask", Open) }

// DB is a bitcask engine open on one directory. All its methods are safe for
// concurrent use.
type DB struct {
	dir  string
	opts Options
	fs   vfs.FS
	lock io.Closer

	// wmu is the commit lock: it orders appends and guards the active file,
	// the write buffer and rotation.
	wmu    sync.Mutex
	active *dataFile
	buf    []byte
	// ops holds the operations of the write in progress, decoded once
	// from its batch for the three passes write makes over them (size,
	// encode, keydir), 56 bytes an operation while it is written; emptied
	// after each write, so that it keeps no caller's bytes alive (keepOps).
	ops  []writeOp
	pos  uint64 // bytes appended over the DB's open life (group commit)
	werr error  // sticky: after a failed sync, or a write it could not undo, writes fail
	// inRound is set while a round fsyncs outside wmu, and rotated holds
	// the pos a rotation synced meanwhile: its fsync of the round's file
	// can succeed although the round's failed (Linux reports a write-back
	// error once per file), so synced moves only once the round's outcome
	// is known (syncRound).
	inRound bool
	rotated uint64

	// group is the group commit (syncTo): one writer at a time flushes and
	// fsyncs for all (syncFlush, syncRound). Close locks it, so that no
	// fsync is in flight on the file it closes. Lock order: group, wmu.
	group  *groupsync.Group[syncRound]
	synced atomic.Uint64 // pos known durable

	// kmu guards the keydir, the file set and the files' accounting but
	// their dead records, which deadMu guards. Lock order: kmu, deadMu.
	kmu     sync.RWMutex
	deadMu  sync.Mutex
	dead    []deadRecord // under wmu: the records a write made dead (markDead)
	tree    *tree
	files   map[uint32]*dataFile
	lastSeq atomic.Uint64 // stored under kmu with the keydir change

	nextID atomic.Uint32

	mergeMu     sync.Mutex             // one merge at a time
	fileMu      sync.Mutex             // closing and deleting released files
	filesClosed bool                   // under fileMu: Close has closed the files
	zombies     map[*dataFile]struct{} // under fileMu: merged away, still referenced

	closed atomic.Bool
	quit   chan struct{}
	kick   chan struct{}
	// hintsNow asks the worker to write the missing hints at once and to
	// close the channel it was sent when it has: a test waits so, since a
	// file the worker holds while it writes its hint outlives a merge that
	// replaced it until the hint is done (waitHints).
	hintsNow chan chan struct{}
	wg       sync.WaitGroup

	stats stats
	// testHook, when set by tests, is called at named points of merges and
	// rotations; an error it returns aborts the operation there.
	testHook func(point string) error
}

type stats struct {
	gets, writes, writeOps, bytesWritten    atomic.Uint64
	syncs, rotations                        atomic.Uint64
	merges, mergeBytesIn, mergeBytesOut     atomic.Uint64
	mergeNanos, mergeAborts, hintsWritten   atomic.Uint64
	openNanos, openHintFiles, openScanFiles atomic.Uint64
	openTornBytes                           atomic.Uint64
}

// Open opens (creating if needed) the bitcask database in dir. A nil o means
// DefaultOptions. A second Open of the same directory, in this process or
// another, fails with an error wrapping vfs.ErrLocked.
func Open(dir string, o *Options) (*DB, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	opts.ensureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	fs := opts.FS
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bitcask: open %s: %w", dir, err)
	}
	lock, err := fs.Lock(filepath.Join(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("bitcask: open %s: %w", dir, err)
	}
	db := &DB{
		dir:   dir,
		opts:  opts,
		fs:    fs,
		lock:  lock,
		files: map[uint32]*dataFile{},
		quit:  make(chan struct{}),
		kick:  make(chan struct{}, 1),

		hintsNow: make(chan chan struct{}),
	}
	db.group = groupsync.New(db.synced.Load, db.syncFlush, db.syncRound)
	if err := db.recover(); err != nil {
		db.closeFiles()
		lock.Close()
		return nil, err
	}
	for _, df := range db.files {
		db.mapFile(df, df.size)
	}
	db.wmu.Lock()
	err = db.newActive()
	db.wmu.Unlock()
	if err != nil {
		db.closeFiles()
		db.dropFiles()
		lock.Close()
		return nil, err
	}
	db.stats.openNanos.Store(uint64(time.Since(start)))
	db.wg.Add(1)
	go db.worker()
	if opts.Sync == SyncInterval {
		db.wg.Add(1)
		go db.syncLoop()
	}
	db.kickWorker()
	return db, nil
}

func (db *DB) path(name string) string { return filepath.Join(db.dir, name) }

func (db *DB) hook(point string) error {
	if db.testHook != nil {
		return db.testHook(point)
	}
	return nil
}

// unsafeString views b as a string for a lookup that does not keep it.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// LastSeq returns the sequence number of the newest committed batch.
func (db *DB) LastSeq() uint64 { return db.lastSeq.Load() }

// Get returns a copy of the value stored under key, or an error wrapping
// logkv.ErrNotFound. A value whose record fails its checksum returns an error
// wrapping logkv.ErrCorrupt naming the data file and offset.
func (db *DB) Get(key []byte) ([]byte, error) { return db.AppendGet(nil, key) }

// AppendGet appends the value stored under key to dst and returns the
// extended slice (logkv.ValueAppender): Get without a slice of its own, for
// a caller that keeps one buffer across reads. When key is absent it returns
// dst and an error wrapping logkv.ErrNotFound; on any other error, dst and
// that error. A nil dst gets a new slice of the value's length, as Get's.
func (db *DB) AppendGet(dst, key []byte) ([]byte, error) {
	if db.closed.Load() {
		return dst, logkv.ErrClosed
	}
	db.stats.gets.Add(1)
	db.kmu.RLock()
	e, ok := db.tree.get(unsafeString(key))
	var df *dataFile
	if ok {
		df = db.files[e.fid]
		df.refs.Add(1)
	}
	db.kmu.RUnlock()
	if !ok {
		return dst, logkv.ErrNotFound
	}
	v, err := db.readValue(df, e.off, key, e.vlen, dst)
	db.unref(df)
	return v, err
}

// Prefetch hints that Gets of keys follow (logkv.Prefetcher), as a
// pipeline of GETs makes them: a Get waits first for the keydir's nodes on
// its path, then for its record, a random spot in a mapping of tens of MB,
// each a cache (and TLB) miss in turn. Prefetch looks keys up together, up
// to ordtree.MaxBatch at a time under one hold of kmu's read lock
// (ordtree's GetBatch: the descents level by level, each child prefetched
// as soon as it is known, so that the keys' misses overlap), then
// prefetches each present key's record from its file's mapping. The Gets
// that follow find keydir nodes and records in the CPU's caches.
//
// It loads nothing from the mappings and takes no file reference: a
// prefetch is a hint the CPU drops for an address it cannot translate, so it
// cannot fault, even on a file truncated under its mapping or a mapping a
// merge's release has just unmapped (which kmu's read lock, held over the
// whole batch, already rules out for the files in the keydir). Records not
// in a mapping (DisableMmap, a faulted file, the active file's unflushed
// tail) are left to their Gets. It changes nothing visible and counts no
// Get; after Close it does nothing.
func (db *DB) Prefetch(keys [][]byte) {
	var ks [ordtree.MaxBatch]string
	var vs [ordtree.MaxBatch]val
	var found [ordtree.MaxBatch]bool
	for len(keys) > 0 && !db.closed.Load() {
		m := min(len(keys), ordtree.MaxBatch)
		for i, k := range keys[:m] {
			ks[i] = unsafeString(k)
		}
		keys = keys[m:]
		db.kmu.RLock()
		db.tree.current().GetBatch(ks[:m], vs[:m], found[:m])
		for i := range m {
			if !found[i] {
				continue
			}
			v := vs[i]
			df := db.files[v.fid]
			if df == nil {
				continue
			}
			if rec, ok := df.mapped(v.off, recordSize(len(ks[i]), int(v.vlen))); ok {
				ordtree.PrefetchRange(unsafe.Pointer(&rec[0]), len(rec))
			}
		}
		db.kmu.RUnlock()
	}
}

// mapped returns the size bytes at off in df's mapping, when reads may use
// it there: df is mapped, the range is inside the mapping and below what was
// flushed to the file (the active file's tail may still be in its write
// buffer), and no read of the mapping has faulted.
func (df *dataFile) mapped(off uint32, size int) ([]byte, bool) {
	end := int64(off) + int64(size)
	mm := df.mm.Load()
	if mm == nil || end > int64(len(*mm)) || end > df.flushed.Load() || df.faulted.Load() {
		return nil, false
	}
	return (*mm)[off:end], true
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// readValue reads the record at off in df, checks it, and appends its value
// to dst (a new slice of the value's length when dst is nil); on an error it
// returns dst unchanged. The caller holds a reference on df.
func (db *DB) readValue(df *dataFile, off uint32, key []byte, vlen uint32, dst []byte) ([]byte, error) {
	size := recordSize(len(key), int(vlen))
	if rec, ok := df.mapped(off, size); ok {
		if v, ok, err := readMapped(df, rec, off, key, vlen, dst); ok {
			return v, err
		}
		// The mapping faulted: ReadAt below reports what the kernel could
		// not supply (a short file as ErrCorrupt, or the I/O error).
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	if cap(*bp) < size {
		*bp = make([]byte, size)
	}
	buf := (*bp)[:size]
	if err := db.readAt(df, buf, off); err != nil {
		if db.closed.Load() {
			// Close closes every file, held or not: a read it overtook
			// (after the caller checked the DB open) reports the close.
			return dst, logkv.ErrClosed
		}
		return dst, err
	}
	return appendValue(df, buf, off, key, vlen, dst)
}

// readMapped is appendValue of buf, a slice of df's mapping, guarded
// against a fault: a page of the mapping the kernel cannot supply (the file
// was truncated after Open, or the disk failed the page's read) raises
// SIGBUS, which kills a Go process unless the goroutine asked for a panic
// instead (debug.SetPanicOnFault). readMapped asks for one, restoring the
// goroutine's previous setting on return, and recovers a fault (a
// runtime.Error with an Addr method): it then marks df faulted, so that no
// later read uses its mapping (which stays mapped until df is released: a
// reader may still be in it), and returns ok=false for the caller to read
// the record with ReadAt. Any other panic is raised again. Only the decode
// and the copy out touch the mapping, so only they run under the guard.
func readMapped(df *dataFile, buf []byte, off uint32, key []byte, vlen uint32, dst []byte) (v []byte, ok bool, err error) {
	defer df.recoverFault(&ok, debug.SetPanicOnFault(true))
	v, err = appendValue(df, buf, off, key, vlen, dst)
	return v, true, err
}

// recoverFault is readMapped's one deferred call (one defer is cheaper
// than two): it restores the goroutine's panic-on-fault setting old and,
// unless the read returned (*ok), recovers a fault.
func (df *dataFile) recoverFault(ok *bool, old bool) {
	debug.SetPanicOnFault(old)
	if *ok {
		return
	}
	e := recover()
	if e == nil {
		return // runtime.Goexit: let it go on
	}
	if !mapfault.Is(e) {
		panic(e)
	}
	df.faulted.Store(true)
}

// appendValue decodes the record buf read from off in df, checks it against
// the keydir's key and vlen, and appends its value to dst (a new slice of the
// value's length when dst is nil); on an error it returns dst unchanged.
func appendValue(df *dataFile, buf []byte, off uint32, key []byte, vlen uint32, dst []byte) ([]byte, error) {
	r, why := decodeRecord(buf, df.salt)
	switch {
	case why != "":
		return dst, logkv.CorruptError(df.path, int64(off), "%s", why)
	case string(r.key) != string(key) || r.vlen != vlen || r.flags&flagTombstone != 0:
		return dst, logkv.CorruptError(df.path, int64(off), "record does not match the keydir")
	}
	if dst == nil {
		dst = make([]byte, 0, len(r.value))
	}
	return append(dst, r.value...), nil
}

// readAt reads the record at off into buf, from the file or, for a record
// still in the write buffer, from there.
func (db *DB) readAt(df *dataFile, buf []byte, off uint32) error {
	size := len(buf)
	end := int64(off) + int64(size)
	fromBuffer := false
	if end > df.flushed.Load() {
		// Still in the write buffer, unless a flush moved it since.
		db.wmu.Lock()
		if flushed := df.flushed.Load(); end > flushed {
			if db.active != df || end-flushed > int64(len(db.buf)) {
				db.wmu.Unlock()
				return logkv.CorruptError(df.path, int64(off), "record beyond the written data")
			}
			if head := flushed - int64(off); head > 0 {
				// A flush that failed part way (a full disk) wrote the
				// record's head; its tail is still buffered.
				copy(buf[head:], db.buf[:end-flushed])
				if n, err := df.f.ReadAt(buf[:head], int64(off)); n < int(head) {
					db.wmu.Unlock()
					return fmt.Errorf("bitcask: read %s at %d: %w", df.path, off, err)
				}
			} else {
				copy(buf, db.buf[int64(off)-flushed:end-flushed])
			}
			fromBuffer = true
		}
		db.wmu.Unlock()
	}
	if !fromBuffer {
		n, err := df.f.ReadAt(buf, int64(off))
		if n < size {
			if err == nil || errors.Is(err, io.EOF) {
				return logkv.CorruptError(df.path, int64(off), "record of %d bytes runs past the end of the file", size)
			}
			return fmt.Errorf("bitcask: read %s at %d: %w", df.path, off, err)
		}
	}
	return nil
}

// mapFile maps the closed file df for reads, unless options say not to.
func (db *DB) mapFile(df *dataFile, size int64) {
	if db.opts.DisableMmap {
		return
	}
	if b := mapFile(df.f, size); b != nil {
		df.mm.Store(&b)
	}
}

// unref drops a reference on df, releasing it at zero.
func (db *DB) unref(df *dataFile) {
	if df.refs.Add(-1) == 0 {
		db.release(df)
	}
}

// release closes a file nobody uses any more, and deletes it if a committed
// merge replaced it.
func (db *DB) release(df *dataFile) {
	defer func() {
		if mm := df.mm.Swap(nil); mm != nil {
			unmapFile(*mm)
		}
	}()
	db.fileMu.Lock()
	defer db.fileMu.Unlock()
	if db.filesClosed {
		return // Close closed it; an obsolete file is left to the next Open
	}
	df.f.Close()
	delete(db.zombies, df)
	if m := df.obsolete; m != nil {
		db.fs.Remove(df.path)
		db.fs.Remove(db.path(fileName(df.id, hintSuffix)))
		m.remaining--
		if m.remaining == 0 {
			// Every input is gone: the manifest has nothing left to redo.
			if db.fs.SyncDir(db.dir) == nil {
				db.fs.Remove(db.path(m.name))
			}
		}
	}
}

// Set stores value under key.
func (db *DB) Set(key, value []byte, o *logkv.WriteOptions) error {
	if err := logkv.CheckKey(key); err != nil {
		return err
	}
	if err := logkv.CheckValue(value); err != nil {
		return err
	}
	return db.write(opSource{single: true, kind: logkv.KindSet, key: key, value: value}, o)
}

// Delete removes key; deleting an absent key writes a tombstone all the same
// (it is cheap, and keeps the write path free of reads).
func (db *DB) Delete(key []byte, o *logkv.WriteOptions) error {
	if err := logkv.CheckKey(key); err != nil {
		return err
	}
	return db.write(opSource{single: true, kind: logkv.KindDelete, key: key}, o)
}

// Apply commits b atomically, in memory and across crashes.
func (db *DB) Apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	if err := b.Err(); err != nil {
		return err
	}
	if b.Empty() {
		if db.closed.Load() {
			return logkv.ErrClosed
		}
		_, err := logkv.SeqFor(o, db.lastSeq.Load())
		return err
	}
	return db.write(opSource{br: b.Reader()}, o)
}

// opSource yields the operations of one write: a single Set or Delete, or a
// batch's.
type opSource struct {
	single     bool
	kind       logkv.Kind
	key, value []byte
	br         logkv.BatchReader
}

// writeOp is one operation of a write, as write decodes it.
type writeOp struct {
	kind       logkv.Kind
	key, value []byte
}

// maxKeptOps bounds the capacity of DB.ops kept between writes: a huge batch
// does not leave a huge slice behind.
const maxKeptOps = 4096

func (s *opSource) next() (logkv.Kind, []byte, []byte, bool) {
	if s.single {
		if s.key == nil {
			return 0, nil, nil, false
		}
		k, key, value := s.kind, s.key, s.value
		s.key = nil
		return k, key, value, true
	}
	return s.br.Next()
}

func (db *DB) write(src opSource, o *logkv.WriteOptions) error {
	db.wmu.Lock()
	if db.closed.Load() {
		db.wmu.Unlock()
		return logkv.ErrClosed
	}
	if db.werr != nil {
		err := db.werr
		db.wmu.Unlock()
		return err
	}
	seq, err := logkv.SeqFor(o, db.lastSeq.Load())
	if err != nil {
		db.wmu.Unlock()
		return err
	}
	// Size the batch to rotate before it, never within it.
	var total int64
	ops := db.ops[:0]
	deletes := 0
	for kind, key, value, ok := src.next(); ok; kind, key, value, ok = src.next() {
		total += int64(recordSize(len(key), len(value)))
		ops = append(ops, writeOp{kind: kind, key: key, value: value})
		if kind == logkv.KindDelete {
			deletes++
		}
	}
	if db.active.records > 0 && db.active.size+total > db.opts.MaxFileSize {
		// A rotation that failed on a full disk without failing the engine
		// (a flush, or creating the next file) leaves the active file as
		// it was: the batch goes there, past MaxFileSize, and the next
		// write tries to rotate again.
		if err := db.rotate(); err != nil && db.werr != nil {
			db.keepOps(ops)
			db.wmu.Unlock()
			return err
		}
	}
	df := db.active
	base := df.size
	off := base
	synced := uint64(df.syncedSize)
	var userBytes uint64
	for i, op := range ops {
		kind, key, value := op.kind, op.key, op.value
		var flags byte
		if kind == logkv.KindDelete {
			flags |= flagTombstone
		}
		if i < len(ops)-1 {
			flags |= flagMore
		}
		if len(db.buf) >= db.opts.BufferSize && len(db.buf) > 0 {
			// Keep the buffer bounded under a large batch. Nothing of the
			// batch is visible yet, and recovery drops it if the rest
			// never arrives.
			if err := db.flushLocked(); err != nil && i > 0 {
				// Part of the batch may be in the file already and the
				// rest in the buffer: a batch cut in two that later
				// batches would follow. Only a reopen sorts it out.
				// (Before the batch's first record, the buffer holds
				// whole batches: it grows, and the flush after the batch
				// tries again.)
				if db.werr == nil {
					db.werr = fmt.Errorf("%w (the engine refuses further writes; reopen it)", err)
				}
				db.keepOps(ops)
				db.wmu.Unlock()
				return db.werr
			}
		}
		db.buf = appendRecord(db.buf, df.salt, synced, seq, flags, key, value)
		userBytes += uint64(len(key) + len(value))
	}

	// Readers wait while kmu is held: it covers the keydir's changes and
	// nothing else. The records the batch made dead are marked after it,
	// under deadMu.
	dead := db.dead[:0]
	if deletes > 1 {
		// A batch of deletes (kvnode's expirer removes keys 32 at a time):
		// walk to its keys first under the read lock, which readers share,
		// so that the descents' cache misses are taken here and the locked
		// pass below, which readers wait for, finds the nodes in cache.
		// Not for sets: the second descent costs a set CPU, and a batch of
		// sets keeps what it cost.
		db.kmu.RLock()
		db.tree.warm(ops)
		db.kmu.RUnlock()
	}
	db.kmu.Lock()
	df.size = base + total
	for _, op := range ops {
		kind, key, value := op.kind, op.key, op.value
		size := int64(recordSize(len(key), len(value)))
		var prev loc
		var had bool
		if kind == logkv.KindSet {
			prev, had = db.tree.set(entry{key: unsafeString(key), fid: df.id, off: uint32(off), vlen: uint32(len(value))})
		} else {
			prev, had = db.tree.delete(unsafeString(key))
			dead = append(dead, deadRecord{df, uint32(off), size}) // a tombstone is dead on arrival
		}
		if had {
			dead = append(dead, deadRecord{db.files[prev.fid], prev.off, int64(recordSize(int(prev.klen), int(prev.vlen)))})
		}
		off += size
	}
	df.records += len(ops)
	df.noteSeq(seq)
	db.lastSeq.Store(seq)
	db.kmu.Unlock()
	db.markDead(dead)

	db.pos += uint64(total)
	pos := db.pos
	var ferr error
	if len(db.buf) >= db.opts.BufferSize {
		ferr = db.flushLocked()
	}
	n := len(ops)
	db.keepOps(ops)
	db.wmu.Unlock()

	db.stats.writes.Add(1)
	db.stats.writeOps.Add(uint64(n))
	db.stats.bytesWritten.Add(userBytes)
	if (o != nil && o.Sync) || db.opts.Sync == SyncAlways {
		return db.syncTo(pos) // which writes the buffer again first
	}
	if ferr != nil && db.failed() {
		// The batch is applied in memory but its bytes may not be in the
		// file; the engine refuses further writes (werr).
		return ferr
	}
	// A failed write that was undone (a full disk) leaves the batch
	// applied and its bytes in the buffer, as any write is until its
	// flush: the next flush writes them, and a Sync reports the failure
	// until one succeeds.
	return nil
}

// deadRecord is a record a write made dead, to mark in its file's
// accounting once the keydir is unlocked.
type deadRecord struct {
	df   *dataFile
	off  uint32
	size int64
}

// markDead marks the records a write made dead, under deadMu, and keeps the
// slice for the next write, emptied (it would keep files alive), unless a
// huge batch made it large. The caller holds wmu, and not kmu: a merge or
// metrics reading the accounting meanwhile finds records live that the
// keydir no longer points at, which a merge's repoint sorts out (it moves
// only records the keydir still points at).
func (db *DB) markDead(dead []deadRecord) {
	db.deadMu.Lock()
	for _, d := range dead {
		d.df.markDead(d.off, d.size)
	}
	db.deadMu.Unlock()
	clear(dead)
	if cap(dead) > 2*maxKeptOps {
		dead = nil
	}
	db.dead = dead[:0]
}

// keepOps empties ops, the write's decoded operations, so that they keep
// none of the caller's bytes alive, and keeps the slice for the next write
// unless a huge batch made it large. The caller holds wmu.
func (db *DB) keepOps(ops []writeOp) {
	clear(ops)
	if cap(ops) > maxKeptOps {
		ops = nil
	}
	db.ops = ops[:0]
}

// errNoNewFile says rotation could not create the next data file (a full
// disk) and removed what it had made: the active file stays.
var errNoNewFile = errors.New("bitcask: cannot create the next data file")

// failed reports whether the engine refuses writes (werr is set).
func (db *DB) failed() bool {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	return db.werr != nil
}

// flushLocked writes the buffer to the active file. The caller holds wmu.
func (db *DB) flushLocked() error {
	if len(db.buf) == 0 {
		return nil
	}
	df := db.active
	n, err := df.f.Write(db.buf)
	if err != nil || n != len(db.buf) {
		if err == nil {
			err = io.ErrShortWrite
		}
		// A full disk, say. The file is written at its position, not
		// appended to, so the n bytes that made it stay: they are the
		// buffer's first n bytes, exact, and the next flush writes the
		// rest after them (a crash meanwhile leaves a torn tail, which
		// recovery cuts). Readers find the records by flushed and the
		// buffer, which move together.
		if n > 0 {
			df.flushed.Add(int64(n))
			db.buf = append(db.buf[:0], db.buf[n:]...)
		}
		return fmt.Errorf("bitcask: write %s: %w (the buffered records are written again by the next flush)", df.path, err)
	}
	df.flushed.Add(int64(n))
	db.buf = db.buf[:0]
	return nil
}

// syncTo makes everything up to pos durable (group commit, through
// internal/groupsync). A caller that finds no fsync in flight leads: it
// flushes the buffer and fsyncs all that was written so far, outside the
// commit lock. Callers arriving meanwhile wait for that fsync together, and
// are woken together: those it covered return, and one of the others leads
// the next. A failed fsync sticks (werr, and the group's error).
func (db *DB) syncTo(pos uint64) error { return db.group.SyncTo(pos) }

// syncRound is what one group-commit round fsyncs: the active file, as of
// the flush that wrote everything up to target.
type syncRound struct {
	df     *dataFile
	target uint64 // db.pos then
	size   int64  // bytes of df written then
}

// syncFlush starts a round (the group's leader alone calls it): it writes
// the buffer, so that the fsync covers every writer waiting.
func (db *DB) syncFlush(uint64) (syncRound, error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.werr != nil {
		return syncRound{}, db.werr
	}
	if err := db.flushLocked(); err != nil {
		return syncRound{}, err
	}
	db.inRound = true
	return syncRound{df: db.active, target: db.pos, size: db.active.flushed.Load()}, nil
}

// syncRound fsyncs what syncFlush wrote, outside the commit lock, and
// advances the durable watermark. A failure fails the engine.
func (db *DB) syncRound(r syncRound) error {
	err := r.df.f.Sync()
	db.wmu.Lock()
	defer db.wmu.Unlock()
	db.inRound = false
	rotated := db.rotated
	db.rotated = 0
	if err != nil {
		db.werr = fmt.Errorf("bitcask: sync %s: %w (the engine refuses further writes; reopen it)", r.df.path, err)
		return db.werr
	}
	db.stats.syncs.Add(1)
	// The next records appended to df say so (see record.go).
	r.df.syncedSize = max(r.df.syncedSize, r.size)
	storeMax(&db.synced, max(r.target, rotated))
	return nil
}

func storeMax(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if old >= v || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// Sync makes every write committed so far durable.
func (db *DB) Sync() error {
	if db.closed.Load() {
		return logkv.ErrClosed
	}
	db.wmu.Lock()
	pos := db.pos
	db.wmu.Unlock()
	return db.syncTo(pos)
}

// newActive creates the next active file: header written and synced, and its
// directory entry synced. The caller holds wmu.
func (db *DB) newActive() error {
	id := db.nextID.Add(1)
	path := db.path(fileName(id, dataSuffix))
	f, err := db.fs.Create(path)
	if err != nil {
		return fmt.Errorf("%w: create %s: %w", errNoNewFile, path, err)
	}
	h := fileHeader{origin: originAppend, floor: db.lastSeq.Load(), salt: newSalt(), size: fileHeaderSize}
	hdr := appendFileHeader(nil, h.origin, h.floor, h.salt)
	if _, err := f.Write(hdr); err != nil {
		// A full disk, say. The file must not stay: recovery would take
		// it, the newest, for the append file, and the one that goes on
		// taking appends for a closed one.
		f.Close()
		err = fmt.Errorf("write %s: %w", path, err)
		if rerr := db.fs.Remove(path); rerr != nil {
			return fmt.Errorf("bitcask: %w, and removing it failed: %w", err, rerr)
		}
		if serr := db.fs.SyncDir(db.dir); serr != nil {
			return fmt.Errorf("bitcask: %w, and syncing %s after removing it failed: %w", err, db.dir, serr)
		}
		return fmt.Errorf("%w: %w", errNoNewFile, err)
	}
	if err := db.hook("rotate-before-sync"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("bitcask: sync %s: %w", path, err)
	}
	if err := db.fs.SyncDir(db.dir); err != nil {
		f.Close()
		return fmt.Errorf("bitcask: sync dir %s: %w", db.dir, err)
	}
	df := newDataFile(id, db.dir, f, h)
	df.size = fileHeaderSize
	df.syncedSize = fileHeaderSize
	df.flushed.Store(fileHeaderSize)
	df.active = true
	// Map the whole size the file may grow to: reads touch only what was
	// flushed (written to the file), so never a page past its end.
	db.mapFile(df, db.opts.MaxFileSize+maxBatchRecordBytes)
	db.kmu.Lock()
	if db.active != nil {
		db.active.active = false
	}
	db.files[id] = df
	db.kmu.Unlock()
	db.active = df
	return nil
}

// rotate closes the active file (flushed and synced, so that a closed file is
// whole) and starts the next. The caller holds wmu.
func (db *DB) rotate() error {
	old := db.active
	if err := db.flushLocked(); err != nil {
		return err
	}
	if err := old.f.Sync(); err != nil {
		db.werr = fmt.Errorf("bitcask: sync %s: %w (the engine refuses further writes; reopen it)", old.path, err)
		return db.werr
	}
	old.syncedSize = old.flushed.Load()
	if db.inRound {
		// A round's fsync of this same file is in flight: if it fails,
		// this one may have succeeded only because the error was already
		// reported to the round, so the round decides (syncRound).
		db.rotated = max(db.rotated, db.pos)
	} else {
		storeMax(&db.synced, db.pos)
	}
	err := db.hook("rotate-after-sync")
	if err == nil {
		err = db.newActive()
	}
	if errors.Is(err, errNoNewFile) {
		return err // the old file stays active; the next write tries again
	}
	if err != nil {
		db.werr = fmt.Errorf("%w (the engine refuses further writes; reopen it)", err)
		return db.werr
	}
	db.stats.rotations.Add(1)
	db.kickWorker()
	return nil
}

func (db *DB) kickWorker() {
	select {
	case db.kick <- struct{}{}:
	default:
	}
}

// worker writes missing hint files and merges files past the threshold, in
// the background.
func (db *DB) worker() {
	defer db.wg.Done()
	for {
		select {
		case <-db.quit:
			return
		case <-db.kick:
		case done := <-db.hintsNow:
			db.writeMissingHints(false)
			close(done)
			continue
		}
		db.writeMissingHints(false)
		if !db.opts.DisableAutoMerge {
			db.mergeMu.Lock()
			_, err := db.mergeLocked()
			db.mergeMu.Unlock()
			_ = err // a failed merge changed nothing; the next kick retries
		}
	}
}

func (db *DB) syncLoop() {
	defer db.wg.Done()
	t := time.NewTicker(db.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-t.C:
			db.wmu.Lock()
			pos := db.pos
			db.wmu.Unlock()
			_ = db.syncTo(pos) // a failure is sticky in werr; writes report it
		}
	}
}

// Close makes every committed write durable, writes the active file's hint,
// and releases the directory. Snapshots and iterators still open become
// invalid. A second Close returns nil.
func (db *DB) Close() error {
	if !db.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(db.quit)
	db.wg.Wait()
	db.mergeMu.Lock() // wait out a DB.Merge in progress (it sees quit)
	//lint:ignore SA2001 the lock is a barrier, there is nothing to guard
	db.mergeMu.Unlock()

	db.writeMissingHints(true) // the files rotated out since the worker's last round

	db.group.Lock() // a group commit's fsync must not find the file closed
	defer db.group.Unlock()
	db.wmu.Lock()
	err := db.werr
	if err == nil {
		err = db.flushLocked()
	}
	df := db.active
	if err == nil {
		if err = df.f.Sync(); err != nil {
			err = fmt.Errorf("bitcask: sync %s: %w", df.path, err)
		} else {
			// A syncing writer that reaches syncTo only now finds its
			// write covered, rather than fsync a file Close is closing.
			storeMax(&db.synced, db.pos)
		}
	}
	if err == nil {
		// An empty active file can go, unless its header's seq floor is the
		// only record of LastSeq left (a merge may have dropped the records
		// of the newest batches: deletes of keys nothing older holds).
		db.kmu.RLock()
		empty, covered := df.records == 0, false
		for _, o := range db.files {
			if o != df && max(o.floor, o.maxSeq) >= db.lastSeq.Load() {
				covered = true
			}
		}
		db.kmu.RUnlock()
		if empty && covered {
			// Leave no empty files behind a reopen.
			db.kmu.Lock()
			delete(db.files, df.id)
			db.kmu.Unlock()
			df.f.Close()
			if mm := df.mm.Swap(nil); mm != nil {
				unmapFile(*mm) // no reader can be in a file without records
			}
			db.fs.Remove(df.path)
			err = db.fs.SyncDir(db.dir)
		} else {
			err = db.writeHint(df)
		}
	}
	db.buf = nil
	db.wmu.Unlock()

	db.closeFiles()
	db.dropFiles()
	if lerr := db.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// dropFiles drops the file set's references after closeFiles: each file's
// mapping goes when the last snapshot, iterator or read using it lets go.
func (db *DB) dropFiles() {
	db.kmu.RLock()
	files := make([]*dataFile, 0, len(db.files))
	for _, df := range db.files {
		files = append(files, df)
	}
	db.kmu.RUnlock()
	for _, df := range files {
		db.unref(df)
	}
}

func (db *DB) closeFiles() {
	db.fileMu.Lock()
	defer db.fileMu.Unlock()
	if db.filesClosed {
		return
	}
	db.filesClosed = true
	db.kmu.RLock()
	defer db.kmu.RUnlock()
	for _, df := range db.files {
		df.f.Close()
	}
	for df := range db.zombies {
		df.f.Close()
	}
}
