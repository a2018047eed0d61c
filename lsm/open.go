package lsm

import (
	"fmt"

	"github.com/logkv/logkv/lsm/internal/sstable"
	"github.com/logkv/logkv/vfs"
)

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
	d.tc.noMmap = opts.DisableMmap
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
