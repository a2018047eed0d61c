package replicate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/replicate/commitlog"
)

// funcStore is the EngineStore of a Config with OpenEngine only: one
// generation, opened fresh by OpenEngine(true).
type funcStore OpenEngineFunc

func (f funcStore) Open(_ uint64, fresh bool) (logkv.Engine, error) { return f(fresh) }
func (f funcStore) Remove(uint64) error                             { return nil }

// engineFile names the live engine generation, in Dir.
//
// # ENGINE format
//
// One internal/record frame (crc32c | len | payload), replaced whole by
// rename, whose payload is:
//
//	offset  size  field
//	0       8     gen: the live engine generation (EngineStore), uint64 LE
//	8       8     reset: 0, or S after a full resync to seq S whose log
//	              reset may not have happened yet, uint64 LE
//	16      4     n: entries of the epoch history that follow, uint32 LE
//	20      16*n  the leader's epoch history up to S: epoch, seq (uint64
//	              LE each)
//
// Writing it is a full resync's commit point: before it the node restarts on
// its old engine and log; after it, on the new engine, and Open resets the
// log to S+1 with that history if reset is set, then clears reset. A missing
// file means generation 0 and no reset.
const engineFile = "ENGINE"

// engineState is the content of the ENGINE file.
type engineState struct {
	gen     uint64
	reset   uint64
	history []commitlog.EpochStart
}

func (n *Replica) readEngineState() (engineState, error) {
	path := filepath.Join(n.cfg.Dir, engineFile)
	f, err := n.cfg.FS.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return engineState{}, nil
	}
	if err != nil {
		return engineState{}, fmt.Errorf("replicate: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return engineState{}, fmt.Errorf("replicate: %w", err)
	}
	const limit = 20 + 16*commitlog.MaxHistory
	p, err := record.NewReader(f, path, st.Size(), limit).Next()
	if err == io.EOF {
		err = errors.New("empty")
	}
	if err != nil {
		// Replaced whole by rename: any damage is corruption.
		return engineState{}, logkv.CorruptError(path, 0, "%v", err)
	}
	if len(p) < 20 {
		return engineState{}, logkv.CorruptError(path, 0, "payload of %d bytes, under 20", len(p))
	}
	e := engineState{gen: binary.LittleEndian.Uint64(p), reset: binary.LittleEndian.Uint64(p[8:])}
	cnt := binary.LittleEndian.Uint32(p[16:])
	if cnt > commitlog.MaxHistory || len(p) != 20+16*int(cnt) {
		return engineState{}, logkv.CorruptError(path, 0, "history of %d entries in %d bytes", cnt, len(p))
	}
	for i := range int(cnt) {
		q := p[20+16*i:]
		e.history = append(e.history, commitlog.EpochStart{Epoch: binary.LittleEndian.Uint64(q), Seq: binary.LittleEndian.Uint64(q[8:])})
	}
	if err := commitlog.ValidHistory(e.history); err != nil {
		return engineState{}, logkv.CorruptError(path, 0, "%v", err)
	}
	return e, nil
}

// writeEngineState replaces the ENGINE file durably: write a temporary
// file, sync, rename, sync the directory.
func (n *Replica) writeEngineState(e engineState) error {
	p := binary.LittleEndian.AppendUint64(nil, e.gen)
	p = binary.LittleEndian.AppendUint64(p, e.reset)
	p = binary.LittleEndian.AppendUint32(p, uint32(len(e.history)))
	for _, h := range e.history {
		p = binary.LittleEndian.AppendUint64(p, h.Epoch)
		p = binary.LittleEndian.AppendUint64(p, h.Seq)
	}
	fs := n.cfg.FS
	tmp := filepath.Join(n.cfg.Dir, engineFile+".tmp")
	f, err := fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("replicate: %w", err)
	}
	_, err = f.Write(record.Append(nil, p))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, filepath.Join(n.cfg.Dir, engineFile))
	}
	if err == nil {
		err = fs.SyncDir(n.cfg.Dir)
	}
	if err != nil {
		return fmt.Errorf("replicate: write %s: %w", engineFile, err)
	}
	return nil
}

// removeGen removes what generation gen left: its engine's files and its
// checkpoint.
func (n *Replica) removeGen(gen uint64) error {
	if err := n.cfg.Engines.Remove(gen); err != nil {
		return err
	}
	path := n.checkpointPath(gen)
	if err := n.cfg.FS.Remove(path); err == nil {
		return n.cfg.FS.SyncDir(n.cfg.Dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// checkpointPath is generation gen's checkpoint file.
func (n *Replica) checkpointPath(gen uint64) string {
	if gen == 0 {
		return filepath.Join(n.cfg.Dir, checkpointFile)
	}
	return filepath.Join(n.cfg.Dir, fmt.Sprintf("%s.%d", checkpointFile, gen))
}
