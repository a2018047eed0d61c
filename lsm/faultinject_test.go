package lsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// faultKeys is the number of distinct keys the fault history writes.
const faultKeys = 600

// faultHistory is a run of single-operation batches, batch i at seq i+1.
type faultHistory struct {
	keys   []string
	values []string // "" for a delete
}

func (h *faultHistory) stateAt(seq uint64) map[string]string {
	m := map[string]string{}
	for i := uint64(0); i < seq && i < uint64(len(h.keys)); i++ {
		if h.values[i] == "" {
			delete(m, h.keys[i])
		} else {
			m[h.keys[i]] = h.values[i]
		}
	}
	return m
}

// faultBase is a DB directory to damage, and what it must hold.
type faultBase struct {
	fs    *vfs.MemFS
	h     *faultHistory
	acked uint64 // writes up to this seq were acknowledged as durable
}

// newFaultBase writes a history with flushes, compactions, manifest
// rotations and several WAL segments, then stops cleanly (crash nil) or
// crashes as crash says, with a flush held back so that more than one WAL
// segment is still needed.
func newFaultBase(t *testing.T, crash *vfs.CrashOptions) *faultBase {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAllSynced("db"))
	opts := smallOptions(fs)
	opts.MemtableStopWritesThreshold = 16
	db, err := Open("db", opts)
	require.NoError(t, err)
	var hold atomic.Bool
	release := make(chan struct{})
	db.testHooks.afterFlushTable = func() {
		if hold.Load() {
			<-release
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	h := &faultHistory{}
	var synced uint64
	write := func(n int) {
		for range n {
			k := fmt.Sprintf("key%04d", rng.IntN(faultKeys))
			v := ""
			if rng.IntN(10) != 0 {
				b := make([]byte, rng.IntN(150))
				for i := range b {
					b[i] = 'a' + byte(rng.IntN(26)) // incompressible enough for several tables
				}
				v = fmt.Sprintf("v%d-%s", len(h.keys)+1, b)
			}
			h.keys, h.values = append(h.keys, k), append(h.values, v)
			sync := rng.IntN(8) == 0
			o := &logkv.WriteOptions{Sync: sync}
			if v == "" {
				require.NoError(t, db.Delete([]byte(k), o))
			} else {
				require.NoError(t, db.Set([]byte(k), []byte(v), o))
			}
			if sync {
				synced = uint64(len(h.keys))
			}
		}
	}
	write(2000)
	require.NoError(t, db.flushAll())
	waitIdle(t, db)
	hold.Store(true)
	write(1200)
	if crash == nil {
		close(release)
		require.NoError(t, db.Close())
		return &faultBase{fs: cleanCopy(t, fs), h: h, acked: uint64(len(h.keys))}
	}
	c := fs.CrashClone(*crash)
	close(release)
	require.NoError(t, db.Close())
	return &faultBase{fs: c, h: h, acked: synced}
}

// walRecord is one frame of a WAL segment, undamaged.
type walRecord struct {
	off, end    int64
	seq, synced uint64
}

func walRecords(t *testing.T, data []byte) []walRecord {
	t.Helper()
	r := record.NewReader(bytes.NewReader(data), "wal", int64(len(data)), maxWALPayload)
	var recs []walRecord
	for {
		off := r.Offset()
		p, err := r.Next()
		if err != nil {
			// io.EOF, or the torn tail a crash left (the valid records end
			// there; recovery cuts the rest).
			if err != io.EOF {
				require.ErrorIs(t, err, record.ErrTornTail)
			}
			return recs
		}
		recs = append(recs, walRecord{off: off, end: r.Offset(), seq: binary.LittleEndian.Uint64(p), synced: binary.LittleEndian.Uint64(p[8:])})
	}
}

// TestFaultInjection damages one file of a DB at a time, after a clean stop
// and after a crash: a bit flipped, or the file cut short, at sampled
// offsets of every WAL segment, the manifest, CURRENT and every table.
// Open must either fail with ErrCorrupt naming the damaged file, or succeed
// with every acknowledged write intact; and then every read returns the
// right value, or ErrCorrupt where it touches the damage, never a wrong
// value or a missing key.
//
// The one cut recovery may make is the newest WAL segment's torn tail: the
// bytes past the last offset a record says was synced. A crash makes the
// same file as a flip there or a cut anywhere in it (the records that
// would say so are gone), so there the bar is that nothing before the
// damage is lost, and that the cut is logged.
func TestFaultInjection(t *testing.T) {
	perFile := 8
	if testing.Short() {
		perFile = 3
	}
	for name, crash := range map[string]*vfs.CrashOptions{
		"clean-stop": nil,
		"crash":      {},
		// A crash that keeps a torn, damaged part of what was not synced,
		// and a random prefix of the directory changes.
		"torn-crash": {Rand: rand.New(rand.NewPCG(3, 3)), Data: vfs.CorruptUnsyncedData, Entries: vfs.KeepEntryPrefix},
	} {
		if testing.Short() && name == "torn-crash" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			base := newFaultBase(t, crash)
			// The undamaged directory opens with every acknowledged write.
			checkFaultOutcome(t, base, base.fs.CrashClone(vfs.CrashOptions{}), "", base.acked)

			names, err := base.fs.List("db")
			require.NoError(t, err)
			var logs []string
			for _, n := range names {
				if k, _ := parseName(n); k == kindLog {
					logs = append(logs, n)
				}
			}
			if crash != nil {
				require.GreaterOrEqual(t, len(logs), 2, "several WAL segments")
			}
			kinds := map[fileKind]int{}
			for _, n := range names {
				kind, _ := parseName(n)
				if kind == kindUnknown && n != currentName {
					continue // LOCK
				}
				kinds[kind]++
				data := readAll(t, base.fs, "db/"+n)
				newest := n == logs[len(logs)-1]
				var recs []walRecord
				if newest {
					recs = walRecords(t, data)
				}
				for _, f := range faultsFor(n, data, perFile) {
					t.Run(fmt.Sprintf("%s/%s@%d", n, f.kind, f.off), func(t *testing.T) {
						c := base.fs.CrashClone(vfs.CrashOptions{})
						damaged := slices.Clone(data)
						if f.kind == "flip" {
							damaged[f.off] ^= 0x10
						} else {
							damaged = damaged[:f.off]
						}
						writeAll(t, c, "db/"+n, damaged)
						floor := base.acked
						if newest {
							floor = walFloor(recs, f, base.acked)
						}
						checkFaultOutcome(t, base, c, n, floor)
					})
				}
			}
			require.Positive(t, kinds[kindTable], "tables")
			require.Positive(t, kinds[kindManifest], "a manifest")
			require.Positive(t, kinds[kindUnknown], "CURRENT")
		})
	}
}

