package commitlog

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
)

func (l *Log) recover() error {
	names, err := l.fs.List(l.dir)
	if err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	history, err := readHistory(l.fs, filepath.Join(l.dir, historyFile))
	if err != nil {
		return err
	}
	changed := false
	var lastEpoch uint64
	if len(history) > 0 {
		lastEpoch = history[len(history)-1].Epoch
	}
	for _, name := range names {
		first, ok := parseSegName(name)
		if !ok {
			continue
		}
		l.segs = append(l.segs, &segment{first: first, last: first - 1, path: filepath.Join(l.dir, name)})
	}
	for i, s := range l.segs {
		if i > 0 && s.first != l.segs[i-1].last+1 {
			return logkv.CorruptError(s.path, 0, "segment starts at seq %d, but the previous one ends at %d", s.first, l.segs[i-1].last)
		}
		isLast := i == len(l.segs)-1
		f, err := l.fs.Open(s.path)
		if err != nil {
			return fmt.Errorf("commitlog: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("commitlog: %w", err)
		}
		rd := record.NewReader(newBufReaderAt(f, st.Size()), s.path, st.Size(), maxSegmentPayload)
		var epoch uint64
		for {
			off := rd.Offset()
			p, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil && off == 0 && st.Size() > segHeaderSize {
				// The header is written and synced before any record, so
				// a segment longer than a header has a synced one: its
				// damage is corruption, never a torn creation (and without
				// it, its records' salt is unknown).
				f.Close()
				return logkv.CorruptError(s.path, 0, "damaged segment header: %v", err)
			}
			if err != nil {
				err = l.damaged(f, s, isLast, off, st.Size(), err)
				if err != nil {
					f.Close()
					return err
				}
				break // the torn tail is cut
			}
			if off == 0 {
				salt, hdr, err := checkSegmentHeader(s.path, p)
				if err != nil {
					f.Close()
					return err
				}
				s.salt, s.hdr = salt, hdr
				rd.SetSalt(salt)
				continue
			}
			synced, r, err := decodeSegmentRecord(p)
			if err != nil {
				f.Close()
				return logkv.CorruptError(s.path, off, "%v", err)
			}
			if synced > uint64(off) {
				f.Close()
				return logkv.CorruptError(s.path, off, "record says %d bytes were synced before its offset", synced)
			}
			if r.Seq != s.last+1 {
				f.Close()
				return logkv.CorruptError(s.path, off, "record has seq %d, want %d", r.Seq, s.last+1)
			}
			if r.Epoch < epoch {
				f.Close()
				return logkv.CorruptError(s.path, off, "record %d has epoch %d after epoch %d", r.Seq, r.Epoch, epoch)
			}
			epoch = r.Epoch
			if r.Epoch > lastEpoch {
				// The record was written but the history update that came
				// before it was lost: redo it.
				history = append(history, EpochStart{Epoch: r.Epoch, Seq: r.Seq})
				lastEpoch, changed = r.Epoch, true
			}
			s.last = r.Seq
		}
		f.Close()
		s.size = rd.Offset()
		if s.size == 0 {
			// No header: the segment's creation was cut short (or its header
			// torn, with no record after it).
			if !isLast {
				return logkv.CorruptError(s.path, 0, "sealed segment without a header")
			}
			s.salt, s.hdr = newSalt(), segHeaderSize
			if err := l.createSegment(s); err != nil {
				return err
			}
			s.size = s.hdr
		}
		s.syncedSize = s.size
	}
	if len(l.segs) == 0 {
		s := l.newSegment(1)
		if err := l.createSegment(s); err != nil {
			return err
		}
		l.segs = append(l.segs, s)
	}
	act := l.segs[len(l.segs)-1]
	l.last = act.last
	l.durable = l.last
	l.durableSeq.Store(l.last)
	l.setFlushed(l.last)
	// Entries past the next seq are left over from a truncation cut short.
	for len(history) > 0 && history[len(history)-1].Seq > l.last+1 {
		history, changed = history[:len(history)-1], true
	}
	l.history = history
	if changed {
		if err := writeHistory(l.fs, l.dir, history); err != nil {
			return err
		}
	}
	f, err := l.fs.OpenReadWrite(act.path)
	if err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	l.f = f
	// What a killed process left in the page cache is durable from here on.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("commitlog: sync %s: %w", act.path, err)
	}
	return nil
}

// damaged decides what a frame of segment s that failed its checks at off
// (err, from record.Reader) means; s.last is the last record before it. In the last segment, damage that no later
// intact record proves synced is the remains of writes in flight at a power
// loss: damaged cuts the segment there and returns nil. Anywhere else it is
// corruption: sealed segments were synced whole before the next one began.
func (l *Log) damaged(f io.ReaderAt, s *segment, isLast bool, off, size int64, err error) error {
	path := s.path
	torn := errors.Is(err, record.ErrTornTail)
	if !torn && !errors.Is(err, logkv.ErrCorrupt) {
		return err // I/O
	}
	if !isLast {
		if torn {
			return logkv.CorruptError(path, off, "torn record in a sealed segment: %v", err)
		}
		return fmt.Errorf("%w (in a sealed segment)", err)
	}
	if !torn {
		// Intact frames follow the damage: it is still a torn tail unless
		// one of them says the damaged bytes were synced.
		synced, serr := laterSynced(f, path, off, size, s.last, s.salt)
		if serr != nil {
			return serr
		}
		if synced > off {
			return fmt.Errorf("%w; a later record says the first %d bytes of %s were synced", err, synced, path)
		}
	}
	l.log.Warn("commitlog: cutting a torn tail", "file", path, "offset", off, "size", size, "err", err)
	return l.cutTail(path, off)
}

func (l *Log) cutTail(path string, off int64) error {
	f, err := l.fs.OpenReadWrite(path)
	if err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("commitlog: truncate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("commitlog: sync %s: %w", path, err)
	}
	return nil
}

// bufReaderAt serves the small sequential ReadAts of a record.Reader from a
// window read in large blocks.
type bufReaderAt struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64
	n    int
}

func newBufReaderAt(r io.ReaderAt, size int64) *bufReaderAt {
	return &bufReaderAt{r: r, size: size, buf: make([]byte, 1<<20)}
}

func (b *bufReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= b.off && off+int64(len(p)) <= b.off+int64(b.n) {
		return copy(p, b.buf[off-b.off:]), nil
	}
	if off >= b.size {
		return 0, io.EOF
	}
	if len(p) > len(b.buf)/2 {
		return b.r.ReadAt(p, off)
	}
	n, err := b.r.ReadAt(b.buf[:min(int64(len(b.buf)), b.size-off)], off)
	b.off, b.n = off, n
	if err != nil && !(err == io.EOF && n > 0) {
		b.n = 0
		return 0, err
	}
	m := copy(p, b.buf[:n])
	if m < len(p) {
		return m, io.EOF
	}
	return m, nil
}
