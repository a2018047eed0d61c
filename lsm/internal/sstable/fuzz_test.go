package sstable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/vfs"
)

// seedBlocks returns a few well-formed blocks of internal keys.
func seedBlocks() [][]byte {
	var out [][]byte
	for _, interval := range []int{1, 2, 16} {
		bw := blockWriter{restartInterval: interval}
		for _, e := range seedEntries() {
			bw.add(e.key, e.value)
		}
		out = append(out, bytes.Clone(bw.finish()))
	}
	return append(out, (&blockWriter{restartInterval: 1}).finish())
}

// FuzzBlock decodes arbitrary bytes as a block: every move must end in an
// entry or a clean stop (with ErrCorrupt, or none), never a panic or a loop.
func FuzzBlock(f *testing.F) {
	for _, b := range seedBlocks() {
		f.Add(b, base.MakeSearchKey([]byte("apply"), 5))
	}
	f.Fuzz(checkBlockDecode)
}

// checkBlockDecode walks block every way: no panic, no endless loop, only
// ErrCorrupt errors.
func checkBlockDecode(t *testing.T, block, seek []byte) {
	var it blockIter
	if err := it.init(block, true, "fuzz", 0); err != nil {
		if !errors.Is(err, logkv.ErrCorrupt) {
			t.Fatal(err)
		}
		return
	}
	limit := len(block) + 1 // an entry takes at least 3 bytes
	check := func() {
		if it.err != nil && !errors.Is(it.err, logkv.ErrCorrupt) {
			t.Fatal(it.err)
		}
		if it.valid && len(it.key) < base.TrailerSize {
			t.Fatalf("short key %q", it.key)
		}
	}
	var fwd [][]byte
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		check()
		if n++; n > limit {
			t.Fatal("Next does not terminate")
		}
		fwd = append(fwd, bytes.Clone(it.key))
	}
	check()
	fwdErr := it.err
	it.init(block, true, "fuzz", 0)
	n = 0
	for ok := it.Last(); ok; ok = it.Prev() {
		check()
		if n++; n > limit {
			t.Fatal("Prev does not terminate")
		}
	}
	check()
	if len(seek) >= base.TrailerSize {
		for _, f := range []func([]byte) bool{it.SeekGE, it.SeekLT} {
			it.init(block, true, "fuzz", 0)
			n = 0
			for ok := f(seek); ok; ok = it.Next() {
				check()
				if n++; n > limit {
					t.Fatal("Next does not terminate")
				}
			}
			check()
		}
	}
	// The index summary, when the block has one entry per restart point,
	// never panics whatever the block; on sorted blocks it must agree
	// with SeekGE (below).
	var sit blockIter
	sit.init(block, true, "fuzz", 0)
	summary := newIndexSearch(&sit)
	if summary != nil && len(seek) >= base.TrailerSize {
		summary.seekGE(&sit, base.UserKey(seek), seek)
		if sit.err != nil && !errors.Is(sit.err, logkv.ErrCorrupt) {
			t.Fatal(sit.err)
		}
	}
	// A clean forward walk over keys in order is what a writer makes
	// (restarts aside): a fresh SeekGE to each key must find it.
	if fwdErr != nil {
		return
	}
	for i := 1; i < len(fwd); i++ {
		if base.Compare(fwd[i-1], fwd[i]) >= 0 {
			return
		}
	}
	if summary != nil {
		targets := fwd
		if len(seek) >= base.TrailerSize {
			targets = append(targets, seek)
		}
		for _, k := range targets {
			checkIndexSearch(t, block, summary, k)
		}
	}
	for _, k := range fwd {
		it.init(block, true, "fuzz", 0)
		if it.SeekGE(k) && !bytes.Equal(it.key, k) && it.err == nil {
			// Restart points may be arbitrary offsets in fuzzed input;
			// only checksums stand between them and the reader.
			return
		}
	}
}

// seedEntries are a few short entries, some sharing prefixes, two versions
// per user key, some tombstones.
func seedEntries() []kv {
	var entries []kv
	for i, s := range []string{"a", "apple", "apply", "b", "ban", "banana", "c"} {
		kind := base.Kind(i % 3 % 2)
		v := []byte(strings.Repeat(s, 3))
		if kind == base.KindDelete {
			v = nil
		}
		entries = append(entries, kv{base.AppendInternalKey(nil, []byte(s), uint64(10+i), kind), v})
		entries = append(entries, kv{base.AppendInternalKey(nil, []byte(s), uint64(i), base.KindSet), v})
	}
	return entries
}

