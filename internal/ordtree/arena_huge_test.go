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
// huge pages, a first small chunk is not. The advice itself is the
// mapping's "hg" flag in /proc/self/smaps (VM_HUGEPAGE, set by
// MADV_HUGEPAGE whatever the system's THP mode); THPeligible, whether the
// kernel will back it with huge pages, is checked too where THP is on.
func TestArenaChunksAdvisedHuge(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		t.Skip("this kernel has no transparent huge pages: madvise refuses the advice")
	}
	a := NewArena()
	defer a.Destroy()
	a.Alloc(1024)
	small := uintptr(unsafe.Pointer(&a.chunk[0]))
	for len(a.chunk) < maxChunk {
		a.Alloc(maxSmall)
	}
	full := uintptr(unsafe.Pointer(&a.chunk[0]))
	require.Contains(t, strings.Fields(smapsField(t, full, "VmFlags")), "hg", "a %d-byte chunk is advised for huge pages", maxChunk)
	require.NotContains(t, strings.Fields(smapsField(t, small, "VmFlags")), "hg", "a %d-byte chunk is not advised", minChunk)
	if !strings.Contains(string(mode), "[never]") {
		require.Equal(t, "1", smapsField(t, full, "THPeligible"), "the kernel may back the advised chunk with huge pages")
	}
}

// smapsField is the value of field name (e.g. THPeligible, VmFlags) of the
// mapping holding addr in /proc/self/smaps.
func smapsField(t *testing.T, addr uintptr, name string) string {
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
		if v, ok := strings.CutPrefix(line, name+":"); in && ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s line for the mapping of %#x in /proc/self/smaps", name, addr)
	return ""
}
