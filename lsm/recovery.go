package lsm

import (
	"errors"
	"fmt"
	"slices"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/manifest"
)

// # What recovery may cut, and what is corruption
//
// A crash can leave the end of a log written in part: the last WAL segment's
// records past its last sync, and the manifest's last edit if the crash came
// while it was being appended. Recovery cuts such a torn tail, and logs the
// cut. Everything else that fails a check is corruption, an error wrapping
// logkv.ErrCorrupt that names the file and offset, and the DB does not open:
// cutting it would silently lose acknowledged writes.
//
// The bytes alone cannot always tell the two apart (a torn sector and a
// flipped bit both fail a checksum), so recovery asks the other files:
//
//   - WAL: a damaged record that a later valid record says was synced (its
//     synced field lies past the damage) is corruption; so is any damage in
//     a segment that is not the newest, or a missing closing marker there (a
//     segment is synced whole, with its marker, before the next one
//     starts). wal.go. The limit: the records of the newest segment's last
//     group commit have no later record to vouch that their sync returned,
//     so damage there, or the segment cut short, reads exactly as a crash
//     during that sync would leave it. Recovery cuts there, never before
//     the damage, and logs the cut (or the missing marker: an unclean
//     shutdown). Telling those apart would take a second fsync per commit.
//   - Manifest: an edit is appended and synced before anything acts on it,
//     so if its sync never returned, the tree it would replace is still
//     whole on disk. Recovery checks that: every table the recovered tree
//     names must exist at its recorded size (a compaction deletes its inputs
//     only after its edit is synced), and every table the tree does not name
//     that holds writes newer than the tree's last sequence number must be
//     covered by the WAL replay (a flush deletes its WAL segment only after
//     its edit is synced). A table that fails either check proves that lost
//     edits were durable: corruption.
//   - CURRENT: a missing CURRENT in a directory holding tables or WAL
//     records, or a CURRENT naming a missing manifest, is corruption, not a
//     new DB.
//
// Recovery never deletes a table as obsolete when the manifest's tail was
// cut: the tables it does not name are kept (and logged) for the next Open,
// whose manifest, the one this Open writes, reads cleanly.

