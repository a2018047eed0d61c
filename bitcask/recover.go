package bitcask

import (
	"bytes"
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
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
)

// Recovery
//
// Open lists the directory and first finishes or undoes merges: a MERGE-
// manifest (written after its outputs and their hints were synced) is the
// commit point, so with a manifest the outputs are renamed into place and the
// inputs deleted; without one the .mdata outputs are deleted. Then it reads
// every data file's header: a file in another format fails Open (ErrFormat);
// a file without a complete header is removed if it is the newest append file
// and has no hint (a crash during its creation: headers are synced before any
// record), and is corruption otherwise.
//
// Each data file is then loaded from its hint when it has one. A hint that
// fails its own checks is set aside (logged; the worker writes a new one) and
// the data file is read whole instead. A hint that checks out but records a
// size other than the data file's is corruption: hints are written after the
// file's last sync, so the data file lost (or gained) bytes since.
//
// Only the newest append file without a hint can end in a torn tail: every
// other file was synced whole before anything newer was written, so any
// damage in it is an error wrapping logkv.ErrCorrupt naming file and offset.
// In the newest one a record that fails its checks at offset X is a torn tail
// unless an intact record after it carries a synced field above X: then X was
// synced, acknowledged, and Open fails with ErrCorrupt. A torn tail is cut at
// the start of the batch it falls in, logged to Options.Logger with file,
// offset and bytes removed, and the file synced (cut or not) before Open goes
// on, so that what the keydir now holds is durable before a newer file exists.
//
// What recovery cannot see: the records of the last group commit before a
// crash are vouched for by no later record, so damage to them (which a power
// loss cannot cause, being synced; failing media can) is cut as a torn tail,
// logged; and a newest append file cut short at a record boundary after a
// crash looks like one whose later writes never happened. After a clean Close
// the file's hint records its size, and neither goes unnoticed.
//
// The sorted runs of all files are merged into the keydir: per key the record
// with the highest (seq, file, offset) wins; a winning tombstone drops the
// key; every loser is marked dead in its file's bitmap. Values are not read:
// damage to a value in a file loaded from its hint is found by the read that
// checks the record's checksum (ErrCorrupt naming file and offset).

// scanResult is what a scan of one data file found.
type scanResult struct {
	entries []hintEntry
	valid   int64  // where the file's good content ends: its size, or where a torn tail starts
	torn    string // why the bytes from valid on are a torn tail; "" if there is none
}

// scanFile parses the records of a whole data file held in b, whose header
// the caller checked; path names it in errors. tornOK says the file is the
// newest append file and was not closed cleanly (it has no hint), so its tail
// may be torn: damage there that no intact later record says was synced ends
// the scan, and the result says where and why. Any other damage is an error
// wrapping logkv.ErrCorrupt that names the file and offset. With alias, the
// entries' keys point into b (for a hint written while b is alive);
// otherwise each key is its own string (for the keydir).
func scanFile(path string, b []byte, tornOK, alias bool) (scanResult, error) {
	res := scanResult{entries: make([]hintEntry, 0, len(b)/64+1), valid: int64(len(b))}
	arena := keyArena{limit: len(b)}
	keyOf := func(k []byte) string {
		if alias {
			return unsafeString(k)
		}
		return arena.str(k)
	}
	h, why, err := decodeFileHeader(path, b) // checked by the caller: this finds the salt
	if err != nil {
		return res, err
	}
	if why != "" {
		return res, logkv.CorruptError(path, 0, "bad file header: %s", why)
	}
	rd := record.NewReader(bytes.NewReader(b), path, int64(len(b)), maxRecordPayload)
	if _, err := rd.Next(); err != nil { // the header frame, unsalted
		return res, logkv.CorruptError(path, 0, "bad file header: %v", err)
	}
	rd.SetSalt(h.salt)
	batchStart, batchIdx := h.size, 0 // where the open batch starts, in b and in entries
	var prevSeq uint64                // the seq of the last record read
	inBatch := false
	for {
		off := rd.Offset()
		_, err := rd.Next()
		if err == io.EOF {
			break
		}
		var r dataRecord
		why := ""
		switch {
		case errors.Is(err, record.ErrTornTail) || errors.Is(err, logkv.ErrCorrupt):
			why = "bad record frame"
			if errors.Is(err, record.ErrTornTail) {
				why = "incomplete or damaged record at the end of the file"
			}
		case err != nil:
			return res, err
		default:
			r, why = decodePayload(b[off+record.HeaderSize : rd.Offset()])
			switch {
			case why != "":
			case inBatch && r.seq != prevSeq:
				why = "record of another batch before its batch's last record"
			case tornOK && (r.seq < prevSeq || r.synced > uint64(off)):
				// An intact frame that cannot be this file's next record:
				// stale bytes a torn write exposed.
				why = "record out of place"
			}
		}
		if why != "" {
			if !tornOK {
				return res, logkv.CorruptError(path, off, "%s, in a file that was synced whole when it was closed", why)
			}
			if synced, at := laterSynced(b, off, prevSeq, h.salt); synced > off {
				return res, logkv.CorruptError(path, off, "%s, in bytes that were synced: the intact record at offset %d says the first %d were", why, at, synced)
			}
			res.entries = res.entries[:batchIdx]
			res.valid, res.torn = batchStart, why
			return res, nil
		}
		res.entries = append(res.entries, hintEntry{
			key:  keyOf(r.key),
			seq:  r.seq,
			off:  uint32(off),
			vlen: r.vlen,
			tomb: r.flags&flagTombstone != 0,
		})
		prevSeq = r.seq
		inBatch = r.flags&flagMore != 0
		if !inBatch {
			batchStart, batchIdx = rd.Offset(), len(res.entries)
		}
	}
	if inBatch {
		// A batch without its last record: a torn tail if the file may have
		// one (nothing after it can vouch for it), damage otherwise.
		if !tornOK {
			return res, logkv.CorruptError(path, batchStart, "batch without its last record at the end of a file that was synced whole when it was closed")
		}
		res.entries = res.entries[:batchIdx]
		res.valid, res.torn = batchStart, "batch without its last record at the end of the file"
	}
	return res, nil
}

