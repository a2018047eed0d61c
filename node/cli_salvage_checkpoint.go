package node

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/wire"
)

// Salvage of a memory node's checkpoints
//
// A node whose engine keeps nothing on disk (memory) is restored from its
// checkpoint, data_dir/log/checkpoint (checkpoint.N for engine generation
// N), then the commit log after it. A checkpoint is replicate's resync
// stream written to a file (package wire): a Checkpoint frame (the
// Welcome: the snapshot's seq and epoch history), SnapshotChunk frames of
// prefix-compressed pairs, and a SnapshotEnd with the seq and key count.
//
// Salvage reads the live generation's checkpoint frame by frame and keeps
// every pair of every chunk that checks out, at the checkpoint's seq: a
// log record with a higher seq wins its key, as when the node replays its
// log over the checkpoint. Each chunk's keys are compressed against the
// previous chunk's last key, and frames have no markers to resynchronise
// on, so reading stops at the first damaged frame: the rest of the file is
// reported skipped with its offset and length. The keyspace's meta rows
// sort last, so damage anywhere loses them: restoreMeta puts back the ones
// the salvaged keys prove, and says so. Checkpoints of other
// generations (left by a resync that did not finish) and temporary files
// are named, not read.

// checkpoints salvages the checkpoint of the live engine generation (its
// directory engDir, engine or engine.N) among data_dir/log/checkpoint*.
func (s *salvage) checkpoints(from, engDir string) error {
	live := "checkpoint"
	if g, ok := strings.CutPrefix(filepath.Base(engDir), engineSubdir+"."); ok {
		if _, err := strconv.ParseUint(g, 10, 64); err == nil {
			live = "checkpoint." + g
		}
	}
	cps, _ := filepath.Glob(filepath.Join(from, logSubdir, "checkpoint*"))
	for _, cp := range cps {
		if filepath.Base(cp) != live {
			s.skipped = append(s.skipped, fmt.Sprintf("%s: not the live engine generation's checkpoint (%s); not read", cp, live))
			continue
		}
		if err := s.checkpoint(cp); err != nil {
			return err
		}
	}
	return nil
}

// checkpoint salvages one checkpoint file (see above).
func (s *salvage) checkpoint(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	r := wire.NewReader(bufio.NewReader(f))
	defer r.Close()
	keys := uint64(0)
	stop := func(at int64, format string, args ...any) error {
		err := s.skip(logkv.Skipped{Path: path, Off: at, Len: st.Size() - at,
			Why: fmt.Sprintf(format, args...) + fmt.Sprintf(" (after %d keys of the checkpoint)", keys)})
		s.restoreMeta(path)
		return err
	}
	at := r.Read()
	fr, err := r.ReadFrame()
	if err != nil {
		return stop(at, "checkpoint header: %v", err)
	}
	if fr.Type != wire.TypeCheckpoint {
		return stop(at, "starts with a %s frame, not a checkpoint", fr.Type)
	}
	h, err := wire.DecodeWelcome(fr.Payload)
	if err != nil {
		return stop(at, "checkpoint header: %v", err)
	}
	for _, e := range h.History {
		s.epoch = max(s.epoch, e.Epoch)
	}
	var prev []byte
	type pair struct{ k, v []byte }
	var pairs []pair
	for {
		at = r.Read()
		fr, err := r.ReadFrame()
		if err != nil {
			return stop(at, "%v", err)
		}
		switch fr.Type {
		case wire.TypeSnapshotChunk:
			// A chunk that fails halfway adds none of its pairs: the
			// ones before the damage decoded, but nothing vouches for
			// them but the frame, which the damage is in.
			pairs = pairs[:0]
			last, err := wire.DecodeChunk(fr.Payload, prev, func(k, v []byte) error {
				pairs = append(pairs, pair{bytes.Clone(k), bytes.Clone(v)})
				return nil
			})
			if err != nil {
				return stop(at, "chunk: %v", err)
			}
			for _, p := range pairs {
				s.put(h.Seq, p.k, p.v, false)
			}
			keys += uint64(len(pairs))
			s.kept["checkpoint keys"] += len(pairs)
			prev = append(prev[:0], last...)
		case wire.TypeSnapshotEnd:
			e, err := wire.DecodeSnapshotEnd(fr.Payload)
			switch {
			case err != nil:
				return stop(at, "snapshot end: %v", err)
			case e.Seq != h.Seq || e.Keys != keys:
				return stop(at, "snapshot end says seq %d and %d keys; the checkpoint is at seq %d and held %d", e.Seq, e.Keys, h.Seq, keys)
			}
			return nil
		default:
			return stop(at, "a %s frame inside the checkpoint", fr.Type)
		}
	}
}

// restoreMeta puts back the keyspace's meta rows (keyspace.go) that the
// damaged part of a checkpoint took with it. They sort last (0xFF), so they
// sit in the last chunk, and a damaged last chunk lost the format row: a
// node refused the result as "data from before keyspace format 1". The
// commit log usually brings the format row back (a leader writes it again
// as the first record of each epoch); when it did not:
//
//   - The format row is restored only if every salvaged data key proves
//     format 2: such a key carries its client key's hash slot, which a
//     format-1 key matches by chance once in 16384. Otherwise nothing is
//     restored, and the report says so.
//   - A database whose generation row is missing gets the newest
//     generation its keys carry: keys of older generations were flushed
//     (FLUSHDB), and stay hidden as the node sweeps them. Had the database
//     been flushed after its last write, that flush is lost with the row:
//     the report names the database, so it can be flushed again.
//
// Each restoration is reported with the checkpoint's name.
func (s *salvage) restoreMeta(path string) {
	if v, ok := s.keys[string(metaFormatKey)]; ok && !v.del {
		return
	}
	newest := map[int]uint32{}
	for k, v := range s.keys {
		if v.del || len(k) == 0 || k[0] >= dataEnd {
			continue
		}
		db, gen, key, ok := decodeDataKey([]byte(k))
		if !ok || binary.BigEndian.Uint16([]byte(k[len(k)-len(key)-slotLen:])) != keySlot(key) {
			s.skipped = append(s.skipped, fmt.Sprintf("%s: the keyspace's format row was in the damaged part, and data key %q is not keyspace format %d: the format row is not restored, and a node will refuse the result (salvage with the kvnode that wrote the data)", path, k, keyspaceFormat))
			return
		}
		newest[db] = max(newest[db], gen)
	}
	s.put(0, metaFormatKey, []byte{keyspaceFormat}, false)
	s.kept["restored meta rows"]++
	s.skipped = append(s.skipped, fmt.Sprintf("%s: the keyspace's format row was in the damaged part: restored as format %d, which every salvaged data key carries", path, keyspaceFormat))
	for _, db := range slices.Sorted(maps.Keys(newest)) {
		gen := newest[db]
		if v, ok := s.keys[string(metaGenKey(db))]; gen == 0 || (ok && !v.del) {
			continue
		}
		s.put(0, metaGenKey(db), binary.BigEndian.AppendUint32(nil, gen), false)
		s.kept["restored meta rows"]++
		s.skipped = append(s.skipped, fmt.Sprintf("%s: database %d's generation row was in the damaged part: restored as %d, the newest its keys carry (if database %d was flushed after its last write, FLUSHDB it again)", path, db, gen, db))
	}
}
