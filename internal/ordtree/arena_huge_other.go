//go:build unix && !linux && !race

package ordtree

// adviseHuge does nothing where madvise has no MADV_HUGEPAGE
// (arena_huge_linux.go says why Linux asks for it).
func adviseHuge([]byte) {}
