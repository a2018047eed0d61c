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
