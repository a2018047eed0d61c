package replicate

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/commitlog"
	"github.com/logkv/logkv/replicate/wire"
)

// chunkBytes is the target size of a snapshot chunk before compression.
const chunkBytes = 1 << 20

// loadBatchBytes is the size of the batches a snapshot is loaded in.
const loadBatchBytes = 8 << 20

// writeSnapshot writes snap's pairs as SnapshotChunk frames, then a
// SnapshotEnd, to w.
func writeSnapshot(w *wire.Writer, snap logkv.Snapshot) (keys uint64, err error) {
	it, err := snap.NewIter(nil)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var ce wire.ChunkEncoder
	var buf []byte
	flush := func() error {
		if ce.Len() == 0 {
			return nil
		}
		buf = ce.Payload(buf)
		ce.Reset()
		return w.WriteFrame(wire.TypeSnapshotChunk, buf)
	}
	for k, v := range logkv.All(it) {
		ce.Add(k, v)
		keys++
		if ce.Size() >= chunkBytes {
			if err := flush(); err != nil {
				return keys, err
			}
		}
	}
	if err := it.Error(); err != nil {
		return keys, err
	}
	if err := flush(); err != nil {
		return keys, err
	}
	return keys, w.WriteFrame(wire.TypeSnapshotEnd, wire.AppendSnapshotEnd(nil, wire.SnapshotEnd{Seq: snap.Seq(), Keys: keys}))
}

// loader fills an empty engine from snapshot chunks so that it ends at seq
// S. Batches before the last are applied with engine-assigned seqs (1, 2,
// ...); the last is applied at S. One batch is always held back so that the
// last one is never empty.
type loader struct {
	eng     logkv.Engine
	seq     uint64
	cur     *logkv.Batch
	held    *logkv.Batch
	applied uint64 // batches applied so far
	prev    []byte
	keys    uint64
}

func newLoader(eng logkv.Engine, seq uint64) *loader {
	return &loader{eng: eng, seq: seq, cur: new(logkv.Batch)}
}

