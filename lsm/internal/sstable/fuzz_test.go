package sstable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
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
// compression, in format version 2 (the blocked filter) and, uncompressed
// and in S2, in version 1.
func seedTables(t testing.TB) [][]byte {
	entries := seedEntries()
	var out [][]byte
	type seed struct {
		c       Compression
		version uint32
	}
	var seeds []seed
	for _, c := range allCompressions {
		seeds = append(seeds, seed{c, formatVersion})
	}
	seeds = append(seeds, seed{None, 1}, seed{S2, 1})
	for _, s := range seeds {
		fs := vfs.NewMem()
		writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 48, RestartInterval: 2, Compression: s.c, BloomBitsPerKey: 10, formatVersion: s.version})
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

// FuzzTable opens arbitrary bytes as a table, reads all of it and looks
// keys up with Get and AppendGet: errors must wrap ErrCorrupt; no panic. With verify false the block checksums are
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
// as its mapping, walks part of it backwards and looks keys up (fuzzGets).
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
	fuzzGets(t, r)
}

// fuzzGets looks up, with Get and AppendGet into a prefixed dst, every user
// key a forward walk of r shows (at its own seq, the one below and MaxSeq)
// and a few keys around them. An error must wrap ErrCorrupt and leave dst as
// it was; an answer must keep dst's bytes in front of the value, and Get
// must agree with AppendGet. When the table is consistent (it reads without
// error, its internal keys and index separators are in order, each block's
// keys lie after the previous separator and at or before its own, and every
// block's restart points are sound: soundBlock),
// an answer must be the walk's: the first entry at or after the search key
// if its user key is the one asked for, else a miss (a miss is also right
// when the filter rules the key out).
func fuzzGets(t *testing.T, r *Reader) {
	type entry struct {
		key, val []byte
		h        handle
	}
	var walk []entry
	consistent := true
	it := r.NewIter(nil, nil)
	for ok := it.First(); ok; ok = it.Next() {
		if n := len(walk); n > 0 && base.Compare(walk[n-1].key, it.Key()) >= 0 {
			consistent = false
			break
		}
		walk = append(walk, entry{bytes.Clone(it.Key()), bytes.Clone(it.Value()), it.dataH})
	}
	if err := it.Close(); err != nil {
		consistent = false
	}
	// The index: separators in order, each block once, after the last
	// separator and at or before its own.
	var idx blockIter
	var seps [][]byte
	block := map[handle]int{}
	if idx.init(r.index, true, r.name, r.indexOff) != nil {
		consistent = false
	}
	for ok := consistent && idx.First(); ok; ok = idx.Next() {
		h, hok := decodeHandle(idx.val)
		_, dup := block[h]
		if n := len(seps); !hok || dup || (n > 0 && base.Compare(seps[n-1], idx.key) >= 0) {
			consistent = false
			break
		}
		block[h] = len(seps)
		seps = append(seps, bytes.Clone(idx.key))
	}
	if idx.err != nil {
		consistent = false
	}
	if consistent && !soundBlock(r.index) {
		consistent = false
	}
	for h := range block {
		if !consistent {
			break
		}
		b, err := r.dataBlock(h, nil)
		consistent = err == nil && soundBlock(b)
	}
	for _, e := range walk {
		j, ok := block[e.h]
		if !consistent || !ok || base.Compare(e.key, seps[j]) > 0 || (j > 0 && base.Compare(e.key, seps[j-1]) <= 0) {
			consistent = false
			break
		}
	}
	type probe struct {
		ukey []byte
		seq  uint64
	}
	probes := []probe{{[]byte(""), base.MaxSeq}, {[]byte("ap"), 5}, {[]byte("b"), base.MaxSeq}, {[]byte("zz"), 3}}
	for i, e := range walk {
		if i == 64 {
			break
		}
		u, seq := base.UserKey(e.key), base.Seq(e.key)
		probes = append(probes, probe{u, seq}, probe{u, base.MaxSeq}, probe{append(bytes.Clone(u), 0), base.MaxSeq})
		if seq > 0 {
			probes = append(probes, probe{u, seq - 1})
		}
	}
	const prefix = "dst:"
	for _, p := range probes {
		dst := append(make([]byte, 0, 16), prefix...)
		v, kind, found, err := r.AppendGet(dst, p.ukey, HashKey(p.ukey), p.seq)
		switch {
		case string(dst) != prefix:
			t.Fatalf("AppendGet(%q, %d) wrote over dst: %q", p.ukey, p.seq, dst)
		case err != nil:
			if !errors.Is(err, logkv.ErrCorrupt) {
				t.Fatalf("AppendGet(%q, %d): %v", p.ukey, p.seq, err)
			}
			if len(v) != len(dst) || found {
				t.Fatalf("AppendGet(%q, %d) failed (%v) returning %q, found %v", p.ukey, p.seq, err, v, found)
			}
		case !found && len(v) != len(dst):
			t.Fatalf("AppendGet(%q, %d) found nothing returning %q", p.ukey, p.seq, v)
		case len(v) < len(prefix) || string(v[:len(prefix)]) != prefix:
			t.Fatalf("AppendGet(%q, %d) = %q lost dst's bytes", p.ukey, p.seq, v)
		}
		gv, gkind, gfound, gerr := r.Get(p.ukey, p.seq)
		if (gerr == nil) != (err == nil) || gfound != found || gkind != kind || (found && string(gv) != string(v[len(prefix):])) {
			t.Fatalf("Get(%q, %d) = %q %v %v %v, AppendGet %q %v %v %v", p.ukey, p.seq, gv, gkind, gfound, gerr, v, kind, found, err)
		}
		if !consistent {
			continue
		}
		if err != nil {
			t.Fatalf("AppendGet(%q, %d) on a table that reads cleanly: %v", p.ukey, p.seq, err)
		}
		// The walk's answer.
		sk := base.MakeSearchKey(p.ukey, p.seq)
		var want *entry
		for i := range walk {
			if base.Compare(walk[i].key, sk) >= 0 {
				if bytes.Equal(base.UserKey(walk[i].key), p.ukey) {
					want = &walk[i]
				}
				break
			}
		}
		switch {
		case found != (want != nil) && (found || r.MayContain(p.ukey)):
			t.Fatalf("Get(%q, %d): found %v, the walk %v", p.ukey, p.seq, found, want != nil)
		case found && (kind != base.KindOf(want.key) || string(v[len(prefix):]) != string(want.val)):
			t.Fatalf("Get(%q, %d) = %q kind %v, the walk %q kind %v", p.ukey, p.seq, v[len(prefix):], kind, want.val, base.KindOf(want.key))
		}
	}
}

