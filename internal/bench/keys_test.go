package bench

import (
	"fmt"
	"testing"
)

// appendKey writes what "%0*d" writes, keeping the low digits of a number
// too wide for its width.
func TestAppendKeyMatchesPrintf(t *testing.T) {
	for _, w := range []int{1, 2, 3, 5, 16, 20} {
		for _, n := range []uint64{0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 12345, 1<<64 - 1, 99999999999} {
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
}
