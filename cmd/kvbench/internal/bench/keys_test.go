package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// appendKey writes what "%0*d" writes, keeping the low digits of a number
// too wide for its width.
func TestAppendKeyMatchesPrintf(t *testing.T) {
	nums := []uint64{0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 9999, 10000, 12345, 99999999, 100000000, 1<<64 - 1, 99999999999, 1234567890123456}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		nums = append(nums, r.Uint64()>>r.UintN(64))
	}
	for _, w := range []int{1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 20, 24} {
		for _, n := range nums {
			want := fmt.Sprintf("%0*d", w, n)
			want = want[len(want)-w:]
			if got := string(appendKey([]byte("x"), n, w)); got != "x"+want {
				t.Fatalf("w %d n %d: %q want %q", w, n, got, want)
			}
		}
	}
}

// A plan's keys are what appendKey writes for each number, in order, each
// closed to appends.
func TestKeyPlan(t *testing.T) {
	p := newKeyPlan(5, 16, func(i int) uint64 { return uint64(i * 1000) })
	for i := range 5 {
		if got, want := string(p.key(i)), fmt.Sprintf("%016d", i*1000); got != want || p.nums[i] != uint64(i*1000) {
			t.Fatalf("key %d: %q (%d), want %q", i, got, p.nums[i], want)
		}
		if cap(p.key(i)) != 16 {
			t.Fatalf("key %d has capacity %d: an append would overwrite the next key", i, cap(p.key(i)))
		}
	}
	if planFits(1<<40, 16) {
		t.Fatal("a plan of 2^40 keys fits")
	}
	// Keys and values are made without slice bounds checks: an index past
	// the plan still panics (the check on nums), and each value is its
	// key's window, closed to appends.
	require.Panics(t, func() { p.key(5) })
	require.Panics(t, func() { p.key(-1) })
	vals := newValueSource(100, 1, 7)
	p.withValues(vals)
	for i := range 5 {
		v := p.value(i)
		require.Equal(t, vals.pool[vals.offset(p.nums[i]):][:100], v, "value %d", i)
		require.Equal(t, 100, cap(v), "value %d", i)
	}
	require.Panics(t, func() { p.value(5) })
}

// Every window valueSource.value makes is the pool's at its offset, ends
// within the pool and is closed to appends, at every value size up to the
// pool's own minimum (whose pool is barely twice the value), with offsets
// reaching close to the pool's end.
func TestValueWindows(t *testing.T) {
	for _, size := range []int{1, 100, 4096, valuePoolMin / 2, valuePoolMin} {
		vals := newValueSource(size, 1, 11)
		last := uint64(0)
		for n := uint64(0); n < 20000; n++ {
			off := vals.offset(n)
			require.Less(t, off, vals.span, "size %d key %d", size, n)
			require.LessOrEqual(t, off+uint64(size), uint64(len(vals.pool)))
			v := vals.value(n)
			require.Equal(t, size, len(v))
			require.Equal(t, size, cap(v))
			require.Same(t, &vals.pool[off], &v[0])
			last = max(last, off)
		}
		require.Equal(t, uint64(len(vals.pool)-size+1), vals.span)
		require.Greater(t, last, vals.span*9/10, "size %d: offsets reach the pool's end", size)
	}
}

// stepKey counts up and down as appendKey formats, and refuses to leave the
// width.
func TestStepKey(t *testing.T) {
	for _, n := range []uint64{0, 1, 8, 9, 10, 99, 100, 1999, 2000, 9998} {
		up := appendKey(nil, n, 4)
		if !stepKey(up, true) || string(up) != fmt.Sprintf("%04d", n+1) {
			t.Fatalf("%d up: %q", n, up)
		}
		if n == 0 {
			continue
		}
		down := appendKey(nil, n, 4)
		if !stepKey(down, false) || string(down) != fmt.Sprintf("%04d", n-1) {
			t.Fatalf("%d down: %q", n, down)
		}
	}
	if stepKey([]byte("9999"), true) || stepKey([]byte("0000"), false) {
		t.Fatal("stepped out of the width")
	}
}

