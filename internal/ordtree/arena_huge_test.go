//go:build linux && !race

package ordtree

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestArenaChunksAdvisedHuge: a full-size chunk is advised for transparent
// huge pages (the kernel's smaps shows THPeligible for its mapping), a
// first small chunk is not.
func TestArenaChunksAdvisedHuge(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skip("transparent huge pages are off on this system: nothing to advise")
	}
	a := NewArena()
	defer a.Destroy()
	a.Alloc(1024)
	small := uintptr(unsafe.Pointer(&a.chunk[0]))
	for len(a.chunk) < maxChunk {
		a.Alloc(maxSmall)
	}
	full := uintptr(unsafe.Pointer(&a.chunk[0]))
	require.Equal(t, "1", thpEligible(t, full), "a %d-byte chunk is advised for huge pages", maxChunk)
	if !strings.Contains(string(mode), "[always]") {
		require.Equal(t, "0", thpEligible(t, small), "a %d-byte chunk is not advised", minChunk)
	}
}

// thpEligible is the THPeligible field of the mapping holding addr in
// /proc/self/smaps.
func thpEligible(t *testing.T, addr uintptr) string {
	smaps, err := os.ReadFile("/proc/self/smaps")
	require.NoError(t, err)
	in := false
	for _, line := range strings.Split(string(smaps), "\n") {
		// A mapping's header is "lo-hi perms offset dev inode [path]"; its
		// fields follow, each "Name: value".
		if f := strings.Fields(line); len(f) > 0 && !strings.HasSuffix(f[0], ":") {
			var lo, hi uintptr
			_, err := fmt.Sscanf(f[0], "%x-%x", &lo, &hi)
			require.NoError(t, err, line)
			in = addr >= lo && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "THPeligible:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "THPeligible:"))
		}
	}
	t.Fatalf("no THPeligible line for the mapping of %#x in /proc/self/smaps", addr)
	return ""
}