type fault struct {
	kind string // "flip" or "cut"
	off  int64
}

// faultsFor samples the faults for one file: flips and cuts at its first and
// last bytes and at offsets drawn from a generator seeded by its name.
func faultsFor(name string, data []byte, n int) []fault {
	size := int64(len(data))
	if size == 0 {
		return nil
	}
	hash := fnv.New64a()
	hash.Write([]byte(name))
	rng := rand.New(rand.NewPCG(hash.Sum64(), 1))
	offs := []int64{0, size - 1, min(size-1, 9)}
	for len(offs) < n {
		offs = append(offs, rng.Int64N(size))
	}
	var out []fault
	for i, off := range offs {
		out = append(out, fault{"flip", off})
		if i%2 == 0 || off == 0 {
			out = append(out, fault{"cut", off})
		}
	}
	return out
}

// walFloor returns the newest seq that must survive damage f to the newest
// WAL segment: all acknowledged writes if a record after the damage says
// the damaged offset was synced (then Open must fail), else those of the
// records wholly before the damage.
func walFloor(recs []walRecord, f fault, acked uint64) uint64 {
	floor := uint64(0)
	for i, r := range recs {
		if r.end <= f.off {
			if r.seq != 0 {
				floor = r.seq
			}
			continue
		}
		if f.kind == "flip" {
			for _, later := range recs[i+1:] {
				if later.synced > uint64(f.off) {
					return acked
				}
			}
		}
		break
	}
	if floor == 0 && len(recs) > 0 && recs[0].end > f.off {
		// The damage is in the segment's first record: the writes before
		// it are in older segments or tables, whatever they are.
		return min(acked, firstSeq(recs)-1)
	}
	return min(acked, floor)
}

func firstSeq(recs []walRecord) uint64 {
	for _, r := range recs {
		if r.seq != 0 {
			return r.seq
		}
	}
	return 1 << 62
}

// checkFaultOutcome opens the damaged directory c (file damaged) and checks
// the outcome: ErrCorrupt naming file, or every write up to floor (and at
// most the history) present with its value, reads failing only with
// ErrCorrupt. A loss below base.acked must be a logged cut of file.
func checkFaultOutcome(t *testing.T, base *faultBase, c *vfs.MemFS, file string, floor uint64) {
	t.Helper()
	o, logs := withLog(smallOptions(c))
	db, err := Open("db", o)
	if err != nil {
		require.ErrorIs(t, err, logkv.ErrCorrupt, "log:\n%s", logs)
		require.NotEmpty(t, file, "the undamaged directory must open: %v", err)
		require.Contains(t, err.Error(), file)
		return
	}
	defer db.Close()
	seq := db.LastSeq()
	require.GreaterOrEqual(t, seq, floor, "acknowledged writes lost; log:\n%s", logs)
	require.LessOrEqual(t, seq, uint64(len(base.h.keys)))
	if seq < base.acked {
		require.True(t, logs.has("last WAL segment", "file="+file), "writes lost without a logged cut; log:\n%s", logs)
	}
	want := base.h.stateAt(seq)
	for i := range faultKeys {
		k := fmt.Sprintf("key%04d", i)
		v, err := db.Get([]byte(k))
		if errors.Is(err, logkv.ErrCorrupt) {
			continue
		}
		if w, ok := want[k]; ok {
			require.NoError(t, err, "%s (seq %d)", k, seq)
			require.Equal(t, w, string(v), k)
		} else {
			require.ErrorIs(t, err, logkv.ErrNotFound, k)
		}
	}
	it, err := db.NewIter(nil)
	if err != nil {
		require.ErrorIs(t, err, logkv.ErrCorrupt)
		return
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		require.Less(t, i, len(keys), "iterator shows %q past the end", it.Key())
		require.Equal(t, keys[i], string(it.Key()))
		require.Equal(t, want[keys[i]], string(it.Value()), keys[i])
		i++
	}
	if err := it.Error(); err != nil {
		require.ErrorIs(t, err, logkv.ErrCorrupt)
	} else {
		require.Equal(t, len(keys), i, "iterator ended early")
	}
	if err := it.Close(); err != nil {
		require.ErrorIs(t, err, logkv.ErrCorrupt)
	}
}
