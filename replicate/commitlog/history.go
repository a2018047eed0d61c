package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
)

// EpochStart marks the start of an epoch: the records from Seq on (up to the
// next entry's Seq) belong to Epoch.
type EpochStart struct {
	Epoch uint64
	Seq   uint64
}

// MaxHistory is the most entries an epoch history may hold. Decoders refuse
// longer histories before allocating.
const MaxHistory = 4096

// EpochAt returns the epoch that history gives to seq: the epoch of the last
// entry whose Seq is <= seq, or 0 if there is none.
func EpochAt(history []EpochStart, seq uint64) uint64 {
	var e uint64
	for _, h := range history {
		if h.Seq > seq {
			break
		}
		e = h.Epoch
	}
	return e
}

// ValidHistory returns an error if history is not increasing in both fields
// (seqs may repeat: an epoch may be empty), or is too long.
func ValidHistory(history []EpochStart) error {
	if len(history) > MaxHistory {
		return fmt.Errorf("epoch history of %d entries is over the limit %d", len(history), MaxHistory)
	}
	for i, h := range history {
		if h.Epoch == 0 || h.Seq == 0 {
			return fmt.Errorf("epoch history entry %d has a zero field (%d at seq %d)", i, h.Epoch, h.Seq)
		}
		if i > 0 && (h.Epoch <= history[i-1].Epoch || h.Seq < history[i-1].Seq) {
			return fmt.Errorf("epoch history not increasing at entry %d: %v after %v", i, h, history[i-1])
		}
	}
	return nil
}

// ForkPoint returns the last sequence number up to which two logs agree: the
// largest s <= min(aLast, bLast) such that every seq in 1..s has the same
// epoch in both histories. Records are only ever committed by the leader of
// their epoch, so two logs that agree on the epoch of a seq hold the same
// record there.
func ForkPoint(a []EpochStart, aLast uint64, b []EpochStart, bLast uint64) uint64 {
	limit := min(aLast, bLast)
	pts := []uint64{1}
	for _, h := range a {
		pts = append(pts, h.Seq)
	}
	for _, h := range b {
		pts = append(pts, h.Seq)
	}
	slices.Sort(pts)
	pts = slices.Compact(pts)
	var match uint64
	for i, p := range pts {
		if p > limit || EpochAt(a, p) != EpochAt(b, p) {
			break
		}
		end := limit
		if i+1 < len(pts) && pts[i+1]-1 < end {
			end = pts[i+1] - 1
		}
		match = end
	}
	return match
}

// appendHistory appends the 16-byte payload encoding of h to dst.
func appendHistoryEntry(dst []byte, h EpochStart) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, h.Epoch)
	return binary.LittleEndian.AppendUint64(dst, h.Seq)
}

const historyFile = "EPOCHS"

// Epoch returns the current epoch: that of the last history entry, or 0.
func (l *Log) Epoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epochLocked()
}

func (l *Log) epochLocked() uint64 {
	if len(l.history) == 0 {
		return 0
	}
	return l.history[len(l.history)-1].Epoch
}

// History returns a copy of the epoch history.
func (l *Log) History() []EpochStart {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.history)
}

// BeginEpoch starts epoch, which must be newer than Epoch(), at the next seq,
// and makes the change durable before returning. Records appended from then
// on carry it.
func (l *Log) BeginEpoch(epoch uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if epoch <= l.epochLocked() {
		return fmt.Errorf("%w: epoch %d is not newer than %d", ErrOutOfOrder, epoch, l.epochLocked())
	}
	h := append(slices.Clip(l.history), EpochStart{Epoch: epoch, Seq: l.last + 1})
	if err := writeHistory(l.fs, l.dir, h); err != nil {
		return err
	}
	l.history = h
	return nil
}

func readHistory(fs vfs.FS, path string) ([]EpochStart, error) {
	f, err := fs.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("commitlog: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("commitlog: %w", err)
	}
	rd := record.NewReader(f, path, st.Size(), 16)
	var h []EpochStart
	for {
		off := rd.Offset()
		p, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// The file is replaced whole by rename: any damage is corruption.
			return nil, logkv.CorruptError(path, off, "%v", err)
		}
		if len(p) != 16 || len(h) >= MaxHistory {
			return nil, logkv.CorruptError(path, off, "bad epoch entry")
		}
		h = append(h, EpochStart{Epoch: leUint64(p[0:8]), Seq: leUint64(p[8:16])})
	}
	if err := ValidHistory(h); err != nil {
		return nil, logkv.CorruptError(path, 0, "%v", err)
	}
	return h, nil
}

func writeHistory(fs vfs.FS, dir string, h []EpochStart) error {
	var buf, p []byte
	for _, e := range h {
		p = appendHistoryEntry(p[:0], e)
		buf = record.Append(buf, p)
	}
	tmp := filepath.Join(dir, historyFile+".tmp")
	f, err := fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, filepath.Join(dir, historyFile))
	}
	if err == nil {
		err = fs.SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("commitlog: write epoch history: %w", err)
	}
	return nil
}

func leUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
