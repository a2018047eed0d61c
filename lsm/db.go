package lsm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/logkv/logkv/lsm/internal/sstable"
	"github.com/logkv/logkv/vfs"
)

var _ logkv.Engine = (*DB)(nil)

func init() { logkv.RegisterTyped("lsm", Open) }

var (
	errClosedDB = fmt.Errorf("lsm: %w", logkv.ErrClosed)
	errNotExist = os.ErrNotExist
	// errClosing stops background work when the DB closes.
	errClosing = errors.New("lsm: closing")
)

// DB is an LSM-tree engine: a WAL, memtables, and leveled SSTables in one
// directory. All methods are safe for concurrent use.
type DB struct {
	dir   string
	opts  Options
	fs    vfs.FS
	lock  io.Closer
	cache *sstable.Cache
	tc    *tableCache
	wo    sstable.WriterOptions

	// commitMu serializes writers: seq assignment, WAL append and memtable
	// insert happen in seq order under it.
	commitMu sync.Mutex
	lastSeq  atomic.Uint64 // newest committed seq
	visible  atomic.Uint64 // newest seq readers may see
	closed   atomic.Bool
	noDelete atomic.Bool
	failed   atomic.Bool // bgErr is set

	// mu guards the fields below; cond is signalled whenever they change
	// (flush or compaction done, close).
	mu          sync.Mutex
	cond        sync.Cond
	mem         *memTable
	imm         []*memTable // oldest first
	wal         *walWriter
	current     *manifest.Version
	nextFileNum uint64
	logNum      uint64
	snapshots   []uint64 // seqs of open snapshots, a sorted multiset
	closing     bool
	bgErr       error
	flushing    bool
	compacting  bool
	compactPtr  [manifest.NumLevels][]byte

	// manifestMu serializes version changes (flush and compaction installs).
	manifestMu sync.Mutex
	manifest   *manifestWriter

	rs atomic.Pointer[readState] // the current read state (loadReadState)

	fileMu  sync.Mutex // file reference counts (FileMeta.Refs, Version refs)
	l0Count atomic.Int64

	bg sync.WaitGroup

	flushedSeq atomic.Uint64 // the newest LastSeq recorded in the manifest
	testHooks  testHooks
	m          metrics
}

// Open opens (creating if needed) the DB in dir. A nil o means the defaults.
// It recovers the state the manifest and the WAL describe: every write that
// was synced before a crash is there, and the state is a prefix of the
// history of writes.
func Open(dir string, o *Options) (*DB, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	d := &DB{dir: dir, opts: opts, fs: opts.FS, wo: opts.writerOptions()}
	d.cond.L = &d.mu
	if err := d.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lsm: create %s: %w", dir, err)
	}
	lock, err := d.fs.Lock(joinPath(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("lsm: lock %s (is another DB open on it?): %w", dir, err)
	}
	d.lock = lock
	d.cache = sstable.NewCache(opts.CacheSize)
	d.tc = newTableCache(d.fs, dir, d.cache, opts.MaxOpenFiles)
	if err := d.recover(); err != nil {
		d.tc.close()
		lock.Close()
		return nil, err
	}
	d.bg.Add(2)
	go d.flushLoop()
	go d.compactLoop()
	return d, nil
}

func (d *DB) newWAL(f vfs.File, num uint64) *walWriter {
	w := newWALWriter(d.fs, f, num, logName(num))
	w.bytes = &d.m.walBytes
	w.syncs = &d.m.walSyncs
	return w
}