// laterSynced returns the largest synced field of the intact records that
// start after offset bad in b, records framed with salt, and where the first
// record carrying it is, checking every offset (recovery only) in linear
// time (record.Finder): a value above bad proves the damage at bad lies in
// bytes that were synced. Frames that cannot be later records of this file
// are skipped: a synced field past their own offset, or a seq before prev
// (the seq of the last record before the damage).
func laterSynced(b []byte, bad int64, prev, salt uint64) (synced, at int64) {
	record.NewFinder(b, maxRecordPayload, salt).Each(int(bad)+1, func(off int, p []byte) bool {
		r, why := decodePayload(p)
		if why != "" || r.synced > uint64(off) || r.seq < prev {
			return false
		}
		if int64(r.synced) > synced {
			synced, at = int64(r.synced), int64(off)
		}
		return true
	})
	return synced, at
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
	hdr    fileHeader
	torn   bool // no complete header: maybe a creation a crash cut short
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
		infos = append(infos, fi)
		hdr := make([]byte, min(fi.size, fileHeaderSize))
		if n, err := f.ReadAt(hdr, 0); n < len(hdr) {
			return fmt.Errorf("bitcask: read %s: %w", path, err)
		}
		h, why, err := decodeFileHeader(path, hdr)
		switch {
		case err != nil:
			return err
		case why != "" && fi.size <= fileHeaderSize && !hints[id]:
			// The header is synced before any record is written, so this
			// may be a creation a crash cut short (decided below).
			infos[len(infos)-1].torn = true
		case why != "":
			return logkv.CorruptError(path, 0, "%s", why)
		default:
			infos[len(infos)-1].origin, infos[len(infos)-1].floor, infos[len(infos)-1].hdr = h.origin, h.floor, h
			if h.origin == originAppend {
				lastAppend = id
			}
		}
	}
	// A file without a complete header is the remains of a crash during its
	// creation only if it would have been the newest append file: the next
	// rotation or Open creates a file only after the last one is whole.
	kept := infos[:0]
	for _, fi := range infos {
		if !fi.torn {
			kept = append(kept, fi)
			continue
		}
		path := db.path(fileName(fi.id, dataSuffix))
		if fi.id < lastAppend {
			return logkv.CorruptError(path, 0, "bad file header in a file of %d bytes, older than the newest data file", fi.size)
		}
		db.opts.Logger.Warn("bitcask: removing a data file whose creation a crash cut short",
			"file", path, "size", fi.size)
		fi.f.Close()
		if err := remove(fileName(fi.id, dataSuffix)); err != nil {
			return err
		}
	}
	infos = kept
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
		badHint error // the hint failed its checks; the file was scanned
		err     error
	}
	loads := make([]load, len(infos))
	for i := range infos {
		fi := &infos[i]
		df := newDataFile(fi.id, db.dir, fi.f, fi.hdr)
		db.files[fi.id] = df
		// A file with a hint was closed whole (the hint is written after
		// the file's last sync): only the newest append file without one
		// can end in a torn tail.
		loads[i] = load{df: df, tornOK: fi.origin == originAppend && fi.id == lastAppend && !hints[fi.id]}
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
				if hints[fi.id] {
					es, err := db.loadHint(ld.df.path, fi)
					if err == nil {
						ld.es, ld.df.hasHint = es, true
						continue
					}
					if !errors.Is(err, errBadHint) {
						ld.err = err
						continue
					}
					ld.badHint = err
				}
				b, err := readFileAt(fi.f, fi.size)
				if err != nil {
					ld.err = fmt.Errorf("bitcask: read %s: %w", ld.df.path, err)
					continue
				}
				ld.res, ld.err = scanFile(ld.df.path, b, ld.tornOK, false)
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
		if ld.badHint != nil {
			// The data file checked out whole; the worker writes a new hint.
			db.opts.Logger.Warn("bitcask: ignoring a damaged hint file; the data file was read instead",
				"file", db.path(fileName(fi.id, hintSuffix)), "err", ld.badHint)
			if err := remove(fileName(fi.id, hintSuffix)); err != nil {
				return err
			}
		}
		if df.hasHint {
			db.stats.openHintFiles.Add(1)
		} else {
			db.stats.openScanFiles.Add(1)
		}
		if ld.tornOK {
			if err := db.endTail(df.path, fi.size, ld.res); err != nil {
				return err
			}
			db.stats.openTornBytes.Add(uint64(fi.size - ld.res.valid))
			fi.size = ld.res.valid
		}
		es := ld.es
		df.size = fi.size
		df.syncedSize = fi.size
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

// errBadHint marks a hint file that failed its own checks (checksum,
// format): the data file it describes can be read instead.
var errBadHint = errors.New("bitcask: bad hint file")

// loadHint reads and checks the hint of data file path. A hint that fails its
// own checks returns an error wrapping errBadHint; one that checks out but
// records another size than the data file's is corruption of the data file:
// the hint is written after the file's last sync, so bytes were lost (or
// added) since, and no scan of the data file alone could tell how many.
func (db *DB) loadHint(path string, fi *fileInfo) ([]hintEntry, error) {
	hname := fileName(fi.id, hintSuffix)
	b, err := readAll(db.fs, db.path(hname))
	if err != nil {
		return nil, fmt.Errorf("bitcask: read %s: %w", db.path(hname), err)
	}
	size, es, err := decodeHint(db.path(hname), b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadHint, err)
	}
	if size != fi.size {
		return nil, logkv.CorruptError(path, min(size, fi.size),
			"the data file is %d bytes but its hint file %s recorded %d when the file was closed: "+
				"the data file was cut or extended since; restore it from a backup or a replica", fi.size, hname, size)
	}
	return es, nil
}

// endTail finishes the scan of the newest append file after a crash: it cuts
// the torn tail res found, if any, logging what it removes, and syncs the
// file either way. The sync matters even when nothing is cut: records that
// reached the OS but not the disk before the crash are now in the keydir, and
// once the next active file exists this one is no longer the newest, so a
// power loss tearing them then would read as corruption.
func (db *DB) endTail(path string, size int64, res scanResult) error {
	f, err := db.fs.OpenReadWrite(path)
	if err != nil {
		return fmt.Errorf("bitcask: recover %s: %w", path, err)
	}
	if res.valid < size {
		db.opts.Logger.Warn("bitcask: cutting a torn tail (bytes written but never synced before a crash)",
			"file", path, "offset", res.valid, "bytes", size-res.valid, "reason", res.torn)
		err = f.Truncate(res.valid)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bitcask: recover %s: cut torn tail at %d: %w", path, res.valid, err)
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
	res, err := scanFile(df.path, b, false, true)
	if err != nil {
		db.kmu.Lock()
		df.corrupt = true
		db.kmu.Unlock()
		return fmt.Errorf("%w (found writing the hint file; the file is left unmerged)", err)
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
