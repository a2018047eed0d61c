package bitcask

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/vfs"
)

// Recovery
//
// Open lists the directory and first finishes or undoes merges: a MERGE-
// manifest (written after its outputs and their hints were synced) is the
// commit point, so with a manifest the outputs are renamed into place and the
// inputs deleted; without one the .mdata outputs are deleted. Then every data
// file is loaded from its hint when the hint is valid for the file's size, and
// scanned otherwise. The newest file written by appends may end in a torn
// tail: it is cut at the first bad record, or at the start of a batch whose
// last record is missing. Any other file is immutable and was synced whole, so
// a bad record there is corruption, not a crash: Open keeps going, marks the
// file corrupt (never merged), keeps a keydir entry for a record whose framing
// survived (so a Get of its key fails with ErrCorrupt naming file and offset)
// and skips to the next intact record where the framing did not.
//
// The sorted runs of all files are merged into the keydir: per key the record
// with the highest (seq, file, offset) wins; a winning tombstone drops the
// key; every loser is marked dead in its file's bitmap.

// scanResult is what a scan of one data file found.
type scanResult struct {
	entries []hintEntry
	valid   int64 // with torn tails allowed: where the good prefix ends
	corrupt bool  // a bad record, or a batch cut short, in an immutable file
}

// scanRecords parses the records of a whole data file held in b. With alias,
// the entries' keys point into b (for a hint written while b is alive);
// otherwise each key is its own string (for the keydir).
func scanRecords(b []byte, tornOK, alias bool) scanResult {
	var res scanResult
	res.entries = make([]hintEntry, 0, len(b)/64+1)
	var arena keyArena
	keyOf := func(k []byte) string {
		if alias {
			return unsafeString(k)
		}
		return arena.str(k)
	}
	off := fileHeaderSize
	batchStart, batchIdx := off, 0 // where the open batch starts, in b and in entries
	for off < len(b) {
		r, why := decodeRecord(b[off:])
		if why != "" {
			if tornOK {
				break
			}
			res.corrupt = true
			res.entries = res.entries[:batchIdx]
			if h, hwhy := decodeHeader(b[off:]); hwhy == "" && off+h.size() <= len(b) {
				// The framing survived: keep the key, pointing at the bad
				// record, so reading it reports the corruption.
				key := b[off+recordHeaderSize : off+recordHeaderSize+int(h.klen)]
				res.entries = append(res.entries, hintEntry{key: keyOf(key), seq: h.seq, off: uint32(off), vlen: h.vlen})
				off += h.size()
			} else {
				off = resync(b, off+1)
			}
			batchStart, batchIdx = off, len(res.entries)
			continue
		}
		res.entries = append(res.entries, hintEntry{
			key:  keyOf(r.key),
			seq:  r.seq,
			off:  uint32(off),
			vlen: r.vlen,
			tomb: r.flags&flagTombstone != 0,
		})
		off += r.size()
		if r.flags&flagMore == 0 {
			batchStart, batchIdx = off, len(res.entries)
		}
	}
	if len(res.entries) > batchIdx {
		// A batch without its last record: cut off a torn tail; in a file
		// closed whole it is damage.
		res.entries = res.entries[:batchIdx]
		res.corrupt = res.corrupt || !tornOK
	}
	res.valid = int64(batchStart)
	if !tornOK {
		res.valid = int64(len(b))
	}
	return res
}

// resync returns the offset of the next intact record at or after from, or
// len(b).
func resync(b []byte, from int) int {
	for p := from; p+recordHeaderSize <= len(b); p++ {
		if _, why := decodeRecord(b[p:]); why == "" {
			return p
		}
	}
	return len(b)
}

