package fuzz

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/bitcask"
	"github.com/logkv/logkv/lsm"
	"github.com/logkv/logkv/memory"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// maxOps bounds the operations one input runs, so that every execution stays
// short whatever the input's length.
const maxOps = 300

// hangTimeout is how long one execution may take before it counts as a hang.
const hangTimeout = 30 * time.Second

// input hands out the fuzz input byte by byte; past its end it returns zeros.
type input struct {
	data []byte
	pos  int
}

func (in *input) done() bool { return in.pos >= len(in.data) }

func (in *input) byte() byte {
	if in.pos >= len(in.data) {
		return 0
	}
	b := in.data[in.pos]
	in.pos++
	return b
}

// key returns one of a small set of keys, so that writes overwrite and
// delete existing keys and iterator bounds fall between them.
func (in *input) key() []byte {
	b := in.byte()
	k := fmt.Sprintf("k%02d", b%24)
	if b&0x80 != 0 {
		k += "x" // a key between k%02d and k%02d+1
	}
	return []byte(k)
}

// value returns a value tagged with the step, mostly short, sometimes a few
// KiB so that memtables flush and bitcask files rotate and merge.
func (in *input) value(step int) []byte {
	b := in.byte()
	v := fmt.Sprintf("v%d.%d", step, b)
	if b%8 == 0 {
		v += strings.Repeat("#", 2048+int(b)*16)
	}
	if b == 1 {
		v = "" // an empty value is a value, not a delete
	}
	return []byte(v)
}

// state is a model's contents.
type state map[string]string

// write is one entry of a committed batch, for replaying history after a crash.
type write struct {
	key, value string
	del        bool
}

// subject is one engine under test with its own model.
type subject struct {
	name     string
	persists bool
	fs       *vfs.MemFS // durable engines only
	open     func(fs vfs.FS) (logkv.Engine, error)
	db       logkv.Engine

	model   state
	lastSeq uint64
	// synced is the newest seq known durable; durable is the model at it, and
	// pending the batches committed since, pending[i] at synced+1+i.
	synced  uint64
	durable state
	pending [][]write

	snaps []snap
}

// snap is an open snapshot with the model it must read.
type snap struct {
	s     logkv.Snapshot
	model state
	seq   uint64
}

func newSubjects(t *testing.T) []*subject {
	mk := func(name string, open func(fs vfs.FS) (logkv.Engine, error)) *subject {
		fs := vfs.NewMem()
		require.NoError(t, fs.MkdirAllSynced("db"))
		return &subject{name: name, persists: true, fs: fs, open: open}
	}
	subs := []*subject{
		mk("lsm", func(fs vfs.FS) (logkv.Engine, error) {
			return lsm.Open("db", &lsm.Options{
				FS:                    fs,
				MemtableSize:          64 << 10,
				L0CompactionThreshold: 2,
				LBaseMaxBytes:         32 << 10,
				TargetFileSize:        8 << 10,
				BlockSize:             256,
				CacheSize:             256 << 10,
				MaxOpenFiles:          16,
				MaxManifestSize:       256,
			})
		}),
		mk("bitcask", func(fs vfs.FS) (logkv.Engine, error) {
			return bitcask.Open("db", &bitcask.Options{FS: fs, MaxFileSize: 4 << 10, MergeThreshold: 0.3})
		}),
		{name: "memory", open: func(vfs.FS) (logkv.Engine, error) { return memory.Open("", nil) }},
	}
	for _, s := range subs {
		db, err := s.open(s.fs)
		require.NoError(t, err, s.name)
		s.db = db
		s.model, s.durable = state{}, state{}
	}
	return subs
}

// commit records a batch committed at lastSeq+1.
func (s *subject) commit(ws []write, sync bool) {
	for _, w := range ws {
		if w.del {
			delete(s.model, w.key)
		} else {
			s.model[w.key] = w.value
		}
	}
	s.lastSeq++
	s.pending = append(s.pending, ws)
	if sync {
		s.markSynced()
	}
}

func (s *subject) markSynced() {
	s.durable = maps.Clone(s.model)
	s.synced = s.lastSeq
	s.pending = nil
}

// stateAt replays history from the last synced state up to seq.
func (s *subject) stateAt(seq uint64) state {
	m := maps.Clone(s.durable)
	for _, ws := range s.pending[:seq-s.synced] {
		for _, w := range ws {
			if w.del {
				delete(m, w.key)
			} else {
				m[w.key] = w.value
			}
		}
	}
	return m
}

