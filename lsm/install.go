package lsm

import (
	"fmt"
	"runtime"

	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/logkv/logkv/lsm/internal/sstable"
)

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
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			if err := add(it.Key(), it.Value()); err != nil {
				return err
			}
			if n++; n%256 == 0 {
				// Let a goroutine that waits for a P run, as compaction's
				// merge does (runCompaction): a flush runs for tens of
				// milliseconds without blocking, and on a 2-core kvnode
				// the event loop, back from epoll, waited for it (flush
				// stretches of p90 7-23 ms in expiry-latency TRACE= runs;
				// with this yield 78-90 us, against 8.6-13.8 ms for the
				// build without it, 2 alternating pairs, load 3-7).
				runtime.Gosched()
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
