package lsm

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/logkv/logkv/vfs"
)

// manifestWriter appends version edits to the live manifest.
type manifestWriter struct {
	f    vfs.File
	num  uint64
	size int64
	buf  []byte
}

// add appends e and syncs: when it returns, the edit survives a crash.
func (m *manifestWriter) add(e *manifest.Edit) error {
	m.buf = record.Append(m.buf[:0], e.Encode(nil))
	if _, err := m.f.Write(m.buf); err != nil {
		return fmt.Errorf("lsm: append to %s: %w", manifestName(m.num), err)
	}
	if err := m.f.Sync(); err != nil {
		return fmt.Errorf("lsm: sync %s: %w", manifestName(m.num), err)
	}
	m.size += int64(len(m.buf))
	return nil
}

// createManifest writes a new manifest numbered num whose first edit is
// snap, syncs it, and makes CURRENT name it (write a temporary file, sync,
// rename over CURRENT, sync the directory). A crash at any point leaves
// CURRENT naming either the old manifest or the new, complete one.
//
// mid, if not nil, runs between the two (a test hook).
func createManifest(fs vfs.FS, dir string, num uint64, snap *manifest.Edit, mid func()) (*manifestWriter, error) {
	name := manifestName(num)
	f, err := fs.Create(joinPath(dir, name))
	if err != nil {
		return nil, fmt.Errorf("lsm: create %s: %w", name, err)
	}
	m := &manifestWriter{f: f, num: num}
	if err := m.add(snap); err != nil {
		f.Close()
		return nil, err
	}
	if mid != nil {
		mid()
	}
	if err := setCurrent(fs, dir, name); err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

func setCurrent(fs vfs.FS, dir, name string) error {
	tmp := joinPath(dir, currentName+".tmp")
	f, err := fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("lsm: create %s: %w", tmp, err)
	}
	if _, err := f.Write([]byte(name + "\n")); err != nil {
		f.Close()
		return fmt.Errorf("lsm: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("lsm: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("lsm: close %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, joinPath(dir, currentName)); err != nil {
		return fmt.Errorf("lsm: rename %s: %w", tmp, err)
	}
	if err := fs.SyncDir(dir); err != nil {
		return fmt.Errorf("lsm: sync directory %s: %w", dir, err)
	}
	return nil
}

// recoveredState is what the manifest says about the tree.
type recoveredState struct {
	v           *manifest.Version
	manifestNum uint64
	logNum      uint64
	nextFileNum uint64
	lastSeq     uint64
	cut         *tailCut // the manifest's torn last edit, if any
}

// readCurrent returns the manifest number CURRENT names, or ok=false if the
// directory has no CURRENT (a new DB).
func readCurrent(fs vfs.FS, dir string) (uint64, bool, error) {
	f, err := fs.Open(joinPath(dir, currentName))
	if err != nil {
		if errors.Is(err, errNotExist) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("lsm: open CURRENT: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return 0, false, fmt.Errorf("lsm: read CURRENT: %w", err)
	}
	s := string(data)
	if !strings.HasSuffix(s, "\n") {
		return 0, false, logkv.CorruptError(currentName, 0, "CURRENT does not end in a newline")
	}
	kind, num := parseName(strings.TrimSuffix(s, "\n"))
	if kind != kindManifest {
		return 0, false, logkv.CorruptError(currentName, 0, "CURRENT names %q, not a manifest", strings.TrimSuffix(s, "\n"))
	}
	return num, true, nil
}

// replayManifest applies every edit of manifest num. A last edit that
// fails its checks, with nothing valid after it, may be an edit whose sync
// never returned: it is left out and reported in st.cut, for recovery to
// check against the files on disk (recovery.go) before it believes it.
// Corruption before the tail is an error.
func replayManifest(fs vfs.FS, dir string, num uint64) (*recoveredState, error) {
	name := manifestName(num)
	f, err := fs.Open(joinPath(dir, name))
	if errors.Is(err, errNotExist) {
		return nil, logkv.CorruptError(currentName, 0, "CURRENT names %s, which does not exist: restore the directory from a backup or a replica", name)
	}
	if err != nil {
		return nil, fmt.Errorf("lsm: open %s named by CURRENT: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("lsm: stat %s: %w", name, err)
	}
	st := &recoveredState{v: &manifest.Version{}, manifestNum: num}
	r := record.NewReader(f, name, fi.Size(), manifest.MaxEditSize)
	for i := 0; ; i++ {
		off := r.Offset()
		payload, err := r.Next()
		if err == io.EOF || errors.Is(err, record.ErrTornTail) {
			if i == 0 {
				return nil, logkv.CorruptError(name, 0, "manifest holds no complete edit")
			}
			if err != io.EOF {
				st.cut = &tailCut{name: name, off: off, size: fi.Size(), why: err}
			}
			return st, nil
		}
		if err != nil {
			return nil, err
		}
		e, err := manifest.Decode(payload, name, off+record.HeaderSize)
		if err != nil {
			return nil, err
		}
		nv, err := st.v.Apply(e)
		if err != nil {
			return nil, logkv.CorruptError(name, off, "%v", err)
		}
		st.v = nv
		if e.LogNum != 0 {
			st.logNum = e.LogNum
		}
		if e.NextFileNum != 0 {
			st.nextFileNum = e.NextFileNum
		}
		if e.LastSeq > st.lastSeq {
			st.lastSeq = e.LastSeq
		}
	}
}

// readState is what a read needs: the memtables and the version of the
// tables, as of one moment, pinned by a reference count so flushes and
// compactions cannot delete files under it.
type readState struct {
	d    *DB
	refs atomic.Int32
	mem  *memTable
	imm  []*memTable // oldest first
	v    *manifest.Version
}

func (rs *readState) unref() {
	if rs.refs.Add(-1) == 0 {
		rs.d.unrefVersion(rs.v)
	}
}

// tryRef takes a reference to rs unless its last one is gone (it was
// replaced and released: its version may be unpinned already).
func (rs *readState) tryRef() bool {
	for {
		n := rs.refs.Load()
		if n <= 0 {
			return false
		}
		if rs.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// loadReadState returns the current read state with a reference. It takes
// no lock: every Get calls it, and a read lock's two atomic operations on
// one shared word made concurrent readers contend for its cache line. A
// state replaced and released between the load and the reference is
// skipped for the newer one, which holds everything the older did.
func (d *DB) loadReadState() *readState {
	for {
		if rs := d.rs.Load(); rs.tryRef() {
			return rs
		}
	}
}

// updateReadStateLocked publishes a new read state from d.mem, d.imm and
// d.current. The caller holds d.mu.
func (d *DB) updateReadStateLocked() {
	rs := &readState{d: d, mem: d.mem, imm: append([]*memTable(nil), d.imm...), v: d.current}
	rs.refs.Store(1)
	d.refVersion(rs.v)
	old := d.rs.Swap(rs)
	d.l0Count.Store(int64(len(rs.v.Levels[0])))
	if old != nil {
		// Dropping the old state's reference cannot free its version's files
		// while d.mu is held by us: d.current holds the new version, and the
		// files of the old one that the new one lacks are deleted by
		// unrefVersion, which takes only fileMu.
		old.unref()
	}
}

// refVersion takes a reference to v; the first one also references v's
// files.
func (d *DB) refVersion(v *manifest.Version) {
	d.fileMu.Lock()
	v.Ref()
	d.fileMu.Unlock()
}

// installVersionLocked makes v the current version. The caller holds d.mu.
func (d *DB) installVersionLocked(v *manifest.Version) {
	d.fileMu.Lock()
	v.Ref()
	v.Files(func(_ int, f *manifest.FileMeta) { f.Refs++ })
	d.fileMu.Unlock()
	old := d.current
	d.current = v
	if old != nil {
		d.unrefVersion(old)
	}
}

// unrefVersion drops a reference to v. When the last goes, v's files lose a
// reference each, and files no live version holds are deleted.
func (d *DB) unrefVersion(v *manifest.Version) {
	d.fileMu.Lock()
	if !v.Unref() {
		d.fileMu.Unlock()
		return
	}
	var dead []uint64
	v.Files(func(_ int, f *manifest.FileMeta) {
		f.Refs--
		if f.Refs == 0 {
			dead = append(dead, f.Num)
		}
	})
	d.fileMu.Unlock()
	for _, num := range dead {
		d.deleteTable(num)
	}
}

// deleteTable removes an obsolete table file.
func (d *DB) deleteTable(num uint64) {
	d.tc.evict(num)
	if d.noDelete.Load() {
		return
	}
	// A failed removal leaves garbage that the next Open deletes.
	_ = d.fs.Remove(joinPath(d.dir, tableName(num)))
}