func (s *subject) closeSnaps(t *testing.T) {
	for _, sn := range s.snaps {
		require.NoError(t, sn.s.Close(), s.name)
	}
	s.snaps = nil
}

// runner applies decoded operations to every subject.
type runner struct {
	t    *testing.T
	subs []*subject
	in   *input
	step int
	log  []string
}

func (r *runner) logf(format string, args ...any) {
	r.log = append(r.log, fmt.Sprintf("%d: ", r.step)+fmt.Sprintf(format, args...))
}

// FuzzEngines runs the operations its input decodes into on every engine
// and checks each against its model after every step; see the package doc.
func FuzzEngines(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 2, 0, 3, 4, 5, 6, 7})
	// Writes, a synced write, a crash.
	f.Add([]byte{0, 1, 2, 0, 3, 4, 0, 5, 6, 1, 7, 8, 0, 9, 8, 9, 0, 0, 0x81, 3, 9})
	// Big values (flushes, rotations), iterators, snapshots, reopen.
	seed := []byte{}
	for i := range 40 {
		seed = append(seed, 0, byte(i), 8, byte(i%4))
	}
	seed = append(seed, 4, 0, 3, 9, 1, 2, 3, 4, 5, 6, 6, 0, 7, 1, 3, 7, 2, 8, 10)
	for i := range 40 {
		seed = append(seed, 1, byte(i), 0x40|byte(i%3), 0, byte(i+7), 16, byte(i%5))
	}
	seed = append(seed, 9, 0, 9, 1, 5, 4, 0x10, 0x20, 1, 2, 3, 4, 5, 6, 7, 8)
	f.Add(seed)
	// Random-ish longer runs.
	for s := uint64(1); s <= 6; s++ {
		rng := rand.New(rand.NewPCG(s, 7))
		b := make([]byte, 600)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		f.Add(b)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		// The fuzzer has no hang detection: a stuck execution would stall a
		// worker silently. Crash instead, with every stack, so the input is
		// saved as a failure.
		watchdog := time.AfterFunc(hangTimeout, func() {
			buf := make([]byte, 1<<22)
			buf = buf[:runtime.Stack(buf, true)]
			panic(fmt.Sprintf("FuzzEngines: an execution hung for %v; goroutines:\n%s", hangTimeout, buf))
		})
		defer watchdog.Stop()
		r := &runner{t: t, subs: newSubjects(t), in: &input{data: data}}
		defer func() {
			for _, s := range r.subs {
				s.closeSnaps(t)
				require.NoError(t, s.db.Close(), s.name)
			}
		}()
		defer func() {
			if t.Failed() {
				t.Logf("operations, latest last:\n  %s", strings.Join(r.log, "\n  "))
			}
		}()
		for r.step = 1; r.step <= maxOps && !r.in.done(); r.step++ {
			r.op()
			for _, s := range r.subs {
				r.check(s)
			}
		}
	})
}

