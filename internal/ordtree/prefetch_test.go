//go:build unix

package ordtree

import (
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func TestLineSpan(t *testing.T) {
	for _, c := range []struct {
		a     uintptr
		n     int
		first uintptr
		lines int
	}{
		{0, 1, 0, 1}, {0, 64, 0, 1}, {0, 65, 0, 2}, {63, 1, 0, 1}, {63, 2, 0, 2},
		{64, 64, 64, 1}, {100, 200, 64, 4}, {128, 1008, 128, 16},
	} {
		first, lines := lineSpan(c.a, c.n)
		require.Equal(t, c.first, first, "lineSpan(%d, %d)", c.a, c.n)
		require.Equal(t, c.lines, lines, "lineSpan(%d, %d)", c.a, c.n)
	}
}

// TestPrefetchUnmapped checks that a prefetch of memory that is no longer
// mapped, or never was, is dropped, not a fault: an engine's Prefetch may
// name a file mapping a merge has just unmapped.
func TestPrefetchUnmapped(t *testing.T) {
	b, err := syscall.Mmap(-1, 0, 1<<16, syscall.PROT_READ, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	require.NoError(t, err)
	p := unsafe.Pointer(&b[0])
	PrefetchRange(p, len(b))
	require.NoError(t, syscall.Munmap(b))
	PrefetchRange(p, 1<<16)
	PrefetchRange(nil, 4096)
	PrefetchRange(p, 0)
}
