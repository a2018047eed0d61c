//go:build linux && !race

package ordtree

import "syscall"

// hugePage is the size of a transparent huge page on x86-64 and arm64 with
// 4 KiB pages.
const hugePage = 2 << 20

// adviseHuge asks the kernel to back b with transparent huge pages if b is
// whole huge pages: a full-size chunk (maxChunk) or a large block. The
// reason is the first touch: filling fresh memory takes a page fault per
// 4 KiB page, which on this project's machine (a VM) was most of a slot
// move target's CPU with the memory engine; huge pages take one fault per
// 2 MiB (memory's BenchmarkBulkLoad measures it; the figures are in
// docs/cluster.md, "move rate"). Smaller chunks are not advised, so a
// small tree stays small. The memory counted does not change: a chunk is
// mapped (ArenaStats.Mapped) before it is used, and the arena fills each
// chunk before it maps the next, so huge pages make resident at most the
// rest of the last chunk ahead of its use. The advice is a hint (THP
// "never" ignores it; "always" needs none): an error is ignored.
func adviseHuge(b []byte) {
	if len(b) < hugePage || len(b)%hugePage != 0 {
		return
	}
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE) // a hint; the memory works without it
}
