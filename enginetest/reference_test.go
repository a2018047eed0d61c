package enginetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// refEngine is the suite's own reference engine: a map behind a mutex,
// snapshots and iterators as copies. When durable, it keeps its state in one
// file, rewritten on Close, on Sync and on synced writes (and, to give
// crashes something between "all" and "the last sync" to recover, after
// every third unsynced write, as a background flush would). A crash abandons
// the engine, leaving the last file written. Its bugs, all off for the real
// reference, are the broken variants broken_test.go checks the suite catches.
type refEngine struct {
	dir     string
	durable bool
	bugs    refBugs

	mu      sync.RWMutex
	data    map[string][]byte
	seq     uint64
	closed  bool
	crashed bool // abandoned by a crash: never writes its file again
	unsaved int  // unsynced writes since the file was last written

	gets, writes, writeOps, bytesWritten atomic.Uint64
}

// refBugs are deliberate contract violations.
type refBugs struct {
	snapshotLeak     bool // snapshots read the live data
	iterIgnoresUpper bool // iterators ignore UpperBound
	iterLive         bool // engine iterators show writes made after NewIter
	prevAfterEnd     bool // Prev after running off the end goes to the last key (and Next off the start to the first)
	emptyBatchSeq    bool // an empty batch consumes a sequence number
	getAliases       bool // Get returns the stored slice
	keepsBatchBuffer bool // values alias the applied batch's buffer
	ignoresBatchErr  bool // Apply applies the valid prefix of a batch holding an error
	syncLoses        bool // Sync and synced writes do not reach the file
	tornBatch        bool // a background flush may save half of a batch
	nonAtomicApply   bool // readers may see part of a batch
	forgetsSeq       bool // reopen recounts LastSeq as the number of keys
	closeLoses       bool // Close does not save unsynced writes
}

var _ logkv.Engine = (*refEngine)(nil)

const refFile = "ref.db"

type refDisk struct {
	Seq  uint64
	Data map[string][]byte
}

func openRef(dir string, durable bool, bugs refBugs) (*refEngine, error) {
	e := &refEngine{dir: dir, durable: durable, bugs: bugs, data: map[string][]byte{}}
	if !durable {
		return e, nil
	}
	buf, err := os.ReadFile(filepath.Join(dir, refFile))
	if errors.Is(err, os.ErrNotExist) {
		return e, nil
	}
	if err != nil {
		return nil, err
	}
	d, err := decodeRef(buf)
	if err != nil {
		return nil, err
	}
	e.seq, e.data = d.Seq, d.Data
	if bugs.forgetsSeq {
		e.seq = uint64(len(e.data))
	}
	return e, nil
}

// The reference engine's file: seq (8 bytes, little-endian), then per key
// uvarint key length, key, uvarint value length, value. It is test code, read
// only by itself, so it is checked just enough to fail cleanly.
func encodeRef(d refDisk) []byte {
	buf := binary.LittleEndian.AppendUint64(nil, d.Seq)
	for k, v := range d.Data {
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		buf = append(buf, v...)
	}
	return buf
}

func decodeRef(buf []byte) (refDisk, error) {
	d := refDisk{Data: map[string][]byte{}}
	if len(buf) < 8 {
		return d, logkv.CorruptError(refFile, 0, "short file")
	}
	d.Seq = binary.LittleEndian.Uint64(buf)
	off := 8
	field := func() ([]byte, error) {
		n, w := binary.Uvarint(buf[off:])
		if w <= 0 || n > uint64(len(buf)-off-w) {
			return nil, logkv.CorruptError(refFile, int64(off), "bad length")
		}
		off += w
		b := buf[off : off+int(n) : off+int(n)]
		off += int(n)
		return b, nil
	}
	for off < len(buf) {
		k, err := field()
		if err != nil {
			return d, err
		}
		v, err := field()
		if err != nil {
			return d, err
		}
		d.Data[string(k)] = v
	}
	return d, nil
}

// save writes the state to the file; e.mu is held.
func (e *refEngine) save(d refDisk) error {
	if !e.durable || e.crashed {
		return nil
	}
	tmp := filepath.Join(e.dir, refFile+".tmp")
	if err := os.WriteFile(tmp, encodeRef(d), 0o644); err != nil {
		return err
	}
	e.unsaved = 0
	return os.Rename(tmp, filepath.Join(e.dir, refFile))
}