// seedTables returns tiny tables (a few hundred bytes: the fuzzer
// minimises every new input, which takes long on large ones) in every
// compression.
func seedTables(t testing.TB) [][]byte {
	entries := seedEntries()
	var out [][]byte
	for _, c := range allCompressions {
		fs := vfs.NewMem()
		writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 48, RestartInterval: 2, Compression: c, BloomBitsPerKey: 10})
		fl, err := fs.Open("t")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(fl)
		if err != nil {
			t.Fatal(err)
		}
		fl.Close()
		out = append(out, b)
	}
	return out
}

// FuzzTable opens arbitrary bytes as a table and reads all of it: errors
// must wrap ErrCorrupt; no panic. With verify false the block checksums are
// skipped, so that mutations reach the index, filter, properties and
// decompression code behind them. Each input is read twice: through
// ReadAt, and with b as the file's mapping (memFile has no descriptor to
// map), through decodeMapped as an OS file's Reader reads.
func FuzzTable(f *testing.F) {
	for _, b := range seedTables(f) {
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, verify bool) {
		checkTable(t, b, nil, verify)
		fuzzReader(t, b, verify, false)
		fuzzReader(t, b, verify, true)
	})
}

// fuzzReader opens b as a table, read through ReadAt or, if mapped, from b
// as its mapping, and walks part of it backwards.
func fuzzReader(t *testing.T, b []byte, verify, mapped bool) {
	o := ReaderOptions{Name: "fuzz", Cache: NewCache(64 << 10)}
	var r *Reader
	var err error
	if mapped {
		r, err = load(&memFile{b: b}, b, int64(len(b)), o, verify)
	} else {
		r, err = open(&memFile{b: b}, int64(len(b)), o, verify)
	}
	if err != nil {
		return
	}
	defer r.Close()
	defer func() { r.mapped = nil }() // before Close: b is not a mapping to unmap
	it := r.NewIter([]byte("ap"), []byte("bao"))
	n := 0
	for ok := it.SeekGE(base.MakeSearchKey([]byte("b"), 5)); ok; ok = it.Prev() {
		if n++; n > len(b) {
			t.Fatal("Prev does not terminate")
		}
	}
	if err := it.Close(); err != nil && !errors.Is(err, logkv.ErrCorrupt) {
		t.Fatal(err)
	}
}

// FuzzFilter decodes arbitrary bytes as a filter block and probes it.
func FuzzFilter(f *testing.F) {
	f.Add(appendFilter(nil, []uint64{1, 2, 3}, 10), []byte("k"))
	f.Add([]byte{0, 31}, []byte(""))
	f.Fuzz(func(t *testing.T, b, key []byte) {
		flt, ok := decodeFilter(b)
		if !ok {
			return
		}
		flt.mayContain(HashKey(key))
		// Round trip: a filter built over key always contains it.
		k := 1 + int(binary.LittleEndian.Uint16(append(bytes.Clone(b), 0, 0)))%40
		g, ok := decodeFilter(appendFilter(nil, []uint64{HashKey(key)}, k))
		if !ok || !g.mayContain(HashKey(key)) {
			t.Fatalf("filter of %d bits/key lost its key", k)
		}
	})
}

// TestMangledBlocks runs the block decoder over every single-byte mutation
// of well-formed blocks, with no checksum in front: the decoder alone must
// stay safe. (The fuzz targets go further; this runs in every test run.)
func TestMangledBlocks(t *testing.T) {
	seek := base.MakeSearchKey([]byte("apply"), 5)
	for _, orig := range seedBlocks() {
		b := make([]byte, len(orig))
		for pos := range orig {
			for _, v := range []byte{orig[pos] ^ 1, orig[pos] ^ 0x80, 0, 0xff} {
				copy(b, orig)
				b[pos] = v
				checkBlockDecode(t, b, seek)
			}
		}
	}
}

// TestMangledTables opens tables with one byte flipped and checksums off,
// so the flip reaches the decoders behind them (footer, index, filter,
// properties, decompression, blocks): errors must wrap ErrCorrupt, never a
// panic.
func TestMangledTables(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 23))
	for _, orig := range seedTables(t) {
		b := make([]byte, len(orig))
		step := 1
		if raceEnabled {
			step = 3
		}
		for pos := rng.IntN(step); pos < len(orig); pos += step {
			copy(b, orig)
			b[pos] ^= 1 << rng.IntN(8)
			checkTable(t, b, nil, false)
		}
	}
}