func readAll(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, st.Size())
	n, err := f.ReadAt(b, 0)
	if n == len(b) {
		return b, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

// readFileAt reads size bytes of f from offset 0.
func readFileAt(f vfs.File, size int64) ([]byte, error) {
	b := make([]byte, size)
	n, err := f.ReadAt(b, 0)
	if int64(n) == size {
		return b, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

type fileInfo struct {
	id     uint32
	f      vfs.File
	size   int64
	origin byte
	floor  uint64
	badHdr bool
}

func (db *DB) recover() error {
	names, err := db.fs.List(db.dir)
	if err != nil {
		return fmt.Errorf("bitcask: list %s: %w", db.dir, err)
	}
	data, hints, mdata := map[uint32]bool{}, map[uint32]bool{}, map[uint32]bool{}
	var manifests []string
	var maxID uint32
	changed := false
	remove := func(name string) error {
		changed = true
		if err := db.fs.Remove(db.path(name)); err != nil {
			return fmt.Errorf("bitcask: recover: %w", err)
		}
		return nil
	}
	for _, name := range names {
		// Ids are never reused, not even those of files merged away while a
		// manifest naming them may still come back after a crash: the
		// largest id seen in any name (manifests included) bounds them all.
		base := strings.TrimSuffix(strings.TrimPrefix(name, mergePrefix), tmpSuffix)
		if id, _, ok := parseFileName(base); ok {
			maxID = max(maxID, id)
		} else if id, err := strconv.ParseUint(base, 10, 32); err == nil && len(base) == fileIDDigits {
			maxID = max(maxID, uint32(id))
		}
		switch {
		case strings.HasSuffix(name, tmpSuffix):
			if err := remove(name); err != nil {
				return err
			}
			continue
		case strings.HasPrefix(name, mergePrefix):
			manifests = append(manifests, name)
			continue
		}
		id, suf, ok := parseFileName(name)
		if !ok {
			continue
		}
		switch suf {
		case dataSuffix:
			data[id] = true
		case hintSuffix:
			hints[id] = true
		case mdataSuffix:
			mdata[id] = true
		}
	}

	// Finish committed merges.
	for _, name := range manifests {
		b, err := readAll(db.fs, db.path(name))
		if err != nil {
			return fmt.Errorf("bitcask: read %s: %w", name, err)
		}
		m, err := decodeManifest(name, b)
		if err != nil {
			return err
		}
		for _, id := range m.outputs {
			if mdata[id] {
				if err := db.fs.Rename(db.path(fileName(id, mdataSuffix)), db.path(fileName(id, dataSuffix))); err != nil {
					return fmt.Errorf("bitcask: recover merge %s: %w", name, err)
				}
				delete(mdata, id)
				data[id] = true
				changed = true
			}
		}
		for _, id := range m.inputs {
			if data[id] {
				if err := remove(fileName(id, dataSuffix)); err != nil {
					return err
				}
				delete(data, id)
			}
			if hints[id] {
				if err := remove(fileName(id, hintSuffix)); err != nil {
					return err
				}
				delete(hints, id)
			}
		}
		if err := db.fs.SyncDir(db.dir); err != nil {
			return fmt.Errorf("bitcask: recover: %w", err)
		}
		if err := remove(name); err != nil {
			return err
		}
	}
	// Undo uncommitted merges; drop hints whose data file is gone.
	for id := range mdata {
		if err := remove(fileName(id, mdataSuffix)); err != nil {
			return err
		}
	}
	for id := range hints {
		if !data[id] {
			if err := remove(fileName(id, hintSuffix)); err != nil {
				return err
			}
			delete(hints, id)
		}
	}
	db.nextID.Store(maxID)

	// Open every data file and read its header.
	ids := make([]uint32, 0, len(data))
	for id := range data {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var infos []fileInfo
	var lastAppend uint32
	loaded := false
	defer func() {
		if !loaded { // close what closeFiles will not (files not yet in db.files)
			for _, fi := range infos {
				if db.files[fi.id] == nil {
					fi.f.Close()
				}
			}
		}
	}()
	hdr := make([]byte, fileHeaderSize)
	for _, id := range ids {
		path := db.path(fileName(id, dataSuffix))
		f, err := db.fs.Open(path)
		if err != nil {
			return fmt.Errorf("bitcask: open %s: %w", path, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("bitcask: stat %s: %w", path, err)
		}
		fi := fileInfo{id: id, f: f, size: st.Size()}
		if fi.size == fileHeaderSize {
			if _, err := f.ReadAt(hdr, 0); err == nil {
				if _, _, why := decodeFileHeader(hdr); why != "" {
					fi.size = 0 // a torn header: as if never written
				}
			}
		}
		if fi.size < fileHeaderSize {
			// Created, not yet (durably) written: a crash during rotation.
			f.Close()
			if err := remove(fileName(id, dataSuffix)); err != nil {
				return err
			}
			if hints[id] {
				if err := remove(fileName(id, hintSuffix)); err != nil {
					return err
				}
			}
			continue
		}
		if _, err := f.ReadAt(hdr, 0); err != nil {
			f.Close()
			return fmt.Errorf("bitcask: read %s: %w", path, err)
		}
		var why string
		fi.origin, fi.floor, why = decodeFileHeader(hdr)
		if why != "" {
			fi.badHdr, fi.origin = true, originMerge
		}
		if fi.origin == originAppend {
			lastAppend = id
		}
		infos = append(infos, fi)
	}
	if changed {
		if err := db.fs.SyncDir(db.dir); err != nil {
			return fmt.Errorf("bitcask: recover: %w", err)
		}
	}

	// Load every file's records, from its hint or by scanning, on as many
	// goroutines as there are CPUs (decoding and sorting dominate).
	type load struct {
		df      *dataFile
		es      []hintEntry
		tornOK  bool
		res     scanResult
		hintErr bool
		err     error
	}
	loads := make([]load, len(infos))
	for i := range infos {
		fi := &infos[i]
		df := newDataFile(fi.id, db.dir, fi.f, fi.origin, fi.floor)
		db.files[fi.id] = df
		loads[i] = load{df: df, tornOK: fi.origin == originAppend && fi.id == lastAppend && !fi.badHdr}
	}
	work := make(chan int, len(infos))
	for i := range infos {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(infos), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				fi, ld := &infos[i], &loads[i]
				if hints[fi.id] && !fi.badHdr {
					hname := fileName(fi.id, hintSuffix)
					if b, err := readAll(db.fs, db.path(hname)); err == nil {
						if size, hes, err := decodeHint(hname, b); err == nil && size == fi.size {
							ld.es, ld.df.hasHint = hes, true
							continue
						}
					}
					ld.hintErr = true
				}
				b, err := readFileAt(fi.f, fi.size)
				if err != nil {
					ld.err = fmt.Errorf("bitcask: read %s: %w", ld.df.path, err)
					continue
				}
				ld.res = scanRecords(b, ld.tornOK, false)
				ld.es = ld.res.entries
				sortHints(ld.es)
			}
		}()
	}
	wg.Wait()

	var runs []*run
	var lastSeq uint64
	for i := range infos {
		fi, ld := &infos[i], &loads[i]
		df := ld.df
		if ld.err != nil {
			return ld.err
		}
		lastSeq = max(lastSeq, fi.floor)
		if ld.hintErr {
			if err := remove(fileName(fi.id, hintSuffix)); err != nil {
				return err
			}
		}
		if df.hasHint {
			db.stats.openHintFiles.Add(1)
		} else {
			db.stats.openScanFiles.Add(1)
			df.corrupt = ld.res.corrupt || fi.badHdr
			if ld.tornOK && ld.res.valid < fi.size {
				if err := db.truncate(df.path, ld.res.valid); err != nil {
					return err
				}
				fi.size = ld.res.valid
			}
		}
		es := ld.es
		df.size = fi.size
		df.flushed.Store(fi.size)
		df.records = len(es)
		for j := range es {
			df.noteSeq(es[j].seq)
		}
		if df.records > 0 {
			lastSeq = max(lastSeq, df.maxSeq)
		}
		if len(es) > 0 {
			runs = append(runs, &run{df: df, es: es})
		}
	}
	db.tree = bulkTree(db.mergeRuns(runs))
	db.lastSeq.Store(lastSeq)
	loaded = true
	return nil
}

func (db *DB) truncate(path string, size int64) error {
	f, err := db.fs.OpenReadWrite(path)
	if err != nil {
		return fmt.Errorf("bitcask: cut torn tail of %s: %w", path, err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bitcask: cut torn tail of %s at %d: %w", path, size, err)
	}
	return nil
}

// run is one file's entries, sorted by key, during the merge into a keydir.
type run struct {
	df *dataFile
	es []hintEntry
	i  int
}

type runHeap []*run

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	a, b := &h[i].es[h[i].i], &h[j].es[h[j].i]
	if a.key != b.key {
		return a.key < b.key
	}
	return h[i].df.id < h[j].df.id
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*run)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeRuns merges the sorted runs into the keydir's sorted entries, marking
// every superseded record and every winning tombstone dead.
func (db *DB) mergeRuns(runs []*run) []entry {
	n := 0
	for _, r := range runs {
		n += len(r.es)
	}
	out := make([]entry, 0, n)
	// A winning tombstone is needed (not dead) while another file may hold
	// an older record of its key; the two smallest minSeqs answer that.
	min1, min2, min1ID := uint64(math.MaxUint64), uint64(math.MaxUint64), uint32(0)
	for _, df := range db.files {
		switch {
		case df.minSeq < min1:
			min1, min2, min1ID = df.minSeq, min1, df.id
		case df.minSeq < min2:
			min2 = df.minSeq
		}
	}
	h := runHeap(runs)
	heap.Init(&h)
	for h.Len() > 0 {
		key := h[0].es[h[0].i].key
		var best *hintEntry
		var bestFile *dataFile
		for h.Len() > 0 && h[0].es[h[0].i].key == key {
			r := h[0]
			for ; r.i < len(r.es) && r.es[r.i].key == key; r.i++ {
				e := &r.es[r.i]
				if best == nil || e.seq > best.seq || (e.seq == best.seq && (r.df.id > bestFile.id || (r.df.id == bestFile.id && e.off > best.off))) {
					if best != nil {
						bestFile.markDead(best.off, best.size())
					}
					best, bestFile = e, r.df
				} else {
					r.df.markDead(e.off, e.size())
				}
			}
			if r.i < len(r.es) {
				heap.Fix(&h, 0)
			} else {
				heap.Pop(&h)
			}
		}
		if best.tomb {
			others := min1
			if bestFile.id == min1ID {
				others = min2
			}
			if others >= best.seq {
				bestFile.markDead(best.off, best.size())
			}
			continue
		}
		out = append(out, entry{key: best.key, fid: bestFile.id, off: best.off, vlen: best.vlen})
	}
	return out
}

// writeHint writes the hint file of the closed (or, at Close, flushed)
// data file df: tmp file, sync, rename, sync dir.
func (db *DB) writeHint(df *dataFile) error {
	db.kmu.RLock()
	size := df.size
	db.kmu.RUnlock()
	b, err := readFileAt(df.f, size)
	if err != nil {
		return fmt.Errorf("bitcask: read %s for its hint: %w", df.path, err)
	}
	res := scanRecords(b, false, true)
	if res.corrupt {
		db.kmu.Lock()
		df.corrupt = true
		db.kmu.Unlock()
		return logkv.CorruptError(df.path, 0, "bad records found while writing the hint file; it is left to scans")
	}
	sortHints(res.entries)
	if err := db.writeHintEntries(df.id, size, res.entries); err != nil {
		return err
	}
	db.kmu.Lock()
	df.hasHint = true
	db.kmu.Unlock()
	return nil
}

func (db *DB) writeHintEntries(id uint32, size int64, es []hintEntry) error {
	name := fileName(id, hintSuffix)
	if err := db.writeFileAtomic(name, encodeHint(size, es)); err != nil {
		return err
	}
	db.stats.hintsWritten.Add(1)
	return nil
}

// writeFileAtomic writes name through a synced tmp file and a rename, and
// syncs the directory.
func (db *DB) writeFileAtomic(name string, b []byte) error {
	tmp := db.path(name + tmpSuffix)
	f, err := db.fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("bitcask: create %s: %w", tmp, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = db.fs.Rename(tmp, db.path(name))
	}
	if err == nil {
		err = db.fs.SyncDir(db.dir)
	}
	if err != nil {
		db.fs.Remove(tmp)
		return fmt.Errorf("bitcask: write %s: %w", name, err)
	}
	return nil
}

// writeMissingHints writes the hints of closed files that lack one (files
// rotated out since the last run, and files Open had to scan).
func (db *DB) writeMissingHints(force bool) {
	db.kmu.RLock()
	var todo []*dataFile
	for _, df := range db.files {
		if !df.active && !df.hasHint && !df.corrupt && df.obsolete == nil {
			df.refs.Add(1)
			todo = append(todo, df)
		}
	}
	db.kmu.RUnlock()
	for _, df := range todo {
		select {
		case <-db.quit:
			if force {
				_ = db.writeHint(df)
			}
		default:
			_ = db.writeHint(df) // failure leaves the file to be scanned at Open
		}
		db.unref(df)
	}
}