// writeL0 writes a memtable's entries to a new table and returns its meta.
// The table is synced; its directory entry is made durable by the caller
// (the manifest install syncs the directory, or a SyncDir before it).
func (d *DB) writeL0(m *memTable) (*manifest.FileMeta, error) {
	d.mu.Lock()
	num := d.nextFileNum
	d.nextFileNum++
	d.mu.Unlock()
	it := m.newIter()
	meta, err := d.writeTable(num, func(add func(k, v []byte) error) error {
		for ok := it.First(); ok; ok = it.Next() {
			if err := add(it.Key(), it.Value()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	d.m.flushBytes.Add(meta.Size)
	d.m.flushes.Add(1)
	return meta, nil
}

// writeTable writes table num from the entries fill adds.
func (d *DB) writeTable(num uint64, fill func(add func(k, v []byte) error) error) (*manifest.FileMeta, error) {
	name := tableName(num)
	f, err := d.fs.Create(joinPath(d.dir, name))
	if err != nil {
		return nil, fmt.Errorf("lsm: create table %s: %w", name, err)
	}
	w := sstable.NewWriter(f, d.wo)
	if err := fill(w.Add); err != nil {
		w.Close()
		d.fs.Remove(joinPath(d.dir, name))
		return nil, err
	}
	sm, err := w.Close()
	if err != nil {
		d.fs.Remove(joinPath(d.dir, name))
		return nil, fmt.Errorf("lsm: write table %s: %w", name, err)
	}
	return metaOf(num, sm), nil
}

func metaOf(num uint64, sm sstable.Meta) *manifest.FileMeta {
	return &manifest.FileMeta{
		Num: num, Size: sm.Size, Smallest: sm.Smallest, Largest: sm.Largest,
		SmallestSeq: sm.SmallestSeq, LargestSeq: sm.LargestSeq, Entries: sm.Entries,
	}
}

// logAndApply records e in the manifest and installs the resulting version;
// then, under d.mu, runs also (which may change d.imm) and publishes a new
// read state.
func (d *DB) logAndApply(e *manifest.Edit, also func()) error {
	d.manifestMu.Lock()
	defer d.manifestMu.Unlock()
	d.mu.Lock()
	v := d.current
	e.NextFileNum = d.nextFileNum
	if e.LogNum == 0 {
		e.LogNum = d.logNum
	}
	d.mu.Unlock()
	nv, err := v.Apply(e)
	if err != nil {
		return err
	}
	if d.manifest.size >= d.opts.MaxManifestSize {
		// Rotate: a new manifest starting with a snapshot of nv.
		d.mu.Lock()
		num := d.nextFileNum
		d.nextFileNum++
		d.mu.Unlock()
		snap := nv.Snapshot()
		snap.LogNum, snap.NextFileNum, snap.LastSeq = e.LogNum, num+1, max(e.LastSeq, d.manifestLastSeq())
		mw, err := createManifest(d.fs, d.dir, num, snap, d.testHooks.midManifestRotate)
		if err != nil {
			return err
		}
		old := d.manifest
		d.manifest = mw
		old.f.Close()
		_ = d.fs.Remove(joinPath(d.dir, manifestName(old.num)))
		d.m.manifestRotations.Add(1)
	} else if err := d.manifest.add(e); err != nil {
		return err
	}
	if e.LastSeq > d.flushedSeq.Load() {
		d.flushedSeq.Store(e.LastSeq)
	}
	d.mu.Lock()
	d.logNum = e.LogNum
	d.installVersionLocked(nv)
	if also != nil {
		also()
	}
	d.updateReadStateLocked()
	d.cond.Broadcast()
	d.mu.Unlock()
	return nil
}

func (d *DB) manifestLastSeq() uint64 { return d.flushedSeq.Load() }

// Get returns the value of key at the DB's latest state.
func (d *DB) Get(key []byte) ([]byte, error) {
	if d.closed.Load() {
		return nil, errClosedDB
	}
	seq := d.visible.Load()
	rs := d.loadReadState()
	defer rs.unref()
	return d.get(rs, key, seq)
}

func (d *DB) get(rs *readState, key []byte, seq uint64) ([]byte, error) {
	d.m.gets.Add(1)
	if err := logkv.CheckKey(key); err != nil {
		return nil, err
	}
	if v, kind, ok := rs.mem.get(key, seq); ok {
		return found(v, kind)
	}
	for i := len(rs.imm) - 1; i >= 0; i-- {
		if v, kind, ok := rs.imm[i].get(key, seq); ok {
			return found(v, kind)
		}
	}
	l0 := rs.v.Levels[0]
	for i := len(l0) - 1; i >= 0; i-- {
		f := l0[i]
		if !inRange(f, key) {
			continue
		}
		v, kind, ok, err := d.getFromTable(f, key, seq)
		if err != nil {
			return nil, err
		}
		if ok {
			return foundOwned(v, kind)
		}
	}
	for lvl := 1; lvl < manifest.NumLevels; lvl++ {
		files := rs.v.Levels[lvl]
		i := manifest.SearchLevel(files, key)
		if i == len(files) || !inRange(files[i], key) {
			continue
		}
		v, kind, ok, err := d.getFromTable(files[i], key, seq)
		if err != nil {
			return nil, err
		}
		if ok {
			return foundOwned(v, kind)
		}
	}
	return nil, logkv.ErrNotFound
}

// found answers a Get from a memtable's entry: v aliases the memtable's
// arena, so the caller gets a copy.
func found(v []byte, kind base.Kind) ([]byte, error) {
	if kind == base.KindDelete {
		return nil, logkv.ErrNotFound
	}
	return append(make([]byte, 0, len(v)), v...), nil
}

// foundOwned answers a Get from a table's entry: sstable.Reader.Get already
// returned a copy the caller owns, so it is handed over as it is (copying it
// again cost an allocation and a copy per Get).
func foundOwned(v []byte, kind base.Kind) ([]byte, error) {
	if kind == base.KindDelete {
		return nil, logkv.ErrNotFound
	}
	if v == nil {
		v = []byte{} // present with an empty value: not nil
	}
	return v, nil
}

func inRange(f *manifest.FileMeta, ukey []byte) bool {
	return string(ukey) >= string(base.UserKey(f.Smallest)) && string(ukey) <= string(base.UserKey(f.Largest))
}

func (d *DB) getFromTable(f *manifest.FileMeta, key []byte, seq uint64) ([]byte, base.Kind, bool, error) {
	e, err := d.tc.get(f)
	if err != nil {
		return nil, 0, false, err
	}
	defer d.tc.release(e)
	return e.r.Get(key, seq)
}

// Set stores value under key.
func (d *DB) Set(key, value []byte, o *logkv.WriteOptions) error {
	b := batchPool.Get().(*logkv.Batch)
	b.Reset()
	b.Set(key, value)
	err := d.Apply(b, o)
	batchPool.Put(b)
	return err
}

// Delete removes key.
func (d *DB) Delete(key []byte, o *logkv.WriteOptions) error {
	b := batchPool.Get().(*logkv.Batch)
	b.Reset()
	b.Delete(key)
	err := d.Apply(b, o)
	batchPool.Put(b)
	return err
}

var batchPool = sync.Pool{New: func() any { return new(logkv.Batch) }}

// Apply commits b atomically at one sequence number.
//
// The commit path: under commitMu, assign the seq, make room (rotating the
// memtable or stalling), append the record to the WAL buffer, insert into
// the memtable, and publish the seq to readers. A synced write then waits,
// outside the lock, for the WAL's group commit to cover its record, so
// concurrent synced writers share fsyncs. A write is visible to readers
// before it is durable; a synced write returns only once it is durable.
func (d *DB) Apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	if d.closed.Load() {
		return errClosedDB
	}
	if err := b.Err(); err != nil {
		return err
	}
	if b.Empty() {
		if o != nil && o.Seq != 0 {
			d.commitMu.Lock()
			_, err := logkv.SeqFor(o, d.lastSeq.Load())
			d.commitMu.Unlock()
			return err
		}
		return nil
	}
	sync := d.opts.SyncWrites || (o != nil && o.Sync)
	if d.l0Count.Load() >= int64(d.opts.L0SlowdownWritesThreshold) && d.l0Count.Load() < int64(d.opts.L0StopWritesThreshold) {
		start := time.Now()
		time.Sleep(time.Millisecond)
		d.m.slowdowns.Add(1)
		d.m.stallNanos.Add(uint64(time.Since(start)))
	}
	d.commitMu.Lock()
	if d.closed.Load() {
		d.commitMu.Unlock()
		return errClosedDB
	}
	seq, err := logkv.SeqFor(o, d.lastSeq.Load())
	if err == nil && seq > base.MaxSeq {
		err = fmt.Errorf("lsm: sequence number %d over the maximum %d", seq, uint64(base.MaxSeq))
	}
	if err == nil {
		err = d.makeRoomForWrite(b)
	}
	if err != nil {
		d.commitMu.Unlock()
		return err
	}
	w := d.wal
	var end int64
	if w != nil {
		if end, err = w.append(seq, b.Repr()); err != nil {
			d.commitMu.Unlock()
			return err
		}
	}
	nbytes, err := d.mem.apply(b, seq)
	if err != nil {
		// roomFor guarantees the space; a failure here would leave part of
		// a batch in the memtable, so the DB stops taking writes.
		d.mu.Lock()
		d.failLocked(fmt.Errorf("lsm: memtable insert: %w", err))
		d.mu.Unlock()
		d.commitMu.Unlock()
		return err
	}
	d.lastSeq.Store(seq)
	d.visible.Store(seq)
	d.commitMu.Unlock()
	d.m.writes.Add(1)
	d.m.writeOps.Add(uint64(b.Len()))
	d.m.bytesWritten.Add(uint64(nbytes))
	if sync {
		if w != nil {
			return w.syncTo(end)
		}
		return d.flushAll()
	}
	return nil
}

// makeRoomForWrite makes sure the mutable memtable can take b, rotating it
// (and the WAL segment) when full, and stalls while the memtables waiting
// to flush or L0 are at their limits. The caller holds commitMu.
func (d *DB) makeRoomForWrite(b *logkv.Batch) error {
	// The fast path, without d.mu: d.mem changes only under commitMu, which
	// the caller holds.
	if !d.failed.Load() && d.l0Count.Load() < int64(d.opts.L0StopWritesThreshold) && d.mem.roomFor(b.Size(), b.Len()) {
		return nil
	}
	stalled := false
	var start time.Time
	defer func() {
		if stalled {
			d.m.stalls.Add(1)
			d.m.stallNanos.Add(uint64(time.Since(start)))
		}
	}()
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if d.bgErr != nil {
			return d.bgErr
		}
		if d.closing {
			return errClosedDB
		}
		if len(d.current.Levels[0]) >= d.opts.L0StopWritesThreshold {
			if !stalled {
				stalled, start = true, time.Now()
			}
			d.cond.Wait()
			continue
		}
		if d.mem.roomFor(b.Size(), b.Len()) {
			return nil
		}
		if len(d.imm)+1 >= d.opts.MemtableStopWritesThreshold {
			if !stalled {
				stalled, start = true, time.Now()
			}
			d.cond.Wait()
			continue
		}
		if err := d.rotateMemtableLocked(int64(b.Size() + b.Len()*entryBound)); err != nil {
			return err
		}
	}
}

// rotateMemtableLocked freezes the mutable memtable, starts a new WAL
// segment for its successor, and wakes the flusher. The caller holds
// commitMu and d.mu. need is the room the next write needs.
func (d *DB) rotateMemtableLocked(need int64) error {
	var walNum uint64
	if !d.opts.DisableWAL {
		// The old segment is synced whole before the new one exists, so
		// only the last segment can have a torn tail after a crash, and a
		// synced write in the new segment never follows lost writes.
		if err := d.wal.close(); err != nil {
			return d.failLocked(err)
		}
		walNum = d.nextFileNum
		d.nextFileNum++
		f, err := d.fs.Create(joinPath(d.dir, logName(walNum)))
		if err == nil {
			err = d.fs.SyncDir(d.dir)
		}
		if err != nil {
			return d.failLocked(fmt.Errorf("lsm: create WAL segment: %w", err))
		}
		d.wal = d.newWAL(f, walNum)
	}
	size := max(d.opts.MemtableSize, need+4096)
	d.imm = append(d.imm, d.mem)
	keys := d.mem.index.keys // read under commitMu, as the writer
	d.mem = newMemTable(size, walNum)
	d.mem.index.reserve(keys)
	d.updateReadStateLocked()
	d.cond.Broadcast()
	return nil
}

// failLocked records a background error: the DB stops taking writes. The
// caller holds d.mu.
func (d *DB) failLocked(err error) error {
	if d.bgErr == nil {
		d.bgErr = err
		d.failed.Store(true)
	}
	return d.bgErr
}

// flushAll freezes the mutable memtable (if it holds anything) and waits
// until every memtable is flushed: with DisableWAL, this is what makes
// writes durable.
func (d *DB) flushAll() error {
	d.commitMu.Lock()
	d.mu.Lock()
	var err error
	if !d.mem.empty() {
		for len(d.imm)+1 >= d.opts.MemtableStopWritesThreshold && d.bgErr == nil && !d.closing {
			d.cond.Wait()
		}
		if d.bgErr == nil && !d.closing {
			err = d.rotateMemtableLocked(0)
		}
	}
	d.commitMu.Unlock()
	for err == nil && len(d.imm) > 0 && d.bgErr == nil && !d.closing {
		d.cond.Wait()
	}
	if err == nil {
		err = d.bgErr
	}
	if err == nil && len(d.imm) > 0 {
		err = errClosedDB
	}
	d.mu.Unlock()
	return err
}

// LastSeq returns the sequence number of the newest committed batch.
func (d *DB) LastSeq() uint64 { return d.lastSeq.Load() }

// Sync makes every committed write durable: it syncs the WAL, or, with
// DisableWAL, flushes the memtables to tables.
func (d *DB) Sync() error {
	if d.closed.Load() {
		return errClosedDB
	}
	if d.opts.DisableWAL {
		return d.flushAll()
	}
	d.commitMu.Lock()
	w := d.wal
	d.commitMu.Unlock()
	w.mu.Lock()
	end := w.appended
	w.mu.Unlock()
	// Rotated meanwhile: close synced w whole and the round returns nil
	// (syncFlush). An error here is close's own failure (or a round's) and
	// must reach the caller: the bytes up to end may not be durable.
	return w.syncTo(end)
}

// Close makes every committed write durable and releases the DB. Iterators
// and snapshots still open become invalid. A second Close returns nil.
func (d *DB) Close() error {
	d.commitMu.Lock()
	if d.closed.Load() {
		d.commitMu.Unlock()
		return nil
	}
	d.commitMu.Unlock()
	var err error
	if d.opts.DisableWAL {
		err = d.flushAll()
	}
	d.commitMu.Lock()
	d.closed.Store(true)
	d.mu.Lock()
	d.closing = true
	d.cond.Broadcast()
	d.mu.Unlock()
	d.commitMu.Unlock()
	d.bg.Wait()
	if d.wal != nil {
		if werr := d.wal.close(); werr != nil && err == nil {
			err = werr
		}
	}
	d.manifestMu.Lock()
	if d.manifest != nil {
		d.manifest.f.Close()
	}
	d.manifestMu.Unlock()
	d.noDelete.Store(true)
	d.mu.Lock()
	d.m.final = d.metricsLocked()
	d.mu.Unlock()
	d.tc.close()
	d.lock.Close()
	return err
}