func (e *refEngine) Get(key []byte) ([]byte, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, logkv.ErrClosed
	}
	e.gets.Add(1)
	v, ok := e.data[string(key)]
	if !ok {
		return nil, logkv.ErrNotFound
	}
	if e.bugs.getAliases {
		return v, nil
	}
	return bytes.Clone(v)[:len(v):len(v)], nil
}

func (e *refEngine) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, logkv.ErrClosed
	}
	it := newRefIter(e.data, o, e.bugs)
	if e.bugs.iterLive {
		it.live = func(f func(map[string][]byte)) {
			e.mu.RLock()
			defer e.mu.RUnlock()
			f(e.data)
		}
	}
	return it, nil
}

func (e *refEngine) Set(key, value []byte, o *logkv.WriteOptions) error {
	var b logkv.Batch
	b.Set(key, value)
	return e.apply(&b, o)
}

func (e *refEngine) Delete(key []byte, o *logkv.WriteOptions) error {
	var b logkv.Batch
	b.Delete(key)
	return e.apply(&b, o)
}

func (e *refEngine) Apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	return e.apply(b, o)
}

func (e *refEngine) apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return logkv.ErrClosed
	}
	if err := b.Err(); err != nil && !e.bugs.ignoresBatchErr {
		return err
	}
	seq, err := logkv.SeqFor(o, e.seq)
	if err != nil {
		return err
	}
	if b.Empty() && !e.bugs.emptyBatchSeq {
		return nil
	}
	prev := e.seq
	r := b.Reader()
	for n := 0; ; n++ {
		kind, k, v, ok := r.Next()
		if !ok {
			break
		}
		if e.bugs.nonAtomicApply && n > 0 {
			// Let readers in between the operations of a batch.
			e.mu.Unlock()
			runtime.Gosched()
			e.mu.Lock()
		}
		e.writeOps.Add(1)
		e.bytesWritten.Add(uint64(len(k) + len(v)))
		if kind == logkv.KindDelete {
			delete(e.data, string(k))
			continue
		}
		if !e.bugs.keepsBatchBuffer {
			v = bytes.Clone(v)
		}
		e.data[string(k)] = v
		if e.bugs.tornBatch && n == 0 && b.Len() > 1 && !(o != nil && o.Sync) {
			// Flush the first op alone, under the previous seq.
			if err := e.save(refDisk{Seq: prev, Data: maps.Clone(e.data)}); err != nil {
				return err
			}
		}
	}
	e.seq = seq
	e.writes.Add(1)
	e.unsaved++
	if (o != nil && o.Sync && !e.bugs.syncLoses) || e.unsaved >= 3 {
		return e.save(refDisk{Seq: e.seq, Data: e.data})
	}
	return nil
}

func (e *refEngine) NewSnapshot() (logkv.Snapshot, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, logkv.ErrClosed
	}
	return &refSnapshot{e: e, data: maps.Clone(e.data), seq: e.seq}, nil
}

func (e *refEngine) LastSeq() uint64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.seq
}

func (e *refEngine) Sync() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return logkv.ErrClosed
	}
	if e.bugs.syncLoses {
		return nil
	}
	return e.save(refDisk{Seq: e.seq, Data: e.data})
}

func (e *refEngine) Metrics() logkv.Metrics {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return logkv.Metrics{
		Keys:         int64(len(e.data)),
		Gets:         e.gets.Load(),
		Writes:       e.writes.Load(),
		WriteOps:     e.writeOps.Load(),
		BytesWritten: e.bytesWritten.Load(),
	}
}

func (e *refEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if e.bugs.closeLoses {
		return nil
	}
	return e.save(refDisk{Seq: e.seq, Data: e.data})
}

// crash abandons the engine: its file stays as last written.
func (e *refEngine) crash() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.crashed, e.closed = true, true
}

type refSnapshot struct {
	e      *refEngine
	data   map[string][]byte
	seq    uint64
	closed bool
}

func (s *refSnapshot) live() map[string][]byte {
	if s.e.bugs.snapshotLeak {
		return s.e.data
	}
	return s.data
}

func (s *refSnapshot) Get(key []byte) ([]byte, error) {
	if s.closed {
		return nil, logkv.ErrClosed
	}
	s.e.gets.Add(1)
	s.e.mu.RLock()
	defer s.e.mu.RUnlock()
	v, ok := s.live()[string(key)]
	if !ok {
		return nil, logkv.ErrNotFound
	}
	return bytes.Clone(v)[:len(v):len(v)], nil
}