// op decodes and runs one operation.
func (r *runner) op() {
	t, in := r.t, r.in
	switch op := in.byte(); op % 12 {
	case 0, 1: // Set
		k, v, sync := in.key(), in.value(r.step), op&0x40 != 0
		r.logf("set %s len(v)=%d sync=%v", k, len(v), sync)
		for _, s := range r.subs {
			require.NoError(t, s.db.Set(k, v, &logkv.WriteOptions{Sync: sync}), s.name)
			s.commit([]write{{key: string(k), value: string(v)}}, sync)
		}
	case 2: // Delete
		k, sync := in.key(), op&0x40 != 0
		r.logf("delete %s sync=%v", k, sync)
		for _, s := range r.subs {
			require.NoError(t, s.db.Delete(k, &logkv.WriteOptions{Sync: sync}), s.name)
			s.commit([]write{{key: string(k), del: true}}, sync)
		}
	case 3: // batch of several
		n, sync := 1+int(in.byte()%6), op&0x40 != 0
		var b logkv.Batch
		var ws []write
		for range n {
			k := in.key()
			if in.byte()%3 == 0 {
				b.Delete(k)
				ws = append(ws, write{key: string(k), del: true})
			} else {
				v := in.value(r.step)
				b.Set(k, v)
				ws = append(ws, write{key: string(k), value: string(v)})
			}
		}
		r.logf("batch of %d sync=%v", n, sync)
		for _, s := range r.subs {
			require.NoError(t, s.db.Apply(&b, &logkv.WriteOptions{Sync: sync}), s.name)
			s.commit(ws, sync)
		}
	case 4: // Get
		k := in.key()
		r.logf("get %s", k)
		for _, s := range r.subs {
			checkGet(t, s.name, s.db, s.model, k)
		}
	case 5, 6: // iterator
		r.iterate()
	case 7: // snapshot create
		r.logf("snapshot")
		for _, s := range r.subs {
			sn, err := s.db.NewSnapshot()
			require.NoError(t, err, s.name)
			require.Equal(t, s.lastSeq, sn.Seq(), s.name)
			s.snaps = append(s.snaps, snap{s: sn, model: maps.Clone(s.model), seq: s.lastSeq})
		}
	case 8: // snapshot read, then maybe close
		i, k, closeIt := int(in.byte()), in.key(), op&0x40 != 0
		r.logf("snapshot read %d %s close=%v", i, k, closeIt)
		for _, s := range r.subs {
			if len(s.snaps) == 0 {
				continue
			}
			j := i % len(s.snaps)
			sn := s.snaps[j]
			checkGet(t, s.name+" snapshot", sn.s, sn.model, k)
			checkScan(t, s.name+" snapshot", sn.s, sn.model)
			if closeIt {
				require.NoError(t, sn.s.Close(), s.name)
				s.snaps = slices.Delete(s.snaps, j, j+1)
			}
		}
	case 9: // Sync
		r.logf("sync")
		for _, s := range r.subs {
			require.NoError(t, s.db.Sync(), s.name)
			s.markSynced()
		}
	case 10: // clean reopen
		r.logf("reopen")
		for _, s := range r.subs {
			if !s.persists {
				continue
			}
			s.closeSnaps(t)
			require.NoError(t, s.db.Close(), s.name)
			db, err := s.open(s.fs)
			require.NoError(t, err, s.name)
			s.db = db
			s.markSynced()
		}
	case 11: // crash
		mode, seed := in.byte(), uint64(in.byte())
		r.logf("crash mode=%d seed=%d", mode%3, seed)
		for _, s := range r.subs {
			if !s.persists {
				continue
			}
			r.crash(s, mode, seed)
		}
	}
}

// crash replaces s's filesystem with what a power loss would leave, reopens
// on it, and checks the engine holds a prefix of history no older than the
// last synced write.
func (r *runner) crash(s *subject, mode byte, seed uint64) {
	t := r.t
	var o vfs.CrashOptions
	switch mode % 3 {
	case 1:
		o = vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, 1)), Data: vfs.TornUnsyncedData, Entries: vfs.KeepEntryPrefix}
	case 2:
		o = vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, 2)), Data: vfs.CorruptUnsyncedData, Entries: vfs.KeepEntryPrefix}
	}
	crashed := s.fs.CrashClone(o)
	// The abandoned engine may still write to the old filesystem; the clone
	// does not see it. Close it so its goroutines end.
	for _, sn := range s.snaps {
		_ = sn.s.Close()
	}
	s.snaps = nil
	_ = s.db.Close()
	s.fs = crashed
	db, err := s.open(crashed)
	require.NoError(t, err, "%s: open after crash", s.name)
	s.db = db
	got := db.LastSeq()
	require.GreaterOrEqual(t, got, s.synced, "%s: lost synced writes (LastSeq %d < synced %d)", s.name, got, s.synced)
	require.LessOrEqual(t, got, s.lastSeq, "%s: LastSeq %d after crash beyond the last write %d", s.name, got, s.lastSeq)
	s.model = s.stateAt(got)
	s.lastSeq = got
	checkScan(t, s.name+" after crash", db, s.model)
	// What survived counts as durable from now on.
	s.markSynced()
}

