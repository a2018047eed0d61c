package ordtree

// prefetchLines issues PREFETCHT0 for the n 64-byte lines from the
// line-aligned address a. a is an integer, not a pointer: the caller keeps
// what it points into alive, and the line start may lie before that object.
func prefetchLines(a uintptr, n int)