// recover rebuilds the DB's state from the manifest and the WAL, flushes
// what the WAL held to L0, starts a new WAL segment and a new manifest, and
// deletes obsolete files.
func (d *DB) recover() error {
	names, err := d.fs.List(d.dir)
	if err != nil {
		return fmt.Errorf("lsm: list %s: %w", d.dir, err)
	}
	slices.Sort(names)
	st := &recoveredState{v: &manifest.Version{}, nextFileNum: 1}
	num, ok, err := readCurrent(d.fs, d.dir)
	if err != nil {
		return err
	}
	if ok {
		if st, err = replayManifest(d.fs, d.dir, num); err != nil {
			return err
		}
		if err := d.checkLiveTables(st); err != nil {
			return err
		}
	} else if err := d.checkNewDir(names); err != nil {
		return err
	}
	var logs []uint64
	for _, n := range names {
		kind, num := parseName(n)
		if kind == kindUnknown || kind == kindTemp {
			continue
		}
		if num >= st.nextFileNum {
			st.nextFileNum = num + 1
		}
		if kind == kindLog && num >= st.logNum && ok {
			logs = append(logs, num)
		}
	}
	slices.Sort(logs)
	d.nextFileNum = st.nextFileNum
	lastSeq := st.lastSeq

	// Replay the WAL into memtables, flushing each as it fills. The tables
	// written here are removed again if recovery fails after all.
	var added []manifest.NewFile
	fail := func(err error) error {
		for _, a := range added {
			_ = d.fs.Remove(joinPath(d.dir, tableName(a.Meta.Num)))
		}
		return err
	}
	mem := newMemTable(d.opts.MemtableSize, 0)
	flushMem := func() error {
		if mem.empty() {
			return nil
		}
		meta, err := d.writeL0(mem)
		if err != nil {
			return err
		}
		added = append(added, manifest.NewFile{Level: 0, Meta: meta})
		mem = newMemTable(d.opts.MemtableSize, 0)
		return nil
	}
	var firstSeq uint64 // the first seq the WAL replays, 0 if none
	var walCut *tailCut
	for i, num := range logs {
		cut, err := replayWAL(d.fs, joinPath(d.dir, logName(num)), logName(num), i == len(logs)-1, func(seq uint64, b *logkv.Batch) error {
			if seq <= lastSeq {
				// Already in the tables (flushed before the WAL was deleted).
				return nil
			}
			if firstSeq == 0 {
				firstSeq = seq
			}
			if !mem.roomFor(b.Size(), b.Len()) {
				if err := flushMem(); err != nil {
					return err
				}
				if !mem.roomFor(b.Size(), b.Len()) {
					mem = newMemTable(int64(b.Size()+b.Len()*entryBound+4096), 0)
				}
			}
			if _, err := mem.apply(b, seq); err != nil {
				return err
			}
			lastSeq = seq
			return nil
		})
		if err != nil {
			return fail(err)
		}
		walCut = cut
	}
	var kept []string // unreferenced tables kept because the manifest was cut
	if ok {
		if kept, err = d.checkOrphanTables(st, names, len(logs) > 0, firstSeq, lastSeq); err != nil {
			return fail(err)
		}
	}
	// Only now, with every check passed, cut the torn tails.
	if walCut != nil {
		if err := sealWAL(d.fs, d.dir, walCut); err != nil {
			return fail(err)
		}
		if walCut.off < walCut.size {
			d.logCut(walCut, "lsm: cut the torn tail of the last WAL segment: damage past the last offset a record says was synced")
		} else if !walCut.closed {
			d.opts.Logger.Warn("lsm: the last WAL segment ends without its closing marker: the DB was not closed cleanly, and writes that were not synced may be lost",
				"dir", d.dir, "file", walCut.name, "offset", walCut.off)
		}
	}
	if st.cut != nil {
		// The manifest itself is replaced below; the cut is in what the
		// new one leaves out.
		d.logCut(st.cut, "lsm: dropped the torn last edit of the manifest: its sync never returned, and the files it would have replaced are all present")
	}
	if err := flushMem(); err != nil {
		return fail(err)
	}

	// Start the new WAL segment and the new manifest.
	var walNum uint64
	if !d.opts.DisableWAL {
		walNum = d.nextFileNum
		d.nextFileNum++
		f, err := d.fs.Create(joinPath(d.dir, logName(walNum)))
		if err != nil {
			return fail(fmt.Errorf("lsm: create WAL: %w", err))
		}
		d.wal = d.newWAL(f, walNum)
	}
	manifestNum := d.nextFileNum
	d.nextFileNum++
	d.logNum = d.nextFileNum // every older WAL is replayed and flushed
	if walNum != 0 {
		d.logNum = walNum
	}
	v, err := st.v.Apply(&manifest.Edit{Added: added})
	if err != nil {
		return logkv.CorruptError(manifestName(st.manifestNum), 0, "%v", err)
	}
	snap := v.Snapshot()
	snap.LogNum, snap.NextFileNum, snap.LastSeq = d.logNum, d.nextFileNum, lastSeq
	// createManifest syncs the directory, which makes the new WAL's and
	// tables' entries durable too.
	mw, err := createManifest(d.fs, d.dir, manifestNum, snap, nil)
	if err != nil {
		if d.wal != nil {
			d.wal.close()
		}
		return err
	}
	d.manifest = mw
	d.lastSeq.Store(lastSeq)
	d.visible.Store(lastSeq)
	d.flushedSeq.Store(lastSeq)
	d.mem = newMemTable(d.opts.MemtableSize, walNum)
	d.mu.Lock()
	d.installVersionLocked(v)
	d.updateReadStateLocked()
	d.mu.Unlock()

	// Delete what the new state does not need.
	live := map[uint64]bool{}
	v.Files(func(_ int, f *manifest.FileMeta) { live[f.Num] = true })
	for _, n := range kept {
		d.opts.Logger.Warn("lsm: kept a table the manifest does not name, since the manifest's tail was cut; the next Open deletes it", "dir", d.dir, "file", n)
	}
	for _, n := range names {
		kind, num := parseName(n)
		del := false
		switch kind {
		case kindTemp:
			del = true
		case kindLog:
			del = num != walNum
		case kindManifest:
			del = num != manifestNum
		case kindTable:
			del = !live[num] && !slices.Contains(kept, n)
		}
		if del {
			d.removeObsolete(n)
		}
	}
	return nil
}

// removeObsolete deletes a file recovery found obsolete, and logs it.
func (d *DB) removeObsolete(name string) {
	path := joinPath(d.dir, name)
	size := int64(-1)
	if fi, err := d.fs.Stat(path); err == nil {
		size = fi.Size()
	}
	if err := d.fs.Remove(path); err != nil {
		// Garbage that the next Open deletes.
		d.opts.Logger.Warn("lsm: could not delete an obsolete file at open", "dir", d.dir, "file", name, "bytes", size, "err", err)
		return
	}
	d.opts.Logger.Info("lsm: deleted an obsolete file at open", "dir", d.dir, "file", name, "bytes", size)
}

// tailCut is how a log file ends, as recovery found it: its valid records
// end at off, and the size-off bytes after them are a torn tail, dropped
// because why. closed says whether a WAL segment ends with a closing
// marker.
type tailCut struct {
	name      string
	off, size int64
	why       error
	closed    bool
}

func (d *DB) logCut(c *tailCut, msg string) {
	d.opts.Logger.Warn(msg, "dir", d.dir, "file", c.name, "offset", c.off, "bytes", c.size-c.off, "reason", c.why.Error())
}

