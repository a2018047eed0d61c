//go:build unix && !race

package ordtree

import (
	"fmt"
	"syscall"
)

// poisonFreed is off but for tests that turn it on: production does not pay
// for the pattern.
var poisonFreed = false

// mapMemory maps size bytes of anonymous, zeroed memory.
func mapMemory(size int) []byte {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		panic(fmt.Sprintf("ordtree: arena: out of memory: mmap of %d bytes: %v", size, err))
	}
	adviseHuge(b)
	return b
}

func unmapMemory(b []byte) {
	if err := syscall.Munmap(b); err != nil {
		panic(fmt.Sprintf("ordtree: arena: munmap: %v", err))
	}
}
