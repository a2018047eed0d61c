package bitcask

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
)

// Merge
//
// A merge rewrites the closed files whose dead ratio (dead bytes over record
// bytes, tracked exactly with a roaring bitmap of dead record offsets per
// file) has reached Options.MergeThreshold, keeping only their live records:
//
//  1. Pick the inputs, under the keydir lock (a moment).
//  2. Copy each input's live records, in file order, into new files named
//     NNNNNNNN.mdata (cut at MaxFileSize), checking liveness against the
//     dead bitmaps in chunks under the read lock. Writers go on meanwhile.
//     A tombstone is copied unless no file outside the inputs holds a record
//     older than it (then nothing is left for it to hide).
//  3. Sync the outputs and write their hint files.
//  4. Sync the active file: the records left out died because of newer
//     writes, which must not be lost in a crash while the old versions are
//     gone.
//  5. Commit: write the manifest MERGE-NNNNNNNN (tmp, sync, rename, sync
//     dir) naming outputs and inputs. Before this point a crash leaves .mdata
//     files that Open deletes; after it, Open finishes the merge (renames the
//     outputs, deletes the inputs). Either way nothing is lost and no record
//     is there twice.
//  6. Rename the outputs to .data, then switch the keydir in chunks under the
//     write lock: an entry still pointing at the input record moves to the
//     output; a record that died meanwhile is marked dead in the output.
//     Both copies hold the same bytes, so readers see no difference.
//  7. Drop the inputs from the file set. Each is deleted when the last
//     snapshot or iterator holding it lets go; when all are, so is the
//     manifest.
//
// Manifest format:
//
//	offset  size  field
//	0       4     magic "bcMG"
//	4       1     version, 1
//	5       3     zero
//	8       4     n: number of outputs, uint32 LE
//	12      4     m: number of inputs, uint32 LE
//	16      4n    output file ids, uint32 LE each
//	16+4n   4m    input file ids, uint32 LE each
//	end-4   4     CRC-32C of every byte before it

const (
	manifestMagic   = "bcMG"
	manifestVersion = 1
	mergeChunk      = 4096 // records checked or switched per lock hold
)

type manifest struct {
	name            string
	outputs, inputs []uint32
	remaining       int // inputs not yet deleted, under DB.fileMu
}