// checkNewDir is called when the directory has no CURRENT: that is a new
// DB only if nothing in it holds data. A first Open that crashed before
// writing CURRENT leaves at most an empty WAL segment and a manifest.
func (d *DB) checkNewDir(names []string) error {
	for _, n := range names {
		kind, _ := parseName(n)
		switch kind {
		case kindTable:
			return logkv.CorruptError(currentName, 0, "CURRENT is missing but the directory holds table %s: restore CURRENT (it names the newest MANIFEST-NNNNNN) or the directory from a backup", n)
		case kindLog:
			fi, err := d.fs.Stat(joinPath(d.dir, n))
			if err != nil {
				return fmt.Errorf("lsm: stat %s: %w", n, err)
			}
			if fi.Size() > 0 {
				return logkv.CorruptError(currentName, 0, "CURRENT is missing but the directory holds WAL segment %s of %d bytes: restore CURRENT (it names the newest MANIFEST-NNNNNN) or the directory from a backup", n, fi.Size())
			}
		}
	}
	return nil
}

// checkLiveTables checks that every table the recovered tree names exists
// at the size the manifest records. A missing table means an edit that
// deleted it (a compaction's) was durable and has been lost from the
// manifest, or the file itself was lost: either way, data is gone.
func (d *DB) checkLiveTables(st *recoveredState) error {
	var err error
	st.v.Files(func(lvl int, f *manifest.FileMeta) {
		if err != nil {
			return
		}
		name := tableName(f.Num)
		fi, serr := d.fs.Stat(joinPath(d.dir, name))
		switch {
		case errors.Is(serr, errNotExist):
			err = logkv.CorruptError(name, 0, "table is missing, yet %s names it in L%d: the manifest lost edits or the table was deleted; restore the directory from a backup or a replica", manifestName(st.manifestNum), lvl)
		case serr != nil:
			err = fmt.Errorf("lsm: stat %s: %w", name, serr)
		case uint64(fi.Size()) != f.Size:
			err = logkv.CorruptError(name, min(fi.Size(), int64(f.Size)), "table is %d bytes, but %s records %d: restore the directory from a backup or a replica", fi.Size(), manifestName(st.manifestNum), f.Size)
		}
	})
	return err
}

// checkOrphanTables looks at the tables in the directory that the recovered
// tree does not name. One holding writes newer than the tree's last seq
// must have been written by a flush (or a compaction of flushed tables)
// whose WAL the replay still holds: its writes from firstSeq to lastSeq,
// the span the replay covered. Otherwise the edit that recorded the table
// was durable, its WAL segment was deleted after it, and the manifest lost
// it. walMode says whether the directory has WAL segments at all (without a
// WAL, unflushed writes were never acknowledged, so nothing can be checked).
//
// It returns the orphans to keep rather than delete: all of them when the
// manifest's tail was cut.
func (d *DB) checkOrphanTables(st *recoveredState, names []string, walMode bool, firstSeq, lastSeq uint64) (kept []string, err error) {
	live := map[uint64]bool{}
	st.v.Files(func(_ int, f *manifest.FileMeta) { live[f.Num] = true })
	for _, n := range names {
		kind, num := parseName(n)
		if kind != kindTable || live[num] {
			continue
		}
		if st.cut != nil {
			kept = append(kept, n)
		}
		if !walMode {
			continue
		}
		fi, err := d.fs.Stat(joinPath(d.dir, n))
		if err != nil {
			return nil, fmt.Errorf("lsm: stat %s: %w", n, err)
		}
		r, err := d.tc.openWith(&manifest.FileMeta{Num: num, Size: uint64(fi.Size())}, nil)
		if err != nil {
			// A table cut short by a crash while it was written: no edit
			// ever named it (tables are synced before their edit).
			d.opts.Logger.Info("lsm: an unnamed table does not open; it is the remains of a write cut by a crash", "dir", d.dir, "file", n, "bytes", fi.Size(), "reason", err.Error())
			continue
		}
		m := r.Meta()
		r.Close()
		if m.Entries == 0 || m.LargestSeq <= st.lastSeq {
			continue // nothing the tree lacks
		}
		lo := max(m.SmallestSeq, st.lastSeq+1)
		if firstSeq == 0 || lo < firstSeq || m.LargestSeq > lastSeq {
			var off int64
			what := "the tree it records"
			if st.cut != nil {
				off, what = st.cut.off, "its last edit is damaged, and the tree before it"
			}
			return nil, logkv.CorruptError(manifestName(st.manifestNum), off,
				"%s ends at sequence number %d, but table %s, which it does not name, holds writes up to %d that the WAL does not hold (it replays %d to %d): an edit naming the table was durable and is lost; restore the directory from a backup or a replica",
				what, st.lastSeq, n, m.LargestSeq, firstSeq, lastSeq)
		}
	}
	return kept, nil
}