// iterate opens an iterator with bounds and walks it as the input says.
func (r *runner) iterate() {
	t, in := r.t, r.in
	var o logkv.IterOptions
	flags := in.byte()
	if flags&1 != 0 {
		o.LowerBound = in.key()
	}
	if flags&2 != 0 {
		o.UpperBound = in.key()
	}
	if o.LowerBound != nil && o.UpperBound != nil && bytes.Compare(o.LowerBound, o.UpperBound) > 0 {
		o.LowerBound, o.UpperBound = o.UpperBound, o.LowerBound
	}
	n := 1 + int(in.byte()%16)
	moves := make([]byte, n)
	seeks := make([][]byte, n)
	for i := range moves {
		moves[i] = in.byte()
		if moves[i]%6 >= 4 {
			seeks[i] = in.key()
		}
	}
	r.logf("iter [%q,%q) moves %v", o.LowerBound, o.UpperBound, moves)
	for _, s := range r.subs {
		it, err := s.db.NewIter(&o)
		require.NoError(t, err, s.name)
		m := newModelIter(s.model, &o)
		for i, mv := range moves {
			what := ""
			valid := m.valid()
			switch c := mv % 6; {
			case (c == 2 || c == 3) && !valid: // Next/Prev only from a valid position
				fallthrough
			case c == 0:
				what = "First"
				require.Equal(t, m.first(), it.First(), "%s %s", s.name, what)
			case c == 1:
				what = "Last"
				require.Equal(t, m.last(), it.Last(), "%s %s", s.name, what)
			case c == 2:
				what = "Next"
				require.Equal(t, m.next(), it.Next(), "%s %s", s.name, what)
			case c == 3:
				what = "Prev"
				require.Equal(t, m.prev(), it.Prev(), "%s %s", s.name, what)
			case c == 4:
				what = fmt.Sprintf("SeekGE(%s)", seeks[i])
				require.Equal(t, m.seekGE(seeks[i]), it.SeekGE(seeks[i]), "%s %s", s.name, what)
			case c == 5:
				what = fmt.Sprintf("SeekLT(%s)", seeks[i])
				require.Equal(t, m.seekLT(seeks[i]), it.SeekLT(seeks[i]), "%s %s", s.name, what)
			}
			require.Equal(t, m.valid(), it.Valid(), "%s %s", s.name, what)
			if m.valid() {
				require.Equal(t, m.key(), string(it.Key()), "%s %s key", s.name, what)
				require.Equal(t, s.model[m.key()], string(it.Value()), "%s %s value", s.name, what)
			}
		}
		require.NoError(t, it.Error(), s.name)
		require.NoError(t, it.Close(), s.name)
	}
}

// check compares a subject with its model: LastSeq and a forward and a
// backward scan.
func (r *runner) check(s *subject) {
	require.Equal(r.t, s.lastSeq, s.db.LastSeq(), "%s LastSeq", s.name)
	checkScan(r.t, s.name, s.db, s.model)
}

func checkGet(t *testing.T, name string, rd logkv.Reader, m state, k []byte) {
	v, err := rd.Get(k)
	want, ok := m[string(k)]
	if !ok {
		require.ErrorIs(t, err, logkv.ErrNotFound, "%s Get(%s)", name, k)
		return
	}
	require.NoError(t, err, "%s Get(%s)", name, k)
	require.Equal(t, want, string(v), "%s Get(%s)", name, k)
}

func checkScan(t *testing.T, name string, rd logkv.Reader, m state) {
	it, err := rd.NewIter(nil)
	require.NoError(t, err, name)
	defer func() { require.NoError(t, it.Close(), name) }()
	keys := slices.Sorted(maps.Keys(m))
	var got []string
	for ok := it.First(); ok; ok = it.Next() {
		got = append(got, string(it.Key()))
		require.Equal(t, m[string(it.Key())], string(it.Value()), "%s scan value of %s", name, it.Key())
	}
	require.NoError(t, it.Error(), name)
	require.Equal(t, keys, nilIfEmpty(got), "%s forward scan", name)
	got = got[:0]
	for ok := it.Last(); ok; ok = it.Prev() {
		got = append(got, string(it.Key()))
	}
	slices.Reverse(got)
	require.NoError(t, it.Error(), name)
	require.Equal(t, keys, nilIfEmpty(got), "%s backward scan", name)
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// modelIter is an iterator over a sorted copy of a model's keys.
type modelIter struct {
	keys []string
	pos  int // -1 or len(keys) when invalid
}

func newModelIter(m state, o *logkv.IterOptions) *modelIter {
	var keys []string
	for k := range m {
		if o.Contains([]byte(k)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return &modelIter{keys: keys, pos: -1}
}

func (m *modelIter) valid() bool { return m.pos >= 0 && m.pos < len(m.keys) }
func (m *modelIter) key() string { return m.keys[m.pos] }
func (m *modelIter) first() bool { m.pos = 0; return m.valid() }
func (m *modelIter) last() bool  { m.pos = len(m.keys) - 1; return m.valid() }
func (m *modelIter) next() bool  { m.pos++; return m.valid() }
func (m *modelIter) prev() bool  { m.pos--; return m.valid() }

func (m *modelIter) seekGE(k []byte) bool {
	m.pos, _ = slices.BinarySearch(m.keys, string(k))
	return m.valid()
}

func (m *modelIter) seekLT(k []byte) bool {
	i, _ := slices.BinarySearch(m.keys, string(k))
	m.pos = i - 1
	return m.valid()
}