// parseKey reads what strconv reads from keys of digits, and refuses
// anything else, across the eight-byte blocks and the tail.
func TestParseKey(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 100_000 {
		k := make([]byte, 1+r.IntN(19))
		for i := range k {
			k[i] = byte('0' + r.IntN(10))
		}
		if r.IntN(4) == 0 {
			k[r.IntN(len(k))] = byte(r.IntN(256))
		}
		want, err := strconv.ParseUint(string(k), 10, 64)
		got, ok := parseKey(k)
		if ok != (err == nil) || (ok && got != want) {
			t.Fatalf("%q: %d %v, want %d %v", k, got, ok, want, err)
		}
	}
	for _, k := range []string{"", "12345678901234567890", "0000000:", "/0000000", "00000000 "} {
		if _, ok := parseKey([]byte(k)); ok {
			t.Fatalf("%q parsed", k)
		}
	}
}

// parse16 (the noop store's 16-byte parse, one check for both words)
// refuses every byte but a digit at every position, alone and next to
// another byte that is not one (a byte below '0' borrows from the next),
// and reads every key of digits as strconv does.
func TestParse16(t *testing.T) {
	parse := func(k []byte) (uint64, bool) {
		n, bad := parse16(binary.LittleEndian.Uint64(k), binary.LittleEndian.Uint64(k[8:]))
		return n, bad == 0
	}
	r := rand.New(rand.NewPCG(7, 8))
	for j := range 10_000 {
		k := appendKey(nil, r.Uint64N(1e16), 16)
		want, _ := strconv.ParseUint(string(k), 10, 64)
		n, ok := parse(k)
		require.True(t, ok, "%q", k)
		require.Equal(t, want, n, "%q", k)
		if j >= 100 {
			continue
		}
		for i := range 16 {
			for c := range 256 {
				bad := slices.Clone(k)
				bad[i] = byte(c)
				if i < 15 && r.IntN(2) == 0 {
					bad[i+1] = []byte{'/', ':', '9', '0', 0, 0xff}[r.IntN(6)]
				}
				want, err := strconv.ParseUint(string(bad), 10, 64)
				n, ok := parse(bad)
				if ok != (err == nil) || (ok && n != want) {
					t.Fatalf("%q: %d %v, want %d %v", bad, n, ok, want, err)
				}
			}
		}
	}
}

// sameKey answers as bytes.Equal: for 16-byte keys (its inline case) that
// differ in any one byte, and for keys of other widths.
func TestSameKey(t *testing.T) {
	a := appendKey(nil, 1234567890123456, 16)
	require.True(t, sameKey(a, slices.Clone(a)))
	for i := range a {
		b := slices.Clone(a)
		b[i] ^= 1
		require.False(t, sameKey(a, b), i)
		require.False(t, sameKey(b, a), i)
	}
	for _, c := range [][2]string{{"", ""}, {"0001", "0001"}, {"0001", "0002"}, {"000000000000000012", "000000000000000012"},
		{"000000000000000012", "000000000000000013"}, {"0000000000000001", "00000000000000012"}, {"000000000000001", "0000000000000012"}} {
		x, y := []byte(c[0]), []byte(c[1])
		require.Equal(t, bytes.Equal(x, y), sameKey(x, y), c)
	}
}

// at past the permutation's range is a caller's error: it panics, where
// walking on would loop forever on a cycle with no number below n (11936
// and 15571 of the first case, YCSB D's keys at -key_size 4 -seed 5) or
// return a number already taken.
func TestPermutationAtPastN(t *testing.T) {
	for _, c := range []struct{ n, seed, cycle uint64 }{{10_000, 5 ^ 0x79637362, 11936}, {10, 1, 11}, {1000, 7, 1001}, {1, 3, 1}} {
		p := newPermutation(c.n, c.seed)
		for _, i := range []uint64{c.n, c.n + 1, c.cycle, p.mask, 1<<64 - 1} {
			done := make(chan any, 1)
			go func() {
				defer func() { done <- recover() }()
				p.at(i)
			}()
			select {
			case v := <-done:
				require.NotNil(t, v, "at(%d) of [0, %d), seed %d, did not panic", i, c.n, c.seed)
				require.Contains(t, fmt.Sprint(v), fmt.Sprintf("permutation.at(%d) of a permutation of [0, %d)", i, c.n))
			case <-time.After(10 * time.Second):
				t.Fatalf("at(%d) of [0, %d), seed %d, still walking after 10s", i, c.n, c.seed)
			}
		}
		require.Less(t, p.at(c.n-1), c.n)
	}
}
