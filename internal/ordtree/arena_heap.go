//go:build !unix || race

package ordtree

// Under the race detector (which does not watch mapped memory) and on
// systems without mmap, an arena's chunks are Go byte slices: the Arena
// keeps each alive, and as they hold no pointers the collector does not
// scan them. Freed blocks are poisoned so that tests that read a block
// after it was freed see garbage, not the old data.
var poisonFreed = true

func mapMemory(size int) []byte { return make([]byte, size) }

func unmapMemory([]byte) {}