func encodeManifest(outputs, inputs []uint32) []byte {
	b := append([]byte(manifestMagic), manifestVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(outputs)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(inputs)))
	for _, id := range outputs {
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	for _, id := range inputs {
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	return binary.LittleEndian.AppendUint32(b, crc(b))
}

func decodeManifest(name string, b []byte) (*manifest, error) {
	if len(b) < 20 {
		return nil, logkv.CorruptError(name, 0, "manifest of %d bytes is too short", len(b))
	}
	body := b[:len(b)-4]
	if crc(body) != binary.LittleEndian.Uint32(b[len(body):]) {
		return nil, logkv.CorruptError(name, int64(len(body)), "manifest checksum mismatch")
	}
	if string(b[:4]) != manifestMagic || b[4] != manifestVersion {
		return nil, logkv.CorruptError(name, 0, "bad manifest magic or version")
	}
	n, m := binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint32(b[12:])
	if uint64(n)+uint64(m) != uint64(len(body)-16)/4 || (len(body)-16)%4 != 0 {
		return nil, logkv.CorruptError(name, 8, "manifest counts %d+%d do not match its size", n, m)
	}
	mf := &manifest{name: name}
	for i := 0; i < int(n+m); i++ {
		id := binary.LittleEndian.Uint32(body[16+4*i:])
		if i < int(n) {
			mf.outputs = append(mf.outputs, id)
		} else {
			mf.inputs = append(mf.inputs, id)
		}
	}
	return mf, nil
}

// MergeStats describes the merges a DB ran (see DB.MergeStats).
type MergeStats struct {
	Merges   uint64        // merges committed
	BytesIn  uint64        // bytes of input files read
	BytesOut uint64        // bytes of output files written
	Duration time.Duration // time spent in committed merges
}

// MergeStats returns the totals of the merges run since Open.
func (db *DB) MergeStats() MergeStats {
	return MergeStats{
		Merges:   db.stats.merges.Load(),
		BytesIn:  db.stats.mergeBytesIn.Load(),
		BytesOut: db.stats.mergeBytesOut.Load(),
		Duration: time.Duration(db.stats.mergeNanos.Load()),
	}
}

// Merge merges, now, the closed files whose dead ratio has reached
// Options.MergeThreshold (the background merger does the same after each
// rotation unless Options.DisableAutoMerge). It reports whether it merged
// anything. Reads and writes go on while it runs.
func (db *DB) Merge() (bool, error) {
	if db.closed.Load() {
		return false, logkv.ErrClosed
	}
	db.mergeMu.Lock()
	defer db.mergeMu.Unlock()
	return db.mergeLocked()
}

// errMergeAborted is returned when Close interrupts a merge.
var errMergeAborted = errors.New("bitcask: merge aborted by Close")

// mergeOut is one output file of a merge.
type mergeOut struct {
	id      uint32
	f       vfs.File
	size    int64
	buf     []byte
	es      []hintEntry
	moves   []move
	minSeq  uint64
	maxSeq  uint64
	records int
	salt    uint64
}

// move is a put record copied from an input to an output.
type move struct {
	key     string
	from    uint32
	fromOff uint32
	toOff   uint32
	size    int64
	tomb    bool
}

func (db *DB) mergeLocked() (bool, error) {
	db.kmu.Lock()
	var inputs []*dataFile
	db.deadMu.Lock()
	for _, df := range db.files {
		if !df.active && df.obsolete == nil && !df.corrupt && !df.merging && df.size > df.hdrSize &&
			df.deadRatio() >= db.opts.MergeThreshold {
			inputs = append(inputs, df)
		}
	}
	db.deadMu.Unlock()
	if len(inputs) == 0 {
		db.kmu.Unlock()
		return false, nil
	}
	slices.SortFunc(inputs, func(a, b *dataFile) int { return int(a.id) - int(b.id) })
	outsideMin := uint64(math.MaxUint64)
	var floor uint64
	for _, df := range db.files {
		if !slices.Contains(inputs, df) {
			outsideMin = min(outsideMin, df.minSeq)
		}
	}
	var bytesIn int64
	for _, df := range inputs {
		df.merging = true
		df.refs.Add(1)
		floor = max(floor, df.floor, df.maxSeq)
		bytesIn += df.size
	}
	db.kmu.Unlock()

	start := time.Now()
	committed := false
	var outs []*mergeOut
	defer func() {
		if !committed {
			for _, o := range outs {
				o.f.Close()
				db.fs.Remove(db.path(fileName(o.id, mdataSuffix)))
				db.fs.Remove(db.path(fileName(o.id, hintSuffix)))
			}
			db.stats.mergeAborts.Add(1)
		}
		db.kmu.Lock()
		for _, df := range inputs {
			df.merging = false
		}
		db.kmu.Unlock()
		for _, df := range inputs {
			db.unref(df)
		}
	}()

	var cur *mergeOut
	newOut := func() error {
		id := db.nextID.Add(1)
		f, err := db.fs.Create(db.path(fileName(id, mdataSuffix)))
		if err != nil {
			return fmt.Errorf("bitcask: merge: %w", err)
		}
		cur = &mergeOut{id: id, f: f, size: fileHeaderSize, minSeq: math.MaxUint64, salt: newSalt()}
		cur.buf = appendFileHeader(make([]byte, 0, 1<<20), originMerge, floor, cur.salt)
		outs = append(outs, cur)
		return nil
	}
	flush := func(o *mergeOut) error {
		if len(o.buf) == 0 {
			return nil
		}
		if _, err := o.f.Write(o.buf); err != nil {
			return fmt.Errorf("bitcask: merge: write: %w", err)
		}
		o.buf = o.buf[:0]
		return nil
	}

	var data []byte
	var arena keyArena
	type cand struct {
		off  int
		live bool
	}
	var cands []cand
	for _, in := range inputs {
		var err error
		if int64(cap(data)) < in.size {
			data = make([]byte, in.size)
		}
		data = data[:in.size]
		if n, rerr := in.f.ReadAt(data, 0); int64(n) != in.size {
			return false, fmt.Errorf("bitcask: merge: read %s: %w", in.path, rerr)
		}
		off := int(in.hdrSize)
		for off < len(data) {
			select {
			case <-db.quit:
				return false, errMergeAborted
			default:
			}
			// Decode a chunk, then check its liveness under one read lock.
			cands = cands[:0]
			for p := off; p < len(data) && len(cands) < mergeChunk; {
				r, why := decodeRecord(data[p:], in.salt)
				if why != "" {
					db.kmu.Lock()
					in.corrupt = true
					db.kmu.Unlock()
					return false, logkv.CorruptError(in.path, int64(p), "merge: %s", why)
				}
				cands = append(cands, cand{off: p})
				p += r.size()
			}
			db.deadMu.Lock()
			for i := range cands {
				cands[i].live = !in.dead.Contains(uint32(cands[i].off))
			}
			db.deadMu.Unlock()
			for _, c := range cands {
				r, _ := decodeRecord(data[c.off:], in.salt)
				off = c.off + r.size()
				tomb := r.flags&flagTombstone != 0
				if tomb {
					if r.seq < outsideMin {
						continue // nothing older is left outside for it to hide
					}
				} else if !c.live {
					continue
				}
				size := int64(r.size())
				if cur == nil || (cur.records > 0 && cur.size+size > db.opts.MaxFileSize) {
					if cur != nil {
						if err = flush(cur); err != nil {
							return false, err
						}
					}
					if err = newOut(); err != nil {
						return false, err
					}
				}
				key := arena.str(r.key)
				toOff := uint32(cur.size)
				// Re-framed: the output's salt is not the input's.
				cur.buf = appendRecord(cur.buf, cur.salt, r.synced, r.seq, r.flags&flagTombstone, r.key, r.value)
				cur.size += size
				cur.records++
				cur.minSeq, cur.maxSeq = min(cur.minSeq, r.seq), max(cur.maxSeq, r.seq)
				cur.es = append(cur.es, hintEntry{key: key, seq: r.seq, off: toOff, vlen: r.vlen, tomb: tomb})
				cur.moves = append(cur.moves, move{key: key, from: in.id, fromOff: uint32(c.off), toOff: toOff, size: size, tomb: tomb})
				if len(cur.buf) >= 1<<20 {
					if err = flush(cur); err != nil {
						return false, err
					}
				}
			}
		}
	}
	// Sync the outputs, write their hints.
	for _, o := range outs {
		if err := flush(o); err != nil {
			return false, err
		}
		if err := o.f.Sync(); err != nil {
			return false, fmt.Errorf("bitcask: merge: sync: %w", err)
		}
		sortHints(o.es)
		if err := db.writeHintEntries(o.id, o.size, o.es); err != nil {
			return false, err
		}
		o.es = nil
	}
	if err := db.hook("merge-before-commit"); err != nil {
		return false, err
	}
	select {
	case <-db.quit:
		return false, errMergeAborted
	default:
	}

	// The records the merge left out died because of newer writes, which
	// may still sit unsynced in the active file: make them durable first, or
	// a crash could take both the newer and the older version.
	db.wmu.Lock()
	pos := db.pos
	db.wmu.Unlock()
	if err := db.syncTo(pos); err != nil {
		return false, err
	}

	// Commit.
	var outIDs, inIDs []uint32
	for _, o := range outs {
		outIDs = append(outIDs, o.id)
	}
	for _, in := range inputs {
		inIDs = append(inIDs, in.id)
	}
	mname := mergePrefix + fmt.Sprintf("%0*d", fileIDDigits, db.nextID.Add(1))
	if err := db.writeFileAtomic(mname, encodeManifest(outIDs, inIDs)); err != nil {
		return false, err
	}
	committed = true
	m := &manifest{name: mname, outputs: outIDs, inputs: inIDs, remaining: len(inputs)}
	// From here on the merge is durable; a failure below leaves the rest to
	// the next Open (which finishes merges from their manifests).
	if err := db.hook("merge-after-commit"); err != nil {
		return true, err
	}
	var renameErr error
	for _, o := range outs {
		if err := db.fs.Rename(db.path(fileName(o.id, mdataSuffix)), db.path(fileName(o.id, dataSuffix))); err != nil && renameErr == nil {
			renameErr = fmt.Errorf("bitcask: merge: %w", err)
		}
	}
	if renameErr == nil {
		if err := db.fs.SyncDir(db.dir); err != nil {
			renameErr = fmt.Errorf("bitcask: merge: %w", err)
		}
	}

	// Switch the keydir, a chunk at a time.
	outFiles := make([]*dataFile, len(outs))
	db.kmu.Lock()
	for i, o := range outs {
		df := newDataFile(o.id, db.dir, o.f, fileHeader{origin: originMerge, floor: floor, salt: o.salt, size: fileHeaderSize})
		df.size = o.size
		df.flushed.Store(o.size)
		df.hasHint = true
		df.records = o.records
		df.minSeq, df.maxSeq = o.minSeq, o.maxSeq
		db.mapFile(df, o.size)
		db.files[o.id] = df
		outFiles[i] = df
	}
	db.kmu.Unlock()
	for i, o := range outs {
		df := outFiles[i]
		for j := 0; j < len(o.moves); j += mergeChunk {
			db.kmu.Lock()
			db.deadMu.Lock()
			for _, mv := range o.moves[j:min(j+mergeChunk, len(o.moves))] {
				if mv.tomb {
					continue // kept to hide older records; not in the keydir
				}
				if !db.tree.repoint(mv.key, mv.from, mv.fromOff, df.id, mv.toOff) {
					df.markDead(mv.toOff, mv.size)
				}
			}
			db.deadMu.Unlock()
			db.kmu.Unlock()
		}
		o.moves = nil
	}
	db.kmu.Lock()
	for _, in := range inputs {
		delete(db.files, in.id)
		in.obsolete = m
	}
	db.kmu.Unlock()
	db.fileMu.Lock()
	if db.zombies == nil {
		db.zombies = map[*dataFile]struct{}{}
	}
	for _, in := range inputs {
		db.zombies[in] = struct{}{}
	}
	db.fileMu.Unlock()
	for _, in := range inputs {
		db.unref(in) // the file set's reference; ours goes in the defer
	}
	var bytesOut int64
	for _, o := range outs {
		bytesOut += o.size
	}
	db.stats.merges.Add(1)
	db.stats.mergeBytesIn.Add(uint64(bytesIn))
	db.stats.mergeBytesOut.Add(uint64(bytesOut))
	db.stats.mergeNanos.Add(uint64(time.Since(start)))
	return true, renameErr
}