// soundBlock reports whether a block's restart points are what a writer
// makes: each the offset of an entry a walk from the start reaches, in
// order, its key stored whole (so that a search from a restart point reads
// the entries a walk does).
func soundBlock(b []byte) bool {
	var it blockIter
	if it.init(b, true, "fuzz", 0) != nil {
		return false
	}
	keys := map[int]string{}
	for ok := it.First(); ok; ok = it.Next() {
		keys[it.offset] = string(it.key)
	}
	if it.err != nil {
		return false
	}
	last := -1
	for i := 0; i < it.numRestarts; i++ {
		off, ok := it.restart(i)
		k, want := keys[off]
		if !ok || !want || off <= last {
			return false
		}
		if rk, ok := it.restartKey(i); !ok || string(rk) != k {
			return false
		}
		last = off
	}
	return true
}

// FuzzFilter decodes arbitrary bytes as a filter block of format version 1
// and as one of version 2 (the blocked filter), and probes each.
func FuzzFilter(f *testing.F) {
	for _, v := range []uint32{1, 2} {
		f.Add(appendFilter(nil, []uint64{1, 2, 3}, 10, v), []byte("k"))
		var hs []uint64
		for i := range 200 {
			hs = append(hs, HashKey(fmt.Appendf(nil, "k%d", i)))
		}
		f.Add(appendFilter(nil, hs, 10, v), []byte("k7"))
	}
	f.Add([]byte{0, 31}, []byte(""))
	f.Add(make([]byte, 65), []byte(""))
	f.Fuzz(func(t *testing.T, b, key []byte) {
		for _, version := range []uint32{1, 2} {
			flt, ok := decodeFilter(b, version)
			if ok {
				if version >= 2 && (!bytes.Equal(flt.bits, b[:len(b)-1]) || len(flt.bits)%filterBlockBytes != 0 ||
					flt.nblocks != uint64(len(flt.bits))/filterBlockBytes) {
					t.Fatalf("blocked filter of %d bytes decoded as %d bytes, %d blocks", len(b), len(flt.bits), flt.nblocks)
				}
				flt.mayContain(HashKey(key))
			}
			// Round trip: a filter built over key always contains it.
			k := 1 + int(binary.LittleEndian.Uint16(append(bytes.Clone(b), 0, 0)))%40
			g, ok := decodeFilter(appendFilter(nil, []uint64{HashKey(key)}, k, version), version)
			if !ok || !g.mayContain(HashKey(key)) {
				t.Fatalf("filter of %d bits/key, version %d, lost its key", k, version)
			}
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
// panic, and point lookups keep dst and agree with a walk (fuzzGets).
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
			fuzzReader(t, b, false, false)
		}
	}
}