func (l *loader) chunk(payload []byte) error {
	last, err := wire.DecodeChunk(payload, l.prev, func(k, v []byte) error {
		l.cur.Set(k, v)
		l.keys++
		// Auto-assigned seqs must stay below S: past that, batches grow.
		if l.cur.Size() >= loadBatchBytes && l.applied+2 < l.seq {
			if l.held != nil {
				if err := l.eng.Apply(l.held, nil); err != nil {
					return err
				}
				l.applied++
				l.held.Reset()
			} else {
				l.held = new(logkv.Batch)
			}
			l.held, l.cur = l.cur, l.held
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.prev = append(l.prev[:0], last...)
	return nil
}

func (l *loader) end(e wire.SnapshotEnd) error {
	if e.Seq != l.seq || e.Keys != l.keys {
		return fmt.Errorf("%w: snapshot ends at seq %d with %d keys, expected seq %d and %d keys received", wire.ErrProtocol, e.Seq, e.Keys, l.seq, l.keys)
	}
	if l.seq == 0 {
		if l.keys != 0 {
			return fmt.Errorf("%w: snapshot at seq 0 holds %d keys", wire.ErrProtocol, l.keys)
		}
		return nil
	}
	final := l.cur
	if l.held != nil {
		if final.Empty() {
			final = l.held
		} else {
			if err := l.eng.Apply(l.held, nil); err != nil {
				return err
			}
		}
	}
	if final.Empty() {
		// An empty snapshot at a non-zero seq: the engine must still end at
		// that seq, and deleting a key of an empty engine changes nothing.
		final.Delete([]byte{0})
	}
	return l.eng.Apply(final, &logkv.WriteOptions{Seq: l.seq})
}

// readSnapshot loads the chunks that follow from r into eng, until the
// SnapshotEnd.
func readSnapshot(r *wire.Reader, eng logkv.Engine, seq uint64) error {
	l := newLoader(eng, seq)
	for {
		f, err := r.ReadFrame()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		switch f.Type {
		case wire.TypeSnapshotChunk:
			if err := l.chunk(f.Payload); err != nil {
				return err
			}
		case wire.TypeSnapshotEnd:
			e, err := wire.DecodeSnapshotEnd(f.Payload)
			if err != nil {
				return err
			}
			return l.end(e)
		default:
			return fmt.Errorf("%w: %s frame inside a snapshot", wire.ErrProtocol, f.Type)
		}
	}
}

const checkpointFile = "checkpoint"

// Checkpoint writes a consistent snapshot of the engine to <Dir>/checkpoint
// (checkpoint.<gen> after a full resync made engine generation gen live),
// in the chunk format of a full resync (see package wire), replacing the
// previous one atomically. The log before the checkpoint's seq may then be
// trimmed (by Maintain).
func (n *Replica) Checkpoint() error {
	if n.closed.Load() {
		return logkv.ErrClosed
	}
	snap, err := n.Engine().NewSnapshot()
	if err != nil {
		return err
	}
	defer snap.Close()
	seq := snap.Seq()
	if seq <= n.checkpointSeq.Load() {
		return nil
	}
	n.engMu.RLock()
	final := n.checkpointPath(n.gen)
	n.engMu.RUnlock()
	if err := n.writeCheckpoint(snap, final, n.historyUpTo(seq)); err != nil {
		return err
	}
	n.checkpointSeq.Store(seq)
	return nil
}

// writeCheckpoint writes snap (at seq snap.Seq(), with the epoch history
// up to it) to path durably: a temporary file, synced, renamed over path,
// and the directory synced.
func (n *Replica) writeCheckpoint(snap logkv.Snapshot, path string, history []commitlog.EpochStart) error {
	seq := snap.Seq()
	fs := n.cfg.FS
	tmp := path + ".tmp"
	f, err := fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("replicate: checkpoint: %w", err)
	}
	w := wire.NewWriter(f, true)
	err = w.WriteFrame(wire.TypeCheckpoint, wire.AppendWelcome(nil, wire.Welcome{Mode: wire.ModeResync, ID: n.cfg.ID, Seq: seq, History: history}))
	if err == nil {
		_, err = writeSnapshot(w, snap)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, path)
	}
	if err == nil {
		err = fs.SyncDir(n.cfg.Dir)
	}
	if err != nil {
		return fmt.Errorf("replicate: checkpoint: %w", err)
	}
	n.cfg.Logger.Info("wrote a checkpoint", "seq", seq, "bytes", w.Written())
	return nil
}

// loadCheckpoint loads <Dir>/checkpoint, if there is one, into the empty
// engine eng, and returns its seq.
func (n *Replica) loadCheckpoint(eng logkv.Engine) (uint64, error) {
	path := n.checkpointPath(n.gen)
	f, err := n.cfg.FS.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := wire.NewReader(f)
	defer r.Close()
	fr, err := r.ReadFrame()
	if errors.Is(err, wire.ErrProtocol) || errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
		// A checkpoint is renamed into place whole: a first frame that
		// fails its checks, or a file cut short, is damage.
		return 0, logkv.CorruptError(path, 0, "checkpoint frame: %v", err)
	}
	if err != nil {
		return 0, fmt.Errorf("replicate: checkpoint %s: %w", path, err)
	}
	if fr.Type != wire.TypeCheckpoint {
		return 0, logkv.CorruptError(path, 0, "starts with a %s frame", fr.Type)
	}
	h, err := wire.DecodeWelcome(fr.Payload)
	if err != nil {
		return 0, logkv.CorruptError(path, 0, "%v", err)
	}
	if err := readSnapshot(r, eng, h.Seq); err != nil {
		return 0, logkv.CorruptError(path, r.Read(), "%v", err)
	}
	return h.Seq, nil
}