func (s *refSnapshot) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	if s.closed {
		return nil, logkv.ErrClosed
	}
	s.e.mu.RLock()
	defer s.e.mu.RUnlock()
	return newRefIter(s.live(), o, s.e.bugs), nil
}

func (s *refSnapshot) Seq() uint64 { return s.seq }

func (s *refSnapshot) Close() error {
	s.closed = true
	return nil
}

// refIter iterates over a sorted copy of the keys within bounds.
type refIter struct {
	keys   []string
	vals   [][]byte
	pos    int
	valid  bool
	closed bool
	bugs   refBugs
	o      *logkv.IterOptions
	// live, with the iterLive bug, returns the engine's data under its lock,
	// for the iterator to reload before each move.
	live func(func(map[string][]byte))
}

func newRefIter(data map[string][]byte, o *logkv.IterOptions, bugs refBugs) *refIter {
	it := &refIter{bugs: bugs}
	if o != nil {
		o = &logkv.IterOptions{LowerBound: bytes.Clone(o.LowerBound), UpperBound: bytes.Clone(o.UpperBound)}
		if bugs.iterIgnoresUpper {
			o.UpperBound = nil
		}
	}
	it.o = o
	it.load(data)
	return it
}

func (it *refIter) load(data map[string][]byte) {
	it.keys, it.vals = it.keys[:0], it.vals[:0]
	for _, k := range slices.Sorted(maps.Keys(data)) {
		if it.o.Contains([]byte(k)) {
			it.keys = append(it.keys, k)
			it.vals = append(it.vals, data[k])
		}
	}
}

// reload, with the iterLive bug, rereads the engine's data.
func (it *refIter) reload() {
	if it.live != nil && !it.closed {
		it.live(it.load)
	}
}

func (it *refIter) at(pos int) bool {
	it.pos = pos
	it.valid = !it.closed && pos >= 0 && pos < len(it.keys)
	return it.valid
}

func (it *refIter) search(key []byte) int {
	i, _ := slices.BinarySearch(it.keys, string(key))
	return i
}

func (it *refIter) First() bool            { it.reload(); return it.at(0) }
func (it *refIter) Last() bool             { it.reload(); return it.at(len(it.keys) - 1) }
func (it *refIter) SeekGE(key []byte) bool { it.reload(); return it.at(it.search(key)) }
func (it *refIter) SeekLT(key []byte) bool { it.reload(); return it.at(it.search(key) - 1) }
func (it *refIter) Valid() bool            { return it.valid }
func (it *refIter) Key() []byte            { return []byte(it.keys[it.pos]) }
func (it *refIter) Value() []byte          { return it.vals[it.pos] }
func (it *refIter) Error() error           { return nil }
func (it *refIter) Close() error           { it.closed, it.valid = true, false; return nil }
func (it *refIter) Next() bool             { return it.move(+1) }
func (it *refIter) Prev() bool             { return it.move(-1) }

func (it *refIter) move(d int) bool {
	if !it.valid {
		if it.bugs.prevAfterEnd && !it.closed && len(it.keys) > 0 {
			if d < 0 && it.pos >= len(it.keys) {
				return it.at(len(it.keys) - 1)
			}
			if d > 0 && it.pos < 0 {
				return it.at(0)
			}
		}
		return false
	}
	if it.live != nil {
		cur := it.keys[it.pos]
		it.reload()
		i, found := slices.BinarySearch(it.keys, cur)
		if d > 0 && !found {
			i-- // the next key is at i
		}
		return it.at(i + d)
	}
	return it.at(it.pos + d)
}

// refOpen returns the OpenFunc and Capabilities for a reference engine.
func refOpen(durable, crash bool, bugs refBugs) (OpenFunc, Capabilities) {
	open := func(t *testing.T, dir string) logkv.Engine {
		e, err := openRef(dir, durable, bugs)
		require.NoError(t, err)
		return e
	}
	caps := Capabilities{Durable: durable}
	if crash {
		caps.Crash = func(t *testing.T, e logkv.Engine, dir string) {
			e.(*refEngine).crash()
		}
	}
	return open, caps
}

func TestReference(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		open, caps := refOpen(false, false, refBugs{})
		Run(t, open, caps)
	})
	t.Run("durable", func(t *testing.T) {
		open, caps := refOpen(true, true, refBugs{})
		Run(t, open, caps)
	})
}
